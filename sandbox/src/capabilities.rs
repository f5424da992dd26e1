//! Capabilities are emptied whatever uid runs the host, root included. Run by root, a host with
//! a task budget also takes a real uid of its own (see `tasks`), keeping effective uid 0.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum CapabilitiesError {
    #[error("cannot take the real uid {uid} of the sandbox: {source}")]
    OwnUid { uid: u32, source: std::io::Error },
    #[error("cannot read or change {set}: {source}")]
    Change { set: &'static str, source: io::Error },
    #[error("cannot lock securebits: {0}")]
    Securebits(std::io::Error),
    #[error("{set} still holds capabilities {remaining:#x} after dropping")]
    Remaining { set: &'static str, remaining: u64 },
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

const CAP_SETPCAP: u32 = 8;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`, two of them for 64 capabilities.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// (effective, permitted, inheritable) of the calling thread, 64 bits each.
fn read_sets() -> io::Result<(u64, u64, u64)> {
    let mut header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two data structs for version 3; both are ours and writable.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |low: u32, high: u32| u64::from(low) | u64::from(high) << 32;
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
        join(data[0].inheritable, data[1].inheritable),
    ))
}

/// Sets effective and permitted to `keep` and empties inheritable, in one call.
fn set_sets(keep: u64) -> io::Result<()> {
    let mut header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    for (half, word) in data.iter_mut().zip([keep as u32, (keep >> 32) as u32]) {
        half.effective = word;
        half.permitted = word;
    }
    // SAFETY: capset reads the header and two data structs that live for the call.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Drops every capability of the bounding set (needs CAP_SETPCAP).
fn clear_bounding() -> io::Result<()> {
    for capability in 0..64 {
        // SAFETY: PR_CAPBSET_READ and PR_CAPBSET_DROP take integers; a number past the last
        // capability fails with EINVAL, which ends the loop.
        unsafe {
            match libc::prctl(libc::PR_CAPBSET_READ, capability as libc::c_ulong, 0, 0, 0) {
                1 => {
                    if libc::prctl(libc::PR_CAPBSET_DROP, capability as libc::c_ulong, 0, 0, 0) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                0 => {}
                _ => break,
            }
        }
    }
    Ok(())
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
    drop_all_but(own_uid, 0)
}

/// The capability that lets the supervisor of a run by root read a notified call's arguments
/// from the sandbox (its real uid differs from the sandbox's effective one).
pub(crate) const CAP_SYS_PTRACE: u32 = 19;

/// As [`drop_all`], keeping the capabilities of `keep` (a mask) effective and permitted; the
/// bounding, inheritable and ambient sets are emptied all the same, so nothing is passed on.
pub(crate) fn drop_all_but(own_uid: Option<u32>, keep: u64) -> Result<CapabilityReport, CapabilitiesError> {
    let change = |set: &'static str| move |source: io::Error| CapabilitiesError::Change { set, source };
    let (effective, permitted, inheritable) = read_sets().map_err(change("capability sets"))?;
    let can_set_pcap = effective & (1 << CAP_SETPCAP) != 0;
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
        clear_bounding().map_err(change("bounding"))?;
        report.bounding_cleared = true;
    }
    if let Some(uid) = own_uid {
        take_own_uid(uid)?;
        report.own_uid = Some(uid);
    }
    // They all go now, for everyone: the ambient set (one call), then the other three (one
    // call), skipped when they are already empty (any unprivileged caller).
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes integers only.
    if unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(CapabilitiesError::Change { set: "ambient", source: io::Error::last_os_error() });
    }
    if effective | permitted | inheritable != 0 {
        set_sets(keep & permitted).map_err(change("effective, permitted and inheritable"))?;
    }
    let (effective, permitted, inheritable) = read_sets().map_err(change("capability sets"))?;
    for (set, remaining) in
        [("effective", effective & !keep), ("permitted", permitted & !keep), ("inheritable", inheritable)]
    {
        if remaining != 0 {
            return Err(CapabilitiesError::Remaining { set, remaining });
        }
    }
    // The ambient set is always a subset of permitted and inheritable, which are empty now.
    Ok(report)
}
