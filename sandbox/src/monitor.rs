//! The supervisor: how a denied syscall becomes one readable line and a death by SIGSYS.
//!
//! [`split`] forks. The child goes on to apply the sandbox and run the script; its seccomp
//! program answers every call outside the allow-list with `SECCOMP_RET_USER_NOTIF`, and it
//! hands the notification listener to the parent. The parent (the supervisor) hardens itself
//! (no capabilities, `no_new_privs`, an empty landlock domain, a tiny kill-on-deny filter) and
//! waits. On a notification it prints `HOST: sandbox denied NAME`, kills the offending process
//! and the host, and ends itself by SIGSYS, so a shell reports 159. Otherwise it exits exactly
//! as the host did (same status, or same signal).
//!
//! Unlike a SIGSYS handler inside the host, this works when the denied call is made with
//! signals blocked (glibc blocks them around `clone` in `posix_spawn` and `pthread_create`)
//! and after the host has exec'd an interpreter (hsh, hnode), whose children are covered too.

use std::io::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::capabilities::RootIdentity;
use crate::seccomp_program::{bpf, SeccompProgram};
use crate::syscall_filter::{self, Listener, SeccompError};
use crate::{capabilities, filesystem, privileges};

#[cfg_attr(target_arch = "x86_64", path = "generated/seccomp_x86_64.rs")]
#[cfg_attr(target_arch = "aarch64", path = "generated/seccomp_aarch64.rs")]
#[rustfmt::skip]
mod supervisor_filter;

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("cannot create the handoff pipes: {0}")]
    Pipe(std::io::Error),
    #[error("cannot fork the supervisor: {0}")]
    Fork(std::io::Error),
    #[error("cannot tie the host's life to the supervisor: {0}")]
    DeathSignal(std::io::Error),
}

/// The child's side of the handoff.
pub(crate) struct Handoff {
    to_supervisor: OwnedFd,
    from_supervisor: OwnedFd,
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    let result = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn write_all(fd: &OwnedFd, bytes: &[u8]) -> std::io::Result<()> {
    let mut written = 0;
    while written < bytes.len() {
        // SAFETY: the slice is valid for its length; the descriptor is open.
        let result = unsafe { libc::write(fd.as_raw_fd(), bytes[written..].as_ptr().cast(), bytes.len() - written) };
        if result < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        written += result as usize;
    }
    Ok(())
}

/// Reads exactly 4 bytes; `None` when the other side closed first.
fn read_word(fd: &OwnedFd) -> std::io::Result<Option<i32>> {
    let mut buffer = [0u8; 4];
    let mut filled = 0;
    while filled < buffer.len() {
        // SAFETY: the buffer is valid for the remaining length; the descriptor is open.
        let result = unsafe { libc::read(fd.as_raw_fd(), buffer[filled..].as_mut_ptr().cast(), buffer.len() - filled) };
        if result < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if result == 0 {
            return Ok(None);
        }
        filled += result as usize;
    }
    Ok(Some(i32::from_ne_bytes(buffer)))
}

/// Forks. Returns in the child (the future host) with its side of the handoff; the parent
/// becomes the supervisor and never returns.
pub(crate) fn split(
    host: &'static str,
    program: &'static SeccompProgram,
    root_identity: RootIdentity,
) -> Result<Handoff, MonitorError> {
    let (child_reads, supervisor_writes) = pipe().map_err(MonitorError::Pipe)?;
    let (supervisor_reads, child_writes) = pipe().map_err(MonitorError::Pipe)?;
    // SAFETY: getpid has no preconditions.
    let supervisor_pid = unsafe { libc::getpid() };
    // SAFETY: the process is single-threaded (checked by apply), so the child may go on running
    // arbitrary code after fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(MonitorError::Fork(std::io::Error::last_os_error()));
    }
    if pid == 0 {
        drop(supervisor_writes);
        drop(supervisor_reads);
        // If the supervisor dies, so does the host: it must never run unsupervised.
        // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory of ours.
        let result = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
        if result != 0 {
            return Err(MonitorError::DeathSignal(std::io::Error::last_os_error()));
        }
        // SAFETY: getppid has no preconditions.
        if unsafe { libc::getppid() } != supervisor_pid {
            return Err(MonitorError::DeathSignal(std::io::Error::other("the supervisor is already gone")));
        }
        return Ok(Handoff { to_supervisor: child_writes, from_supervisor: child_reads });
    }
    drop(child_writes);
    drop(child_reads);
    supervise(host, program, root_identity, pid, &supervisor_reads, &supervisor_writes)
}

