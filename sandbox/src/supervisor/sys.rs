//! Thin, checked wrappers over the few system calls the supervisor repeats.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The last OS error, as `io::Error`.
pub(crate) fn last_error() -> io::Error {
    io::Error::last_os_error()
}

/// Turns a -1 return into the OS error.
pub(crate) fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result < 0 {
        Err(last_error())
    } else {
        Ok(result)
    }
}

/// `ioctl(fd, request, argument)`, with the request number passed as the kernel reads it (an
/// unsigned 32-bit number, zero-extended). musl's `ioctl` takes an `int` and sign-extends a
/// number with its top bit set (`SECCOMP_IOCTL_NOTIF_RECV`, `TIOCGPTN`), which the supervisor's
/// own filter, comparing all 64 bits, would refuse; glibc passes what this passes.
///
/// # Safety
/// `argument` is what `request` expects: the address of a live object of its type (as `usize`),
/// or a plain value.
pub(crate) unsafe fn ioctl(fd: RawFd, request: libc::Ioctl, argument: usize) -> libc::c_int {
    // Ioctl numbers are 32 bits: the cast keeps them and drops a sign extension.
    let request = libc::c_ulong::from(request as u32);
    // SAFETY: the caller's contract; the kernel reads or writes at most the request's object.
    let result = unsafe { libc::syscall(libc::SYS_ioctl, libc::c_long::from(fd), request, argument) };
    // An ioctl returns an int (or -1 with errno set).
    result as libc::c_int
}

/// Opens `path` by one `openat(AT_FDCWD, path, flags)` with exactly these flags. The C library's
/// `open` may add flags (musl's O_LARGEFILE) and calls (musl's `fcntl(F_SETFD)` after an
/// O_CLOEXEC open), which the supervisor's filter has no reason to allow.
pub(crate) fn open(path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let (directory, flags, mode) = (libc::c_long::from(libc::AT_FDCWD), libc::c_long::from(flags), 0 as libc::c_long);
    // SAFETY: a NUL-terminated path that lives for the call; the kernel returns a new descriptor.
    let result = unsafe { libc::syscall(libc::SYS_openat, directory, path.as_ptr(), flags, mode) };
    // A descriptor fits an int (or -1 with errno set).
    adopt(result as libc::c_int)
}

/// A pipe, both ends close-on-exec: (read end, write end).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors are fresh and owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Reads a small file (a /proc entry) into `buffer` with one read: `path` relative to `dir`,
/// or absolute with `libc::AT_FDCWD`. The number of bytes read, or `None`.
pub(crate) fn read_small(dir: RawFd, path: &std::ffi::CStr, buffer: &mut [u8]) -> Option<usize> {
    // SAFETY: a NUL-terminated path; `dir` is an open directory descriptor or AT_FDCWD.
    let file = adopt(unsafe { libc::openat(dir, path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) }).ok()?;
    // SAFETY: the buffer is writable for its length; the descriptor is ours.
    let read = unsafe { libc::read(file.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
    usize::try_from(read).ok()
}

/// Adopts a descriptor a system call just returned.
pub(crate) fn adopt(result: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(result)?;
    // SAFETY: the caller passes the return value of a call that created a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes a descriptor of ours non-blocking (never one of the caller's: its flags are shared).
pub(crate) fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: F_GETFL and F_SETFL read and set the flags of a descriptor we own.
    unsafe {
        let flags = check(libc::fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
        check(libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    }
    Ok(())
}

/// Waits until `fd` is ready for `events`, retrying on EINTR.
pub(crate) fn wait_for(fd: RawFd, events: libc::c_short) {
    let mut poll = libc::pollfd { fd, events, revents: 0 };
    // SAFETY: one pollfd we own; no timeout.
    while unsafe { libc::poll(&mut poll, 1, -1) } < 0 && last_error().kind() == io::ErrorKind::Interrupted {}
}

/// Writes everything, waiting when the descriptor is non-blocking and full. Errors end it.
pub(crate) fn write_all(fd: RawFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: the slice is valid for its length.
        let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if written < 0 {
            let error = last_error();
            match error.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => {
                    wait_for(fd, libc::POLLOUT);
                    continue;
                }
                _ => return Err(error),
            }
        }
        bytes = &bytes[written as usize..];
    }
    Ok(())
}

/// Sends `signal` to every process of the sandbox's process group. Harmless once it is empty:
/// its number stays reserved while any member is unreaped, and the supervisor stops sending
/// once it has reaped them all.
pub(crate) fn signal_group(group: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill takes integers only.
    unsafe { libc::kill(-group, signal) };
}

/// Exits at once: no atexit handlers or runtime teardown, which would make calls the
/// supervisor's filter does not allow.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process; nothing of ours needs flushing (stderr is unbuffered).
    unsafe { libc::_exit(code) }
}

/// The CPU time (user and system, microseconds) of every child the supervisor has reaped.
pub(crate) fn reaped_cpu_micros() -> u64 {
    // SAFETY: an all-zero rusage is valid storage; getrusage fills it.
    let mut reaped: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `reaped` is writable.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut reaped) };
    let micros = |time: libc::timeval| time.tv_sec as u64 * 1_000_000 + time.tv_usec as u64;
    micros(reaped.ru_utime) + micros(reaped.ru_stime)
}
