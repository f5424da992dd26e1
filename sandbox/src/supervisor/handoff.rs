//! How the seccomp notification listener reaches the supervisor: the host sends it over a
//! socketpair (`SCM_RIGHTS`) right after installing its filter, closes its own copy and goes on
//! at once; nothing of the host waits for the supervisor (hsh's and hnode's launcher execs next,
//! and the supervisor lets that exec run before it hardens itself: `Supervisor::take_listener`).
//! The host's end sits at [`HANDOFF_FD`], the one descriptor on which its filter allows
//! `sendmsg`; once the host has closed it, that number can only ever be a socketpair the script
//! made itself.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::sys;

/// The host's end of the handoff socket (`HANDOFF_FD` in `filter/src/constants.rs`). It is closed
/// before `h_sandbox::exec` opens the interpreter at the same number.
pub const HANDOFF_FD: RawFd = 3;

/// A connected pair: (the host's end, the supervisor's end), both close-on-exec.
pub(crate) fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: socketpair writes two descriptors into the array we own.
    sys::check(unsafe {
        libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr())
    })?;
    // SAFETY: both descriptors are fresh and owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// In the host, once its other descriptors are settled: moves its end to [`HANDOFF_FD`].
pub(crate) fn settle(end: OwnedFd) -> io::Result<OwnedFd> {
    if end.as_raw_fd() == HANDOFF_FD {
        return Ok(end);
    }
    // SAFETY: F_GETFD only reads flags; an unused number fails with EBADF.
    if unsafe { libc::fcntl(HANDOFF_FD, libc::F_GETFD) } != -1 {
        return Err(io::Error::other(format!("descriptor {HANDOFF_FD} is in use")));
    }
    // SAFETY: dup3 onto a free number, keeping close-on-exec; `end` is ours and dropped after.
    sys::adopt(unsafe { libc::dup3(end.as_raw_fd(), HANDOFF_FD, libc::O_CLOEXEC) })
}

/// Runs `transfer` with a message of one data byte and room for one descriptor's SCM_RIGHTS
/// header, its buffers alive for the call.
fn with_one_descriptor_message<T>(transfer: impl FnOnce(&mut libc::msghdr) -> T) -> T {
    let mut byte = [0u8; 1];
    let mut data = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: byte.len() };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: an all-zero msghdr is valid; its pointers are set below to buffers that outlive
    // `transfer`.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut data;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    // Its type is the C library's (size_t in glibc, socklen_t in musl); the space is small.
    message.msg_controllen = space as _;
    transfer(&mut message)
}

/// Sends `listener` over the host's end; both are closed when this returns.
pub(crate) fn send(end: OwnedFd, listener: OwnedFd) -> io::Result<()> {
    let sent = with_one_descriptor_message(|message| {
        // SAFETY: the control buffer holds one SCM_RIGHTS header with room for one descriptor.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(message);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(header).cast::<RawFd>(), listener.as_raw_fd());
        }
        // SAFETY: a complete msghdr on our socket.
        unsafe { libc::sendmsg(end.as_raw_fd(), message, libc::MSG_NOSIGNAL) }
    });
    drop(listener);
    if sent != 1 {
        return Err(if sent < 0 { sys::last_error() } else { io::Error::other("short send") });
    }
    Ok(())
}

/// In the supervisor: the listener the host sent, or `None` when the host closed its end first
/// (it failed before installing its filter, and says why itself).
pub(crate) fn receive(end: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    with_one_descriptor_message(|message| {
        // SAFETY: a complete msghdr with buffers that outlive the call; CMSG_CLOEXEC marks the
        // received descriptor close-on-exec.
        let received = unsafe { libc::recvmsg(end.as_raw_fd(), message, libc::MSG_CMSG_CLOEXEC) };
        if received < 0 {
            return Err(sys::last_error());
        }
        if received == 0 {
            return Ok(None);
        }
        // SAFETY: the kernel filled the control buffer; the first header, if any, is ours to read.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(message);
            if header.is_null() || (*header).cmsg_level != libc::SOL_SOCKET || (*header).cmsg_type != libc::SCM_RIGHTS {
                return Err(io::Error::other("the host sent no descriptor"));
            }
            let fd = std::ptr::read_unaligned(libc::CMSG_DATA(header).cast::<RawFd>());
            Ok(Some(OwnedFd::from_raw_fd(fd)))
        }
    })
}
