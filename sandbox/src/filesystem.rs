//! Landlock: the filesystem rules, TCP bind/connect and the IPC scopes.
//!
//! The ruleset handles every right this crate knows (up to [`HANDLED_ABI`]) in best-effort mode,
//! so the kernel enforces all the rights it has; what it lacks is reported by
//! [`LandlockFeatures`] and shown by `--print-policy`. No landlock at all is an error unless the
//! user asked for a degraded run.

use std::ffi::CString;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use crate::paths;
use crate::supervisor::sys;
use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

/// The newest landlock ABI whose rights the ruleset asks for. Kernels with an older ABI enforce
/// the subset they know.
const HANDLED_ABI: ABI = ABI::V10;

/// What a rule grants beneath its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsAccess {
    /// Read files; list directories.
    Read,
    /// Read, and execute files (an interpreter a host execs, and its libraries).
    ReadExecute,
    /// Read, and write, create, remove, rename and truncate files and directories.
    ReadWrite,
    /// Read, write and ioctl on a terminal device (the sandbox's own private terminal).
    Terminal,
}

impl FsAccess {
    pub fn describe(self) -> &'static str {
        match self {
            FsAccess::Read => "read",
            FsAccess::ReadExecute => "read+execute",
            FsAccess::ReadWrite => "read+write",
            FsAccess::Terminal => "terminal",
        }
    }

    fn rights(self, is_directory: bool) -> BitFlags<AccessFs> {
        let read_file = AccessFs::ReadFile;
        let write_file = AccessFs::WriteFile | AccessFs::Truncate;
        let file_rights = match self {
            FsAccess::Read => BitFlags::from(read_file),
            FsAccess::ReadExecute => read_file | AccessFs::Execute,
            FsAccess::ReadWrite => write_file | read_file,
            FsAccess::Terminal => AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev,
        };
        if !is_directory {
            return file_rights;
        }
        let directory_rights = match self {
            FsAccess::Read | FsAccess::ReadExecute | FsAccess::Terminal => BitFlags::from(AccessFs::ReadDir),
            FsAccess::ReadWrite => {
                AccessFs::ReadDir
                    | AccessFs::RemoveDir
                    | AccessFs::RemoveFile
                    | AccessFs::MakeDir
                    | AccessFs::MakeReg
                    | AccessFs::MakeSym
                    | AccessFs::Refer
            }
        };
        file_rights | directory_rights
    }
}

/// One landlock rule: `access` beneath `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsRule {
    pub path: PathBuf,
    pub access: FsAccess,
    /// Why the host grants it (shown by `--print-policy`).
    pub why: String,
}

/// What a landlock ABI version enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LandlockFeatures {
    pub abi: u32,
}

impl LandlockFeatures {
    /// Each feature landlock has had, with the ABI that brought it and whether this ABI enforces it.
    pub fn describe(self) -> Vec<LandlockFeature> {
        const FEATURES: &[(&str, u32)] = &[
            ("filesystem: execute, read, write, create, remove", 1),
            ("filesystem: link and rename across directories", 2),
            ("filesystem: truncate", 3),
            ("network: TCP bind and connect", 4),
            ("filesystem: ioctl on devices", 5),
            ("scope: abstract unix sockets and signals", 6),
            ("audit logging of denials", 7),
            ("filesystem: connect to pathname unix sockets", 9),
        ];
        FEATURES.iter().map(|&(what, since)| LandlockFeature { what, since, enforced: self.abi >= since }).collect()
    }
}

/// One landlock feature, as `--print-policy` lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LandlockFeature {
    /// What it restricts.
    pub what: &'static str,
    /// The ABI that brought it.
    pub since: u32,
    /// Whether the running kernel enforces it.
    pub enforced: bool,
}

/// The landlock ABI of the running kernel, or `None` when it has no landlock.
pub fn landlock_abi() -> Option<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag the kernel only
    // returns the ABI number; no memory is read or written.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(version).ok().filter(|&abi| abi > 0)
}

