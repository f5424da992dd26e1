//! h's sandbox: one policy, one ordered [`apply`].
//!
//! A host builds a [`Policy`] (all data, nothing decided here from the environment) and calls
//! [`apply`] before the script's first line. Every stage fails closed: an error from any stage is
//! returned before the next one starts, and the host must exit without running the script.

mod capabilities;
mod descriptors;
mod environment;
pub mod exec;
mod filesystem;
mod limits;
mod monitor;
mod privileges;
pub mod seccomp_program;

mod syscall_filter;
pub mod syscall_names;
mod threads;

use std::ffi::OsString;

pub use capabilities::{CapabilitiesError, CapabilityReport, RootIdentity, NOBODY};
pub use filesystem::{landlock_abi, FsAccess, FsRule, LandlockError, LandlockFeatures, LandlockOutcome};
pub use limits::{Limit, Resource, RlimitError, RLIMIT_RESOURCES};
pub use monitor::MonitorError;
pub use privileges::NoNewPrivsError;
pub use seccomp_program::{RuleAction, RuleDescription, SeccompProgram, SockFilter};
pub use syscall_filter::SeccompError;
pub use threads::ThreadsError;

/// Everything the sandbox enforces, decided before [`apply`] runs.
#[derive(Debug)]
pub struct Policy {
    /// The host's name, used in denial messages (`hlua: sandbox denied execve`).
    pub host: &'static str,
    /// Every resource limit, soft = hard = the value; a resource left out keeps the inherited limit.
    pub rlimits: Vec<(Resource, Limit)>,
    /// The landlock rules; everything else on the filesystem is denied.
    pub fs_rules: Vec<FsRule>,
    /// Run (without the filesystem layer) on a kernel that has no landlock at all.
    pub allow_degraded: bool,
    /// The environment the script sees; nothing else is inherited.
    pub environment: Vec<(OsString, OsString)>,
    /// The generated allow-list for this host and architecture.
    pub seccomp: &'static SeccompProgram,
    /// What the host becomes when root runs it.
    pub root_identity: RootIdentity,
}

/// What [`apply`] achieved, for the host to report.
#[derive(Debug)]
pub struct Applied {
    pub landlock: LandlockOutcome,
    pub capabilities: CapabilityReport,
}

/// A stage that could not be applied. The script must not run.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the host is not single-threaded: {0}")]
    Threads(#[from] ThreadsError),
    #[error("cannot close inherited file descriptors: {0}")]
    Descriptors(std::io::Error),
    #[error("supervisor: {0}")]
    Monitor(#[from] MonitorError),
    #[error("rlimits: {0}")]
    Rlimit(#[from] RlimitError),
    #[error("capabilities: {0}")]
    Capabilities(#[from] CapabilitiesError),
    #[error("no_new_privs: {0}")]
    NoNewPrivs(#[from] NoNewPrivsError),
    #[error("landlock: {0}")]
    Landlock(#[from] LandlockError),
    #[error("seccomp: {0}")]
    Seccomp(#[from] SeccompError),
}

/// Applies `policy` to the calling process, in this order:
///
/// 0. Check that the process has one thread: landlock restricts only the calling thread.
///    Close every inherited descriptor above stderr, and replace the environment.
///    Fork the supervisor, which reports denied calls by name (see `monitor`); the parent
///    never returns from here, the child goes on.
/// 1. rlimits, first, while the host still may lower them all (`SIGXFSZ` is ignored so that a
///    file-size limit surfaces as `EFBIG` rather than a kill).
/// 2. Capabilities: emptied (bounding set too where permitted), so root is no stronger than anyone;
///    a host that creates processes also turns root into `nobody` ([`RootIdentity`]).
/// 3. `no_new_privs`: no exec can gain privileges again; landlock and seccomp require it unprivileged.
/// 4. Landlock: filesystem, TCP and scopes, as much as the kernel knows; none at all is an error
///    unless `allow_degraded`.
/// 5. Seccomp, last, because every earlier stage makes syscalls the allow-list forbids; its
///    notification listener goes to the supervisor before the script can run.
pub fn apply(policy: &Policy) -> Result<Applied, SandboxError> {
    threads::ensure_single_threaded()?;
    descriptors::close_inherited().map_err(SandboxError::Descriptors)?;
    environment::replace(&policy.environment);
    let handoff = monitor::split(policy.host, policy.seccomp, policy.root_identity)?;
    limits::apply(&policy.rlimits)?;
    let capabilities = capabilities::drop_all(policy.root_identity)?;
    privileges::set_no_new_privs()?;
    let landlock = filesystem::restrict(&policy.fs_rules, policy.allow_degraded)?;
    let listener = syscall_filter::install(policy.seccomp, syscall_filter::Listener::Create)?
        .ok_or(SeccompError::Install(std::io::Error::other("no listener returned")))?;
    handoff.give(listener)?;
    Ok(Applied { landlock, capabilities })
}
