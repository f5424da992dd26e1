//! The supervisor hardens itself once it holds the listener, before the script can run: no core
//! dumps, the host's file-size limit on what it relays into a file, no capabilities,
//! `no_new_privs` and its own kill-on-deny filter (`filters/supervisor.toml`). Its landlock
//! domain is the run's outer one, entered before the fork (`filesystem::restrict_run`).

use crate::capabilities;
use crate::privileges;
use crate::syscall_filter::{self, Listener};

#[cfg_attr(target_arch = "x86_64", path = "../generated/seccomp_x86_64.rs")]
#[cfg_attr(target_arch = "aarch64", path = "../generated/seccomp_aarch64.rs")]
#[rustfmt::skip]
mod supervisor_filter;

fn set_limit(resource: libc::__rlimit_resource_t, value: u64, name: &str) -> Result<(), String> {
    let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
    // SAFETY: setrlimit reads one struct that lives for the call.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(format!("rlimit {name}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// `output_limit`: the host's `fsize`, so that stdout redirected to a file is bounded as the
/// host's own writes are (a relay past it fails with EFBIG, which stops that stream).
pub(crate) fn harden(own_uid: Option<u32>, output_limit: Option<u64>) -> Result<(), String> {
    set_limit(libc::RLIMIT_CORE, 0, "core")?;
    if let Some(limit) = output_limit {
        set_limit(libc::RLIMIT_FSIZE, limit, "fsize")?;
        // SAFETY: SIG_IGN is a valid disposition; EFBIG then reaches the relay instead of a kill.
        unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    }
    capabilities::drop_all(own_uid).map_err(|error| error.to_string())?;
    privileges::set_no_new_privs().map_err(|error| error.to_string())?;
    syscall_filter::install(&supervisor_filter::PROGRAM, Listener::None).map_err(|error| error.to_string())?;
    Ok(())
}
