//! The supervisor hardens itself once it holds the listener, before the script can run: no core
//! dumps, the host's file-size limit on what it relays into a file, no capabilities,
//! `no_new_privs` and its own kill-on-deny filter (`filters/supervisor.toml`); in passing it lets
//! go of the host program's read-only pages (`program_pages`). Its landlock
//! domain is the run's outer one, entered before the fork (`filesystem::restrict_run`).

use crate::capabilities;
use crate::limits::RawResource;
use crate::privileges;
use crate::syscall_filter::{self, Listener};

#[cfg_attr(target_arch = "x86_64", path = "../generated/seccomp_x86_64.rs")]
#[cfg_attr(target_arch = "aarch64", path = "../generated/seccomp_aarch64.rs")]
#[rustfmt::skip]
mod supervisor_filter;

/// The supervisor's own filter, for `--print-policy`.
pub(crate) fn program() -> &'static crate::SeccompProgram {
    &supervisor_filter::PROGRAM
}

fn set_limit(resource: RawResource, value: u64, name: &str) -> Result<(), String> {
    let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
    // SAFETY: setrlimit reads one struct that lives for the call.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(format!("rlimit {name}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// `output_limit`: the host's `fsize`, so that stdout redirected to a file is bounded as the
/// host's own writes are (a relay past it fails with EFBIG, which stops that stream).
/// `inspects_as_root`: run by root inside the run's landlock domain, the supervisor keeps
/// CAP_SYS_PTRACE alone, to read the arguments of the sandbox's notified calls: the sandbox's
/// real uid is its own, its effective uid 0, so the kernel's same-user rule cannot apply. The
/// domain confines the capability: landlock lets it reach only processes of the run (domains
/// nested in the supervisor's), whatever capability it holds; the filter allows no `ptrace`,
/// no `process_vm_writev`, and nothing is inherited (no exec; bounding and ambient sets empty).
pub(crate) fn harden(own_uid: Option<u32>, output_limit: Option<u64>, inspects_as_root: bool) -> Result<(), String> {
    set_limit(libc::RLIMIT_CORE, 0, "core")?;
    if let Some(limit) = output_limit {
        set_limit(libc::RLIMIT_FSIZE, limit, "fsize")?;
        // SAFETY: SIG_IGN is a valid disposition; EFBIG then reaches the relay instead of a kill.
        unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    }
    let keep = if inspects_as_root { 1u64 << capabilities::CAP_SYS_PTRACE } else { 0 };
    capabilities::drop_all_but(own_uid, keep).map_err(|error| error.to_string())?;
    privileges::set_no_new_privs().map_err(|error| error.to_string())?;
    // Before the filter, which has no rule for madvise: the supervisor's exit then has less to
    // unmap while the caller waits (program_pages).
    super::program_pages::release();
    syscall_filter::install(&supervisor_filter::PROGRAM, supervisor_filter::PROGRAM.instructions, Listener::None)
        .map_err(|error| error.to_string())?;
    Ok(())
}