/// How the landlock stage ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LandlockOutcome {
    /// Enforced with everything the kernel's ABI knows.
    Enforced(LandlockFeatures),
    /// The kernel has no landlock and the user accepted running without it.
    Degraded,
}

#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("the kernel has no landlock (use --allow-degraded to run without the filesystem layer)")]
    Unavailable,
    #[error("cannot build the ruleset: {0}")]
    Ruleset(landlock::RulesetError),
    #[error("cannot open {path} for a rule: {source}")]
    Path { path: PathBuf, source: std::io::Error },
    #[error("cannot add the rule for {path}: {source}")]
    Rule { path: PathBuf, source: landlock::RulesetError },
    #[error("cannot add the rule for TCP port {port}: {source}")]
    Port { port: u16, source: landlock::RulesetError },
    #[error("cannot restrict the process: {0}")]
    Restrict(landlock::RulesetError),
    #[error("the kernel reported the ruleset as not enforced")]
    NotEnforced,
}

/// A rule's path, opened once (`O_PATH`) before anything is restricted: both landlock domains of
/// a run are built from the same descriptor, and whether it is a directory is asked of it.
pub(crate) struct OpenedRule {
    /// The path as the rule names it (for errors).
    path: PathBuf,
    /// The path itself when it was opened as its own canonical name ([`paths::open_exact`]).
    canonical: Option<PathBuf>,
    descriptor: OwnedFd,
    pub(crate) is_directory: bool,
    pub(crate) access: FsAccess,
}

impl OpenedRule {
    /// The rule's path made canonical, as the supervisor compares the paths it resolves: known
    /// when the path was opened as its own canonical name, else by realpath (not by reading
    /// `/proc/self/fd/N` of the descriptor: a /proc lookup per rule costs more than the
    /// component walk, hpython's run domain 191 against 153 µs).
    pub(crate) fn canonical_path(&self) -> Option<PathBuf> {
        match &self.canonical {
            Some(path) => Some(path.clone()),
            None => std::fs::canonicalize(&self.path).ok(),
        }
    }
}

/// Opens every rule's path (`O_PATH | O_CLOEXEC`). A path that cannot be opened is an error: the
/// rule could not be enforced.
pub(crate) fn open_rules(rules: &[FsRule]) -> Result<Vec<OpenedRule>, LandlockError> {
    rules
        .iter()
        .map(|rule| {
            let (descriptor, canonical) = match paths::open_exact(&rule.path) {
                Some(descriptor) => (descriptor, Some(rule.path.clone())),
                None => (open_path(&rule.path)?, None),
            };
            let is_directory = is_directory(&descriptor);
            Ok(OpenedRule { path: rule.path.clone(), canonical, descriptor, is_directory, access: rule.access })
        })
        .collect()
}

/// Opens `path` `O_PATH | O_CLOEXEC`, following symlinks.
fn open_path(path: &Path) -> Result<OwnedFd, LandlockError> {
    let error = |source| LandlockError::Path { path: path.to_path_buf(), source };
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| error(std::io::Error::from(std::io::ErrorKind::InvalidInput)))?;
    sys::open(&c_path, libc::O_PATH | libc::O_CLOEXEC).map_err(error)
}

