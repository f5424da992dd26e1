//! The signals the supervisor acts on arrive through a signalfd, in its one poll loop: no
//! handler runs at an arbitrary point, and nothing is lost between polls.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::sys;

/// Signals read from the signalfd.
const HANDLED: [libc::c_int; 6] =
    [libc::SIGCHLD, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP, libc::SIGWINCH];
/// Blocked and never read: the supervisor must not stop when it touches the caller's terminal
/// from the background (terminal output then simply goes on, and tcsetattr succeeds).
const SILENCED: [libc::c_int; 2] = [libc::SIGTTOU, libc::SIGTTIN];

pub(crate) struct Signals {
    fd: OwnedFd,
}

fn set_of(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is valid storage; sigemptyset and sigaddset initialise it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &signal in signals {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

impl Signals {
    /// Blocks the handled signals and opens the signalfd. Called in the supervisor only, after
    /// the fork, so the host starts with the mask it inherited.
    pub(crate) fn open() -> io::Result<Signals> {
        let handled = set_of(&HANDLED);
        let mut blocked: Vec<libc::c_int> = HANDLED.to_vec();
        blocked.extend(SILENCED);
        let all = set_of(&blocked);
        // SAFETY: `all` is an initialised set that lives for the call.
        sys::check(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &all, std::ptr::null_mut()) })?;
        // SAFETY: -1 asks for a new descriptor; `handled` is initialised.
        let fd = sys::adopt(unsafe { libc::signalfd(-1, &handled, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
        Ok(Signals { fd })
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The next pending signal, if any.
    pub(crate) fn next(&self) -> Option<libc::c_int> {
        // SAFETY: an all-zero signalfd_siginfo is valid storage for the kernel to fill.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is writable for `size` bytes.
        let read = unsafe { libc::read(self.fd.as_raw_fd(), (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
        (read == size as isize).then_some(info.ssi_signo as libc::c_int)
    }
}

/// Ends the supervisor by `signal`, as the host ended (a shell then reports the same status).
pub(crate) fn die_by(signal: libc::c_int) -> ! {
    let set = set_of(&[signal]);
    // SAFETY: restoring the default action, unblocking the signal and sending it to ourselves.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::kill(libc::getpid(), signal);
    }
    sys::exit_now(128 + signal)
}
