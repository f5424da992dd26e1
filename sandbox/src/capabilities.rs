//! Capabilities are emptied whatever uid runs the host, root included; a host that lets its
//! script create processes also leaves uid 0 (see [`RootIdentity`]).

use caps::{CapSet, Capability};

/// What a host run by root becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootIdentity {
    /// Stay uid 0, without any capability. For hosts whose filter allows no new process or
    /// thread (hlua, hpython): root's files stay root's, nothing else of root remains.
    KeepUid0,
    /// Become `nobody` ([`NOBODY`]: every uid and gid, no supplementary groups). For hosts that
    /// create processes or threads (hsh, hnode): the kernel never applies RLIMIT_NPROC to uid 0,
    /// and before Linux 6.15-ish an exec under `no_new_privs` with real uid != effective uid
    /// drops the effective uid anyway, so only a full switch is bounded and the same on every
    /// kernel.
    Nobody,
}

/// The uid and gid of `nobody`.
pub const NOBODY: u32 = 65534;

#[derive(Debug, thiserror::Error)]
pub enum CapabilitiesError {
    #[error("cannot become nobody ({NOBODY}): {0}")]
    Nobody(std::io::Error),
    #[error("cannot read or change {set}: {source}")]
    Change { set: &'static str, source: caps::errors::CapsError },
    #[error("cannot lock securebits: {0}")]
    Securebits(std::io::Error),
    #[error("{set} still holds {remaining} after dropping")]
    Remaining { set: &'static str, remaining: String },
}

/// What was dropped, for `--print-policy` and the tests.
#[derive(Debug, Clone, Copy)]
pub struct CapabilityReport {
    /// The bounding set could be emptied (needs CAP_SETPCAP; without it `no_new_privs` makes the
    /// bounding set unreachable anyway).
    pub bounding_cleared: bool,
    /// Securebits were locked so that uid 0 gains nothing at exec (needs CAP_SETPCAP).
    pub securebits_locked: bool,
    /// Run by root under [`RootIdentity::Nobody`]: every id is now [`NOBODY`].
    pub became_nobody: bool,
}

const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

fn change(set: &'static str, result: Result<(), caps::errors::CapsError>) -> Result<(), CapabilitiesError> {
    result.map_err(|source| CapabilitiesError::Change { set, source })
}

fn become_nobody() -> Result<(), CapabilitiesError> {
    let failed = || CapabilitiesError::Nobody(std::io::Error::last_os_error());
    // SAFETY: setgroups with a zero count reads no memory; setresgid and setresuid take integers.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(failed());
        }
        if libc::setresgid(NOBODY, NOBODY, NOBODY) != 0 {
            return Err(failed());
        }
        if libc::setresuid(NOBODY, NOBODY, NOBODY) != 0 {
            return Err(failed());
        }
    }
    // SAFETY: the get*id calls have no preconditions.
    let ids = unsafe { [libc::getuid(), libc::geteuid(), libc::getgid(), libc::getegid()] };
    if ids.iter().any(|&id| id != NOBODY) {
        return Err(CapabilitiesError::Nobody(std::io::Error::other("the ids did not change")));
    }
    Ok(())
}

pub(crate) fn drop_all(root: RootIdentity) -> Result<CapabilityReport, CapabilitiesError> {
    let can_set_pcap = caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)
        .map_err(|source| CapabilitiesError::Change { set: "effective", source })?;
    let mut report = CapabilityReport { bounding_cleared: false, securebits_locked: false, became_nobody: false };
    if can_set_pcap {
        // Before any uid change: both need CAP_SETPCAP, which the switch to nobody takes away.
        let bits = SECBIT_NOROOT
            | SECBIT_NOROOT_LOCKED
            | SECBIT_NO_SETUID_FIXUP
            | SECBIT_NO_SETUID_FIXUP_LOCKED
            | SECBIT_KEEP_CAPS_LOCKED
            | SECBIT_NO_CAP_AMBIENT_RAISE
            | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
        // SAFETY: PR_SET_SECUREBITS takes an integer bit set and touches no memory of ours.
        let result = unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits, 0, 0, 0) };
        if result != 0 {
            return Err(CapabilitiesError::Securebits(std::io::Error::last_os_error()));
        }
        report.securebits_locked = true;
        change("bounding", caps::clear(None, CapSet::Bounding))?;
        report.bounding_cleared = true;
    }
    // SAFETY: getuid has no preconditions.
    let run_by_root = unsafe { libc::getuid() } == 0;
    match root {
        RootIdentity::Nobody if run_by_root => {
            become_nobody()?;
            report.became_nobody = true;
        }
        RootIdentity::Nobody | RootIdentity::KeepUid0 => {}
    }
    // With NO_SETUID_FIXUP locked the switch kept the capabilities; they go now, for everyone.
    change("ambient", caps::clear(None, CapSet::Ambient))?;
    change("inheritable", caps::clear(None, CapSet::Inheritable))?;
    change("effective", caps::clear(None, CapSet::Effective))?;
    change("permitted", caps::clear(None, CapSet::Permitted))?;
    for (name, set) in [
        ("ambient", CapSet::Ambient),
        ("inheritable", CapSet::Inheritable),
        ("effective", CapSet::Effective),
        ("permitted", CapSet::Permitted),
    ] {
        let remaining = caps::read(None, set).map_err(|source| CapabilitiesError::Change { set: name, source })?;
        if !remaining.is_empty() {
            let mut names: Vec<String> = remaining.iter().map(|cap| cap.to_string()).collect();
            names.sort();
            return Err(CapabilitiesError::Remaining { set: name, remaining: names.join(",") });
        }
    }
    Ok(report)
}