fn is_directory(descriptor: &OwnedFd) -> bool {
    // SAFETY: an all-zero `stat` is a valid value for fstat to overwrite.
    let mut status: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is open for the call (an O_PATH descriptor may be fstat'ed); fstat
    // writes one `stat` that we own.
    let result = unsafe { libc::fstat(descriptor.as_raw_fd(), &mut status) };
    result == 0 && status.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// The host's landlock ruleset, created and filled but not yet enforced: built before the fork
/// from the opened rules, so that the host, after its rlimits (a low `nofile` included) and
/// capabilities, only has to enter it ([`enter`]). `None`: the kernel has no landlock and the
/// user accepted running without it.
pub(crate) struct HostRuleset(Option<(RulesetCreated, u32)>);

pub(crate) fn host_ruleset(rules: &[OpenedRule], allow_degraded: bool) -> Result<HostRuleset, LandlockError> {
    let Some(abi) = landlock_abi() else {
        return if allow_degraded { Ok(HostRuleset(None)) } else { Err(LandlockError::Unavailable) };
    };
    let ruleset = new_ruleset(true).map_err(LandlockError::Ruleset)?;
    Ok(HostRuleset(Some((add_rules(ruleset, rules)?, abi))))
}

/// Restricts the calling process with the host's ruleset (nested in the run's domain).
pub(crate) fn enter(ruleset: HostRuleset) -> Result<LandlockOutcome, LandlockError> {
    let Some((ruleset, abi)) = ruleset.0 else {
        return Ok(LandlockOutcome::Degraded);
    };
    let status = ruleset.restrict_self().map_err(LandlockError::Restrict)?;
    match status.ruleset {
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced => {
            Ok(LandlockOutcome::Enforced(LandlockFeatures { abi }))
        }
        RulesetStatus::NotEnforced => Err(LandlockError::NotEnforced),
    }
}

/// A ruleset handling every filesystem and TCP right this crate knows (best effort: the kernel
/// enforces the ones it has), and with `scoped` the IPC scopes too.
fn new_ruleset(scoped: bool) -> Result<RulesetCreated, landlock::RulesetError> {
    let ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(HANDLED_ABI))?
        .handle_access(AccessNet::from_all(HANDLED_ABI))?;
    if scoped {
        ruleset.scope(Scope::from_all(HANDLED_ABI))?.create()
    } else {
        ruleset.create()
    }
}

/// Adds one rule per opened path to a created ruleset.
fn add_rules(mut ruleset: RulesetCreated, rules: &[OpenedRule]) -> Result<RulesetCreated, LandlockError> {
    for rule in rules {
        ruleset = ruleset
            .add_rule(PathBeneath::new(&rule.descriptor, rule.access.rights(rule.is_directory)))
            .map_err(|source| LandlockError::Rule { path: rule.path.clone(), source })?;
    }
    Ok(ruleset)
}

/// The run's outer landlock domain, entered by the launcher before it forks: the supervisor
/// stays in it and the host nests its own domain inside, so that the supervisor may still
/// inspect the host (landlock lets a process trace only processes of its own domain or of a
/// domain nested in it), which it needs to make the emulated calls (see
/// `supervisor::emulation`). It grants exactly the host's rules and, when the supervisor watches
/// the run's CPU and memory or checks the credentials of its callers (run by root), reading
/// beneath /proc; TCP connect to the ports of `endpoints`
/// only (the granted ones, which the supervisor connects the script's sockets to), nothing else
/// of TCP. The supervisor thus reaches
/// no file the script cannot reach itself (before, it reached none). No scope is set: scopes
/// are the host's. Skipped on a kernel without landlock (the host then decides as its policy
/// says). Returns whether the domain was entered.
pub(crate) fn restrict_run(
    rules: &[OpenedRule],
    watch_proc: bool,
    endpoints: &[std::net::SocketAddr],
) -> Result<bool, LandlockError> {
    let Some(abi) = landlock_abi() else {
        return Ok(false);
    };
    let ruleset = new_ruleset(false).map_err(LandlockError::Restrict)?;
    let mut ruleset = add_rules(ruleset, rules)?;
    if watch_proc {
        let proc_rule = FsRule { path: PathBuf::from("/proc"), access: FsAccess::Read, why: String::new() };
        ruleset = add_rules(ruleset, &open_rules(std::slice::from_ref(&proc_rule))?)?;
    }
    // Below ABI 4 landlock has no TCP rules (and handles no TCP access to grant).
    let tcp_rules = abi >= 4;
    let mut ports: Vec<u16> = endpoints.iter().filter(|_| tcp_rules).map(std::net::SocketAddr::port).collect();
    ports.sort_unstable();
    ports.dedup();
    for port in ports {
        ruleset = ruleset
            .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
            .map_err(|source| LandlockError::Port { port, source })?;
    }
    let status = ruleset.restrict_self().map_err(LandlockError::Restrict)?;
    match status.ruleset {
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced => Ok(true),
        RulesetStatus::NotEnforced => Err(LandlockError::NotEnforced),
    }
}
