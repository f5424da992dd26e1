//! Installs the host's generated seccomp program, last of all stages.

use crate::denial;
use crate::seccomp_program::SeccompProgram;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("the program is for {program}, this host runs on {running}")]
    WrongArchitecture { program: &'static str, running: &'static str },
    #[error("the program is empty or too long ({0} instructions)")]
    Length(usize),
    #[error("cannot install the SIGSYS reporter: {0}")]
    Reporter(std::io::Error),
    #[error("the kernel refused the filter: {0}")]
    Install(std::io::Error),
}

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const SECCOMP_FILTER_FLAG_TSYNC: libc::c_ulong = 1;
const BPF_MAXINSNS: usize = 4096;

pub(crate) fn install(host: &'static str, program: &'static SeccompProgram) -> Result<(), SeccompError> {
    if program.arch != std::env::consts::ARCH {
        return Err(SeccompError::WrongArchitecture { program: program.arch, running: std::env::consts::ARCH });
    }
    let length = program.instructions.len();
    if length == 0 || length > BPF_MAXINSNS {
        return Err(SeccompError::Length(length));
    }
    denial::install_reporter(host, program).map_err(SeccompError::Reporter)?;
    let fprog = libc::sock_fprog {
        len: u16::try_from(length).map_err(|_| SeccompError::Length(length))?,
        // The kernel only reads the program; the cast drops a `const` the C type lacks.
        filter: program.instructions.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `length` instructions laid out as `struct sock_filter`
    // (`SockFilter` is `repr(C)` with the same fields); the kernel copies them during the call.
    // TSYNC puts every thread under the filter, and fails if one cannot be synchronised.
    let result = unsafe {
        libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fprog as *const libc::sock_fprog)
    };
    if result != 0 {
        return Err(SeccompError::Install(std::io::Error::last_os_error()));
    }
    Ok(())
}