impl Handoff {
    /// Gives the listener to the supervisor and waits until it holds its own copy; then the
    /// host's copy is closed, so the script cannot read its own notifications.
    pub(crate) fn give(self, listener: OwnedFd) -> Result<(), SeccompError> {
        let number = listener.as_raw_fd();
        write_all(&self.to_supervisor, &number.to_ne_bytes()).map_err(SeccompError::Handoff)?;
        match read_word(&self.from_supervisor).map_err(SeccompError::Handoff)? {
            Some(0) => Ok(()),
            Some(errno) => Err(SeccompError::Handoff(std::io::Error::from_raw_os_error(errno))),
            None => Err(SeccompError::Handoff(std::io::Error::other("the supervisor went away"))),
        }
    }
}

/// `struct seccomp_notif`.
#[repr(C)]
struct Notification {
    id: u64,
    pid: u32,
    flags: u32,
    nr: i32,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}

const SECCOMP_IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;

fn describe(program: &SeccompProgram, nr: i32, arch: u32) -> String {
    let number = nr as u32;
    if arch != program.audit_arch {
        return format!("syscall {number} of foreign architecture {arch:#x}");
    }
    if program.audit_arch == bpf::AUDIT_ARCH_X86_64 && number & bpf::X32_SYSCALL_BIT != 0 {
        return format!("x32 syscall {number:#x}");
    }
    match program.syscall_name(number) {
        Some(name) => name.to_string(),
        None => format!("unknown syscall {number}"),
    }
}

fn kill(pid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill takes integers only; a stale pid at worst fails with ESRCH.
    unsafe { libc::kill(pid, signal) };
}

/// Waits for the host and returns how it ended: (exit code, or terminating signal).
fn reap(pid: libc::pid_t) -> Result<i32, libc::c_int> {
    loop {
        // SAFETY: an all-zero siginfo_t is valid for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes into `info`, which we own.
        let result = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED) };
        if result != 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(libc::SIGKILL);
        }
        // SAFETY: for WEXITED, si_status holds the exit code or the signal number.
        let status = unsafe { info.si_status() };
        return if info.si_code == libc::CLD_EXITED { Ok(status) } else { Err(status) };
    }
}

/// Exits at once: no atexit handlers or runtime teardown, which would make calls the
/// supervisor's filter does not allow.
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process; nothing of ours needs flushing (stderr is unbuffered).
    unsafe { libc::_exit(code) }
}

/// Ends the supervisor as the host ended.
fn end_like(outcome: Result<i32, libc::c_int>) -> ! {
    match outcome {
        Ok(code) => exit_now(code),
        Err(signal) => {
            // SAFETY: restoring the default action and signalling ourselves; the signal is not
            // blocked (the supervisor blocks none), so it is delivered before kill returns.
            unsafe {
                libc::signal(signal, libc::SIG_DFL);
                libc::kill(libc::getpid(), signal);
            }
            exit_now(128 + signal)
        }
    }
}

/// The supervisor takes the host's identity (`nobody` when the host becomes nobody): signals
/// between different uids need CAP_KILL, which the supervisor drops.
fn harden_supervisor(root_identity: RootIdentity) -> Result<(), String> {
    let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit reads one struct that lives for the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) } != 0 {
        return Err(format!("rlimit core: {}", std::io::Error::last_os_error()));
    }
    capabilities::drop_all(root_identity).map_err(|error| error.to_string())?;
    privileges::set_no_new_privs().map_err(|error| error.to_string())?;
    filesystem::restrict_supervisor().map_err(|error| error.to_string())?;
    syscall_filter::install(&supervisor_filter::PROGRAM, Listener::None).map_err(|error| error.to_string())?;
    Ok(())
}

