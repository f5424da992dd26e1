//! Turns a denied syscall into one readable line and a death by SIGSYS.
//!
//! The generated programs answer every call outside the allow-list with `SECCOMP_RET_TRAP`,
//! which delivers SIGSYS with the syscall's number. The handler writes
//! `HOST: sandbox denied NAME` to stderr, then makes one more denied call while SIGSYS is
//! blocked (as it is inside its own handler): the kernel then resets SIGSYS to its default
//! action and the process dies of it, so a shell reports 159 as for any SIGSYS.
//! The filters forbid changing SIGSYS's disposition, so a script cannot disarm this.
//! A host that execs an interpreter loses the handler at exec: the denial still kills by SIGSYS.

use std::sync::OnceLock;

use crate::seccomp_program::{bpf, SeccompProgram};

struct Reporter {
    host: &'static str,
    program: &'static SeccompProgram,
}

static REPORTER: OnceLock<Reporter> = OnceLock::new();

/// A syscall number no architecture assigns and no filter allows: calling it inside the handler
/// is a second denial, fatal while SIGSYS is blocked.
const NEVER_ALLOWED_SYSCALL: libc::c_long = 0x3ff;

/// `SYS_SECCOMP`, the `si_code` of a seccomp SIGSYS.
const SYS_SECCOMP: libc::c_int = 1;

/// The `_sigsys` member of `siginfo_t` (after signo, errno, code and padding).
#[repr(C)]
struct SigsysInfo {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    padding: libc::c_int,
    call_addr: *mut libc::c_void,
    syscall: libc::c_int,
    arch: libc::c_uint,
}

/// A fixed buffer that formats without allocating (the handler runs inside a denied call).
struct Line {
    bytes: [u8; 160],
    length: usize,
}

impl Line {
    fn push(&mut self, text: &[u8]) {
        for &byte in text {
            if self.length < self.bytes.len() {
                self.bytes[self.length] = byte;
                self.length += 1;
            }
        }
    }

    fn push_number(&mut self, mut value: u64, radix: u64) {
        let mut digits = [0u8; 20];
        let mut count = 0;
        loop {
            let digit = (value % radix) as u8;
            digits[count] = if digit < 10 { b'0' + digit } else { b'a' + digit - 10 };
            count += 1;
            value /= radix;
            if value == 0 {
                break;
            }
        }
        while count > 0 {
            count -= 1;
            self.push(&[digits[count]]);
        }
    }
}

extern "C" fn on_sigsys(_signal: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    let mut line = Line { bytes: [0; 160], length: 0 };
    let reporter = REPORTER.get();
    line.push(reporter.map_or("h", |reporter| reporter.host).as_bytes());
    line.push(b": sandbox denied ");
    // SAFETY: the kernel passes a valid siginfo_t for an SA_SIGINFO handler; SigsysInfo mirrors
    // its leading fields and the `_sigsys` member of the union, which SIGSYS fills.
    let sigsys = unsafe { &*(info as *const SigsysInfo) };
    if sigsys.code == SYS_SECCOMP {
        let number = sigsys.syscall as u32;
        match reporter.map(|reporter| reporter.program) {
            Some(program) if sigsys.arch != program.audit_arch => {
                line.push(b"syscall ");
                line.push_number(u64::from(number), 10);
                line.push(b" of foreign architecture 0x");
                line.push_number(u64::from(sigsys.arch), 16);
            }
            Some(program) if program.audit_arch == bpf::AUDIT_ARCH_X86_64 && number & bpf::X32_SYSCALL_BIT != 0 => {
                line.push(b"x32 syscall 0x");
                line.push_number(u64::from(number), 16);
            }
            Some(program) => match program.syscall_name(number) {
                Some(name) => line.push(name.as_bytes()),
                None => {
                    line.push(b"unknown syscall ");
                    line.push_number(u64::from(number), 10);
                }
            },
            None => {
                line.push(b"syscall ");
                line.push_number(u64::from(number), 10);
            }
        }
    } else {
        line.push(b"(SIGSYS not from seccomp)");
    }
    line.push(b"\n");
    // SAFETY: write(2) and raw syscalls are async-signal-safe; the buffer outlives the calls.
    unsafe {
        libc::write(2, line.bytes.as_ptr().cast(), line.length);
        libc::syscall(NEVER_ALLOWED_SYSCALL);
        // Not reached: the call above is denied while SIGSYS is blocked, which kills the process.
        libc::syscall(libc::SYS_exit_group, 128 + libc::SIGSYS);
    }
}

pub(crate) fn install_reporter(host: &'static str, program: &'static SeccompProgram) -> std::io::Result<()> {
    // A second apply in one process keeps the first reporter; hosts apply once.
    let _ = REPORTER.set(Reporter { host, program });
    // SAFETY: an all-zero sigaction is a valid starting value; the fields are set below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_sigsys as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO;
    // SAFETY: the mask is ours to initialise.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `on_sigsys` has the SA_SIGINFO signature and only makes async-signal-safe calls.
    let result = unsafe { libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SIGSYS must not be blocked when the filter starts; the handler relies on the kernel's
    // blocking it for the handler's duration only.
    // SAFETY: the set is ours to initialise and is read by sigprocmask during the call.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGSYS);
        if libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
