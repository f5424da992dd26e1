//! Capabilities are emptied whatever uid runs the host, root included. Run by root, a host with
//! a task budget also takes a real uid of its own (see `tasks`), keeping effective uid 0.

use caps::{CapSet, Capability};

#[derive(Debug, thiserror::Error)]
pub enum CapabilitiesError {
    #[error("cannot take the real uid {uid} of the sandbox: {source}")]
    OwnUid { uid: u32, source: std::io::Error },
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
    /// Run by root with a task budget: the real uid the sandbox took.
    pub own_uid: Option<u32>,
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

/// Real uid `uid`, effective and saved uid unchanged (0): RLIMIT_NPROC then binds and counts
/// the sandbox alone; the files it may touch are still root's.
fn take_own_uid(uid: u32) -> Result<(), CapabilitiesError> {
    let failed = |source| CapabilitiesError::OwnUid { uid, source };
    // SAFETY: setresuid takes integers; -1 leaves the effective and saved uids as they are.
    if unsafe { libc::setresuid(uid, u32::MAX, u32::MAX) } != 0 {
        return Err(failed(std::io::Error::last_os_error()));
    }
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != uid {
        return Err(failed(std::io::Error::other("the real uid did not change")));
    }
    Ok(())
}

pub(crate) fn drop_all(own_uid: Option<u32>) -> Result<CapabilityReport, CapabilitiesError> {
    let can_set_pcap = caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)
        .map_err(|source| CapabilitiesError::Change { set: "effective", source })?;
    let mut report = CapabilityReport { bounding_cleared: false, securebits_locked: false, own_uid: None };
    if can_set_pcap {
        // Before the uid change: with NO_SETUID_FIXUP locked, the change keeps the capabilities
        // it needs, and they are all cleared below.
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
    if let Some(uid) = own_uid {
        take_own_uid(uid)?;
        report.own_uid = Some(uid);
    }
    // They all go now, for everyone.
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
