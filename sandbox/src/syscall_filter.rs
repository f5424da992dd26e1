//! Installs the host's generated seccomp program, last of all stages, with a notification
//! listener: calls outside the allow-list wait on it until the supervisor ends the host.

use std::os::fd::{FromRawFd, OwnedFd};

use crate::seccomp_program::{SeccompProgram, SockFilter};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("the program is for {program}, this host runs on {running}")]
    WrongArchitecture { program: &'static str, running: &'static str },
    #[error("the program is empty or too long ({0} instructions)")]
    Length(usize),
    #[error("the kernel refused the filter: {0}")]
    Install(std::io::Error),
    #[error("the supervisor could not take the notification listener: {0}")]
    Handoff(std::io::Error),
}

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_ulong = 1 << 3;
const BPF_MAXINSNS: usize = 4096;

/// Which notification listener, if any, the kernel should create with the filter.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listener {
    /// Denied calls wait for the supervisor (the program's denial action is USER_NOTIF).
    Create,
    /// The program kills on denial (the supervisor's own filter).
    None,
}

/// Installs `instructions` (`program`'s own, or `program` observed for `--learn`) on the
/// calling thread (the sandbox requires a single thread, so the whole process). Returns the
/// listener descriptor when one was asked for.
pub(crate) fn install(
    program: &SeccompProgram,
    instructions: &[SockFilter],
    listener: Listener,
) -> Result<Option<OwnedFd>, SeccompError> {
    if program.arch != std::env::consts::ARCH {
        return Err(SeccompError::WrongArchitecture { program: program.arch, running: std::env::consts::ARCH });
    }
    let length = instructions.len();
    if length == 0 || length > BPF_MAXINSNS {
        return Err(SeccompError::Length(length));
    }
    let fprog = libc::sock_fprog {
        len: u16::try_from(length).map_err(|_| SeccompError::Length(length))?,
        // The kernel only reads the program; the cast drops a `const` the C type lacks.
        filter: instructions.as_ptr() as *mut libc::sock_filter,
    };
    let flags = match listener {
        Listener::Create => SECCOMP_FILTER_FLAG_NEW_LISTENER,
        Listener::None => 0,
    };
    // SAFETY: `fprog` points at `length` instructions laid out as `struct sock_filter`
    // (`SockFilter` is `repr(C)` with the same fields); the kernel copies them during the call.
    let result =
        unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog as *const libc::sock_fprog) };
    if result < 0 {
        return Err(SeccompError::Install(std::io::Error::last_os_error()));
    }
    match listener {
        Listener::None => Ok(None),
        Listener::Create => {
            let raw =
                i32::try_from(result).map_err(|_| SeccompError::Install(std::io::Error::other("bad listener")))?;
            // SAFETY: with NEW_LISTENER the kernel returns a fresh descriptor that nothing else owns.
            Ok(Some(unsafe { OwnedFd::from_raw_fd(raw) }))
        }
    }
}
