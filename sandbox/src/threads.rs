//! Landlock's `restrict_self` binds only the calling thread, so the sandbox refuses to start
//! while any other thread exists (a thread created later inherits everything).

#[derive(Debug, thiserror::Error)]
pub enum ThreadsError {
    #[error("cannot count threads in /proc/self/task: {0}")]
    Count(std::io::Error),
    #[error("{0} threads are running, expected 1")]
    Several(usize),
}

pub(crate) fn ensure_single_threaded() -> Result<(), ThreadsError> {
    let count = std::fs::read_dir("/proc/self/task").map_err(ThreadsError::Count)?.count();
    match count {
        1 => Ok(()),
        n => Err(ThreadsError::Several(n)),
    }
}
