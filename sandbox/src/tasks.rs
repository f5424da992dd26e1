//! The task budget: at most N processes and threads in this sandbox, whoever runs it and however
//! many processes the caller runs besides.
//!
//! The kernel's own counter is RLIMIT_NPROC, which counts the tasks of a real uid (threads
//! included) and is checked atomically at every clone. It is made to count the sandbox:
//!
//! - run by root (which RLIMIT_NPROC never binds): the sandbox and its supervisor take a real
//!   uid of their own, [`OWN_UID_BASE`] + the supervisor's pid, unused by anyone else, while the
//!   effective, saved and filesystem uids stay 0. Root stays root for its files (a root-owned
//!   `--allow-write` directory is writable), has no capability, and the limit counts exactly
//!   the sandbox: N for it, plus one for the supervisor.
//! - run by anyone else: the limit is the tasks the user runs when the sandbox starts, plus N.
//!   Exact at start, racy afterwards with the user's other processes (if they end, the sandbox
//!   may grow by as many; if they grow, its room shrinks), which the docs state.

use crate::limits::Limit;

/// The first real uid given to root's sandboxes (2^31): above every uid a system allocates to
/// users (and to container ranges in practice), below the invalid (uid_t)-1.
pub const OWN_UID_BASE: u32 = 1 << 31;

/// How the budget is enforced for this run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskPlan {
    /// The RLIMIT_NPROC to set, if any.
    pub nproc: Option<u64>,
    /// Run by root: the real uid the sandbox and its supervisor take.
    pub own_uid: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum TasksError {
    #[error("cannot count the user's tasks in /proc: {0}")]
    Count(std::io::Error),
}

/// The tasks (threads included) whose real uid is `uid`, read from /proc.
fn tasks_of(uid: u32) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut count = 0u64;
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        // The directory's owner is the effective uid: a cheap filter before any file is generated.
        // Tasks it skips (a setuid program the user runs, a process that made itself
        // non-dumpable) make the limit lower, never higher.
        match entry.metadata() {
            Ok(metadata) if metadata.uid() == uid => {}
            _ => continue,
        }
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
        let field = |key: &str| {
            status.lines().find_map(|line| line.strip_prefix(key)).and_then(|rest| rest.split_whitespace().next())
        };
        if field("Uid:").and_then(|value| value.parse::<u32>().ok()) == Some(uid) {
            count += field("Threads:").and_then(|value| value.parse::<u64>().ok()).unwrap_or(1);
        }
    }
    Ok(count)
}

/// Decides how `budget` is enforced; `supervisor_pid` is the pid the supervisor will keep.
pub(crate) fn plan(budget: Limit, supervisor_pid: libc::pid_t) -> Result<TaskPlan, TasksError> {
    let Limit::Value(budget) = budget else {
        return Ok(TaskPlan { nproc: None, own_uid: None });
    };
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    if uid == 0 {
        let own_uid = OWN_UID_BASE + supervisor_pid.unsigned_abs();
        return Ok(TaskPlan { nproc: Some(budget + 1), own_uid: Some(own_uid) });
    }
    if budget <= 1 {
        // The host alone: no clone may succeed, whatever the user runs besides.
        return Ok(TaskPlan { nproc: Some(0), own_uid: None });
    }
    let running = tasks_of(uid).map_err(TasksError::Count)?;
    Ok(TaskPlan { nproc: Some(running + budget), own_uid: None })
}
