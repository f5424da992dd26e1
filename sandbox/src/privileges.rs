//! `PR_SET_NO_NEW_PRIVS`: no later execve can gain privileges (setuid, file capabilities).

#[derive(Debug, thiserror::Error)]
#[error("prctl(PR_SET_NO_NEW_PRIVS) failed: {0}")]
pub struct NoNewPrivsError(std::io::Error);

pub(crate) fn set_no_new_privs() -> Result<(), NoNewPrivsError> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only and touches no memory of ours.
    let result = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) };
    if result != 0 {
        return Err(NoNewPrivsError(std::io::Error::last_os_error()));
    }
    // SAFETY: as above; PR_GET_NO_NEW_PRIVS reads a flag of the calling thread.
    let check = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
    if check != 1 {
        return Err(NoNewPrivsError(std::io::Error::other("the flag did not stick")));
    }
    Ok(())
}
