//! Paths a notified call names, as the supervisor reaches them: the caller's own `/proc/self`,
//! the object a path leads to (opened `O_PATH`, which reads and writes nothing), and the name
//! the kernel gives that object. Emulated calls act on what these reach; `--learn` reports it.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;

use super::sys;

/// The caller's `/proc/self` and `/proc/thread-self` are its own, not the supervisor's: glibc's
/// `fchmodat(..., AT_SYMLINK_NOFOLLOW)` names a descriptor it opened as `/proc/self/fd/N`.
pub(super) fn own_proc(path: Vec<u8>, tid: libc::pid_t) -> Vec<u8> {
    for prefix in [&b"/proc/self"[..], &b"/proc/thread-self"[..]] {
        if let Some(rest) = path.strip_prefix(prefix) {
            if rest.is_empty() || rest.first() == Some(&b'/') {
                let mut own = format!("/proc/{tid}").into_bytes();
                own.extend_from_slice(rest);
                return own;
            }
        }
    }
    path
}

/// What `path` leads to from `base` (the caller's starting directory; `None` for an absolute
/// path), following a last symlink only when `follow`.
pub(super) fn open_object(base: Option<&OwnedFd>, path: &[u8], follow: bool) -> io::Result<OwnedFd> {
    let mut text = path.to_vec();
    text.push(0);
    let flags = libc::O_PATH | libc::O_CLOEXEC | if follow { 0 } else { libc::O_NOFOLLOW };
    let base = base.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    // SAFETY: a NUL-terminated path we own; O_PATH opens nothing for I/O.
    sys::adopt(unsafe { libc::openat(base, text.as_ptr().cast(), flags) })
}

/// The path the kernel gives an object we hold open; an object without one (deleted) fails.
pub(super) fn where_is(object: &OwnedFd) -> io::Result<PathBuf> {
    let link = format!("/proc/self/fd/{}\0", object.as_raw_fd());
    let mut buffer = vec![0u8; 4096];
    // SAFETY: a NUL-terminated path we own and a buffer of the length we pass.
    let length =
        unsafe { libc::readlinkat(libc::AT_FDCWD, link.as_ptr().cast(), buffer.as_mut_ptr().cast(), buffer.len()) };
    let length = usize::try_from(length).map_err(|_| sys::last_error())?;
    if length >= buffer.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buffer.truncate(length);
    if buffer.first() != Some(&b'/') || buffer.ends_with(b" (deleted)") {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(&buffer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_proc_self_is_its_own() {
        assert_eq!(own_proc(b"/proc/self/fd/5".to_vec(), 42), b"/proc/42/fd/5");
        assert_eq!(own_proc(b"/proc/thread-self/fd/5".to_vec(), 42), b"/proc/42/fd/5");
        assert_eq!(own_proc(b"/proc/self".to_vec(), 42), b"/proc/42");
        assert_eq!(own_proc(b"/proc/selfish".to_vec(), 42), b"/proc/selfish");
        assert_eq!(own_proc(b"work/proc/self/x".to_vec(), 42), b"work/proc/self/x");
    }
}
