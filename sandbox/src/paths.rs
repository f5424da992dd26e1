//! Canonical paths at the cost of one lookup.
//!
//! Every grant is named by its canonical path (the policy, the supervisor's view of the grants).
//! `realpath` finds it with one `readlink` per component, each a walk from the root: hpython's 37
//! grants cost about 130 `readlink`s per resolution, and each grant was resolved twice. Most
//! grants are already canonical (hosts resolve their runtime files at build time), and that can
//! be checked in one call: `openat2` with `RESOLVE_NO_SYMLINKS` fails if any component is a
//! symlink, so a lexically normal absolute path it opens is its own canonical name, and the
//! descriptor it returns is the file that name denoted at that instant. Anything else (a
//! symlink on the way, a relative path, a kernel without `openat2`, a seccomp policy around h
//! that refuses it) falls back to `realpath`, with its errors.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

/// `path` made canonical, as `realpath` would: itself when it is absolute, lexically normal and
/// reached without a symlink, else `realpath`'s answer or error.
pub fn canonical(path: &Path) -> io::Result<PathBuf> {
    match open_exact(path) {
        Some(_) => Ok(path.to_path_buf()),
        None => std::fs::canonicalize(path),
    }
}

/// Opens `path` (`O_PATH | O_CLOEXEC`) if it is its own canonical name: absolute, no empty, `.`
/// or `..` component, no trailing slash, and no symlink anywhere on the way. `None` otherwise,
/// or when the kernel cannot say (the caller then resolves the path the slow way).
pub(crate) fn open_exact(path: &Path) -> Option<OwnedFd> {
    if !is_lexically_canonical(path.as_os_str().as_bytes()) {
        return None;
    }
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: open_how is plain integers; all-zero is a valid value (mode 0, no flags).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_NO_SYMLINKS;
    // SAFETY: openat2 reads the NUL-terminated path and `how` (of the size passed) and returns a
    // new descriptor or -1; neither pointer is kept.
    let result = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            c_path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    let descriptor = i32::try_from(result).ok().filter(|&descriptor| descriptor >= 0)?;
    // SAFETY: the kernel just returned this descriptor, open and owned by no one else.
    Some(unsafe { OwnedFd::from_raw_fd(descriptor) })
}

/// Whether `bytes` is a path `realpath` would return unchanged were no component a symlink.
fn is_lexically_canonical(bytes: &[u8]) -> bool {
    match bytes {
        b"/" => true,
        [b'/', rest @ ..] => rest.split(|&byte| byte == b'/').all(|part| !matches!(part, b"" | b"." | b"..")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_normal_paths_are_taken_as_they_are() {
        for path in ["/", "/usr", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/a/.b/..c"] {
            assert!(is_lexically_canonical(path.as_bytes()), "{path}");
        }
        for path in ["", "usr", "./usr", "//usr", "/usr/", "/usr//lib", "/usr/./lib", "/usr/..", "/usr/lib/."] {
            assert!(!is_lexically_canonical(path.as_bytes()), "{path}");
        }
    }

    #[test]
    fn a_symlink_on_the_way_is_resolved_as_realpath_resolves_it() {
        let directory = std::env::temp_dir().join(format!("h-paths-{}", std::process::id()));
        std::fs::create_dir_all(directory.join("real")).unwrap();
        std::fs::write(directory.join("real/file"), b"").unwrap();
        let link = directory.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("real", &link).unwrap();
        let real = std::fs::canonicalize(directory.join("real/file")).unwrap();

        assert!(open_exact(&link.join("file")).is_none());
        assert_eq!(canonical(&link.join("file")).unwrap(), real);
        assert_eq!(canonical(&real).unwrap(), real);
        assert!(open_exact(&real).is_some());
        assert_eq!(
            canonical(&directory.join("missing")).unwrap_err().kind(),
            std::fs::canonicalize(directory.join("missing")).unwrap_err().kind()
        );
        std::fs::remove_dir_all(&directory).unwrap();
    }
}
