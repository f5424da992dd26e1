//! The run's lifetime. The host leads a new session and process group, and no process of the
//! sandbox may leave it (the filters refuse setsid and setpgid); the supervisor is a child
//! subreaper, so every orphan of the sandbox becomes its child. When the host's main process
//! ends, the supervisor kills the whole group and reaps every child before it returns the
//! host's status: nothing of the sandbox outlives the run.

use std::io;

use super::signals;
use super::sys;

/// How the host ended: its exit code, or the signal that killed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    Exited(i32),
    Killed(libc::c_int),
}

impl Ending {
    fn of(info: &libc::siginfo_t) -> Ending {
        // SAFETY: for WEXITED, si_status holds the exit code or the signal number.
        let status = unsafe { info.si_status() };
        if info.si_code == libc::CLD_EXITED {
            Ending::Exited(status)
        } else {
            Ending::Killed(status)
        }
    }

    /// Ends the supervisor the same way.
    pub(crate) fn imitate(self) -> ! {
        match self {
            Ending::Exited(code) => sys::exit_now(code),
            Ending::Killed(signal) => signals::die_by(signal),
        }
    }
}

/// Makes the calling process the subreaper of its descendants.
pub(crate) fn become_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag.
    sys::check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) }).map(|_| ())
}

fn wait(idtype: libc::idtype_t, id: libc::id_t, options: libc::c_int) -> io::Result<Option<libc::siginfo_t>> {
    loop {
        // SAFETY: an all-zero siginfo_t is valid for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes into `info`, which we own.
        let result = unsafe { libc::waitid(idtype, id, &mut info, options) };
        if result != 0 {
            let error = sys::last_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        // SAFETY: si_pid is valid for every waitid result; 0 with WNOHANG means none ready.
        return Ok((unsafe { info.si_pid() } != 0).then_some(info));
    }
}

/// The sandbox's processes, seen from the supervisor.
pub(crate) struct Children {
    /// The host's pid, which is also the sandbox's process group and session.
    pub(crate) host: libc::pid_t,
}

impl Children {
    /// After SIGCHLD: reaps orphans that have ended, and returns how the host ended if it has.
    /// The host itself is left unreaped (a zombie keeps the process group's number reserved
    /// until [`Children::end_all`]).
    pub(crate) fn collect(&self) -> Option<Ending> {
        loop {
            let Ok(Some(info)) = wait(libc::P_ALL, 0, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) else {
                return None;
            };
            // SAFETY: waitid returned a child, so si_pid is set.
            let pid = unsafe { info.si_pid() };
            if pid == self.host {
                return Some(Ending::of(&info));
            }
            let _ = wait(libc::P_PID, pid as libc::id_t, libc::WEXITED);
        }
    }

    /// Forwards a signal to every process of the sandbox (Ctrl-C reaching the supervisor).
    pub(crate) fn forward(&self, signal: libc::c_int) {
        sys::signal_group(self.host, signal);
    }

    /// Kills every process of the sandbox and reaps them all; returns how the host ended
    /// (killed, if it had not ended before).
    pub(crate) fn end_all(&self) -> Ending {
        let mut host_ending = None;
        // The host is not reaped yet (alive, or a zombie), so the group's number is still its own.
        sys::signal_group(self.host, libc::SIGKILL);
        // Every child of the supervisor is a process of the sandbox: the host, or an orphan of
        // it. Each is looked at before it is reaped: while it is unreaped it keeps the group's
        // number reserved, so the group kill that follows cannot reach anyone else.
        while let Ok(Some(info)) = wait(libc::P_ALL, 0, libc::WEXITED | libc::WNOWAIT) {
            sys::signal_group(self.host, libc::SIGKILL);
            // SAFETY: waitid returned a child, so si_pid is set.
            let pid = unsafe { info.si_pid() };
            if pid == self.host {
                host_ending = Some(Ending::of(&info));
            }
            let _ = wait(libc::P_PID, pid as libc::id_t, libc::WEXITED);
        }
        host_ending.unwrap_or(Ending::Killed(libc::SIGKILL))
    }
}