fn supervise(
    host: &'static str,
    program: &'static SeccompProgram,
    root_identity: RootIdentity,
    child: libc::pid_t,
    from_child: &OwnedFd,
    to_child: &OwnedFd,
) -> ! {
    // Keyboard signals reach the host directly (same process group); the supervisor outlives
    // them to report how the host ended. Stdin and stdout are the host's alone.
    // SAFETY: SIG_IGN needs no handler; dup2 onto 0 and 1 from a descriptor we opened.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            libc::close(null);
        }
    }
    let listener_number = match read_word(from_child) {
        Ok(Some(number)) => number,
        // The host failed before installing its filter; it has said why.
        Ok(None) | Err(_) => end_like(reap(child)),
    };
    // SAFETY: pidfd_open and pidfd_getfd take integers; the returned descriptors are ours.
    let (pidfd, listener) = unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, child, 0);
        if pidfd < 0 {
            (-1, -1)
        } else {
            (pidfd, libc::syscall(libc::SYS_pidfd_getfd, pidfd as RawFd, listener_number, 0))
        }
    };
    if listener < 0 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EPERM);
        let _ = write_all(to_child, &errno.to_ne_bytes());
        end_like(reap(child));
    }
    // SAFETY: pidfd_open and pidfd_getfd returned fresh descriptors owned by nothing else.
    let (pidfd, listener) = unsafe { (OwnedFd::from_raw_fd(pidfd as RawFd), OwnedFd::from_raw_fd(listener as RawFd)) };
    if let Err(error) = harden_supervisor(root_identity) {
        kill(child, libc::SIGKILL);
        let _ = writeln!(std::io::stderr(), "{host}: cannot harden the supervisor: {error}");
        let _ = reap(child);
        exit_now(1);
    }
    if write_all(to_child, &0i32.to_ne_bytes()).is_err() {
        end_like(reap(child));
    }
    // The host's own end is watched through its pidfd as well as through the listener: on
    // older kernels a filter counts as used until its task is reaped, so the listener reports
    // POLLHUP only after waitid, and waiting for POLLHUP alone never ends (measured by
    // `cargo xtask vm-test`: 5.10 and 6.1 hung after every script; 6.12 and later did not).
    // Once the host is reaped, the listener still reports its descendants (hsh, hnode) until
    // the last of them has gone.
    let mut host_ended: Option<Result<i32, libc::c_int>> = None;
    loop {
        let mut polls = [
            libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd {
                fd: if host_ended.is_some() { -1 } else { pidfd.as_raw_fd() },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two pollfds we own; no timeout, no signal mask.
        let ready = unsafe { libc::ppoll(polls.as_mut_ptr(), 2, std::ptr::null(), std::ptr::null()) };
        if ready < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        let poll = polls[0];
        if poll.revents & libc::POLLIN != 0 {
            // SAFETY: the kernel requires a zeroed struct and fills it.
            let mut notification: Notification = unsafe { std::mem::zeroed() };
            // SAFETY: the listener is a seccomp notification descriptor; the struct matches
            // `struct seccomp_notif` (80 bytes).
            let received =
                unsafe { libc::ioctl(listener.as_raw_fd(), SECCOMP_IOCTL_NOTIF_RECV as _, &mut notification) };
            if received != 0 {
                // The caller died meanwhile (ENOENT) or was interrupted: nothing to report.
                continue;
            }
            let name = describe(program, notification.nr, notification.arch);
            let _ = writeln!(std::io::stderr(), "{host}: sandbox denied {name}");
            kill(notification.pid as libc::pid_t, libc::SIGKILL);
            if host_ended.is_none() {
                // Not after the host was reaped: its pid may belong to someone else by now.
                kill(child, libc::SIGKILL);
                let _ = reap(child);
            }
            end_like(Err(libc::SIGSYS));
        }
        if poll.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            // Every process under the filter has gone.
            break;
        }
        if host_ended.is_none() && polls[1].revents != 0 {
            // The host has exited: collect it, which on older kernels releases its filter.
            host_ended = Some(reap(child));
        }
    }
    end_like(host_ended.unwrap_or_else(|| reap(child)))
}
