//! Refused calls: each distinct one is reported once, by name and by the argument that decided
//! it (`hpython: sandbox refused socket(AF_INET6)`), and answered as the policy says: an error
//! for the caller (EPERM), or, with kill-on-deny, the end of the whole sandbox.

use std::io;
use std::os::fd::RawFd;

use super::names;
use super::sys;
use crate::seccomp_program::{bpf, SeccompProgram};

/// What a refused call gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnRefusal {
    /// The call fails with EPERM; the script goes on (the default).
    Error,
    /// The sandbox ends at the first refused call, as if killed by SIGSYS (`--kill-on-deny`).
    Kill,
}

/// The errno a refused call returns.
pub(crate) const REFUSAL_ERRNO: i32 = libc::EPERM;

/// Distinct reports kept before the supervisor stops listing new ones.
const MOST_REPORTS: usize = 64;

pub(crate) struct Reporter {
    host: &'static str,
    seen: Vec<String>,
    /// The caller's stderr is a terminal in raw mode: lines end in `\r\n`.
    pub(crate) raw_terminal: bool,
}

/// `name(ARG)` or `name(a=A, b=B)` for a call the program refused.
pub(crate) fn describe(program: &SeccompProgram, data: &libc::seccomp_data) -> String {
    let number = data.nr as u32;
    if data.arch != program.audit_arch {
        return format!("syscall {number} of foreign architecture {:#x}", data.arch);
    }
    if program.audit_arch == bpf::AUDIT_ARCH_X86_64 && number & bpf::X32_SYSCALL_BIT != 0 {
        return format!("x32 syscall {number:#x}");
    }
    let Some(name) = program.syscall_name(number) else {
        return format!("unknown syscall {number}");
    };
    let arguments = program.checked_arguments(name);
    let values: Vec<String> = arguments
        .iter()
        .map(|&(index, argument)| {
            let value = data.args.get(usize::from(index)).copied().unwrap_or(0);
            let text = names::describe(name, argument, value);
            if arguments.len() == 1 {
                text
            } else {
                format!("{argument}={text}")
            }
        })
        .collect();
    if values.is_empty() {
        name.to_string()
    } else {
        format!("{name}({})", values.join(", "))
    }
}

impl Reporter {
    pub(crate) fn new(host: &'static str) -> Reporter {
        Reporter { host, seen: Vec::new(), raw_terminal: false }
    }

    /// Whether `what` has not been reported yet (and is now remembered).
    pub(crate) fn is_new(&mut self, what: &str) -> bool {
        if self.seen.iter().any(|seen| seen == what) {
            return false;
        }
        if self.seen.len() < MOST_REPORTS {
            self.seen.push(what.to_string());
            return true;
        }
        if self.seen.len() == MOST_REPORTS {
            self.seen.push(String::new());
            self.line("further refused calls are not listed");
        }
        false
    }

    /// Prints `HOST: message` on the caller's stderr.
    pub(crate) fn line(&self, message: &str) {
        let ending = if self.raw_terminal { "\r\n" } else { "\n" };
        let _ = sys::write_all(2, format!("{}: {message}{ending}", self.host).as_bytes());
    }
}

/// Answers notification `id`: run the call (`allow`), or fail it with the refusal errno.
pub(crate) fn answer(listener: RawFd, id: u64, allow: bool) -> io::Result<()> {
    send(
        listener,
        libc::seccomp_notif_resp {
            id,
            val: 0,
            error: if allow { 0 } else { -REFUSAL_ERRNO },
            flags: if allow { libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32 } else { 0 },
        },
    )
}

/// Sends one answer.
fn send(listener: RawFd, response: libc::seccomp_notif_resp) -> io::Result<()> {
    // SAFETY: the listener is a seccomp notification descriptor; the response is a complete
    // `struct seccomp_notif_resp` that lives for the call.
    sys::check(unsafe { sys::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, std::ptr::addr_of!(response) as usize) })
        .map(|_| ())
}

/// Answers notification `id` with the result of a call the supervisor made for the caller
/// (an emulated call): its return value, or its errno.
pub(crate) fn answer_with(listener: RawFd, id: u64, result: Result<i64, i32>) -> io::Result<()> {
    let (val, error) = match result {
        Ok(value) => (value, 0),
        Err(errno) => (0, -errno),
    };
    send(listener, libc::seccomp_notif_resp { id, val, error, flags: 0 })
}

/// `ioctl(SECCOMP_IOCTL_NOTIF_SET_FLAGS)`: `_IOW('!', 4, __u64)` (Linux 6.6).
const SECCOMP_IOCTL_NOTIF_SET_FLAGS: libc::Ioctl = 0x4008_2104;
/// The one flag it takes: a notification wakes the supervisor on the caller's CPU, and the
/// answer wakes the caller on the supervisor's, as a switch from one to the other.
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: usize = 1;

/// Asks the kernel to hand each notification over as a switch on one CPU (the caller waits for
/// the answer anyway), instead of waking the supervisor on another CPU, which is idle and
/// costly to wake in a virtual machine. Best effort: kernels before 6.6 refuse it and work as
/// before.
pub(crate) fn prefer_synchronous_wake_ups(listener: RawFd) {
    // SAFETY: the listener is a seccomp notification descriptor; the flag is a plain integer.
    unsafe { sys::ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) };
}

/// Receives the next notification; `None` when its caller died meanwhile or the call was cut.
pub(crate) fn receive(listener: RawFd) -> Option<libc::seccomp_notif> {
    // SAFETY: the kernel requires a zeroed struct and fills it.
    let mut notification: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: the listener is a seccomp notification descriptor; the struct is libc's
    // `struct seccomp_notif`.
    let received =
        unsafe { sys::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, std::ptr::addr_of_mut!(notification) as usize) };
    (received == 0).then_some(notification)
}
