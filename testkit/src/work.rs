//! Who runs a case, and the fresh work directory each run gets.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::case::Case;

/// A user a case runs as: `root` or `user` (the label a case's `users` names), and its ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub label: String,
    pub uid: u32,
    pub gid: u32,
}

impl User {
    pub fn root() -> User {
        User { label: "root".to_string(), uid: 0, gid: 0 }
    }

    /// The unprivileged user of the runs.
    pub fn unprivileged(uid: u32, gid: u32) -> User {
        User { label: "user".to_string(), uid, gid }
    }
}

/// The unprivileged user's name, on the test machine and in the QEMU guest.
pub const TEST_USER: &str = "h-test";

fn test_user() -> io::Result<User> {
    let lookup = || -> Option<(u32, u32)> {
        let uid = Command::new("id").args(["-u", TEST_USER]).output().ok()?;
        let gid = Command::new("id").args(["-g", TEST_USER]).output().ok()?;
        if !uid.status.success() {
            return None;
        }
        Some((
            String::from_utf8(uid.stdout).ok()?.trim().parse().ok()?,
            String::from_utf8(gid.stdout).ok()?.trim().parse().ok()?,
        ))
    };
    let (uid, gid) = match lookup() {
        Some(ids) => ids,
        None => {
            let status = Command::new("useradd")
                .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER])
                .status()?;
            if !status.success() {
                return Err(io::Error::other(format!("cannot create the test user {TEST_USER}: useradd {status}")));
            }
            lookup().ok_or_else(|| io::Error::other(format!("no test user {TEST_USER} after useradd")))?
        }
    };
    Ok(User::unprivileged(uid, gid))
}

/// Who runs the cases here: as root, root and [`TEST_USER`] (created when missing); otherwise
/// the current user.
pub fn local_users() -> io::Result<Vec<User>> {
    // SAFETY: geteuid and getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid == 0 {
        Ok(vec![User::root(), test_user()?])
    } else {
        Ok(vec![User::unprivileged(uid, gid)])
    }
}

fn annotate(path: &Path) -> impl Fn(io::Error) -> io::Error + '_ {
    move |error| io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to).map_err(annotate(to))?;
    for entry in std::fs::read_dir(from).map_err(annotate(from))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(annotate(&entry.path()))?;
        }
    }
    Ok(())
}

fn chown_tree(path: &Path, who: &User) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(who.uid), Some(who.gid)).map_err(annotate(path))?;
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).map_err(annotate(path))? {
            chown_tree(&entry?.path(), who)?;
        }
    }
    Ok(())
}

/// The runs' directory under the system's temporary directory, removed on drop.
pub(crate) struct Scratch {
    pub(crate) root: PathBuf,
}

/// Programs the cases of every host share (`$HELPERS/NAME` in a caller script), compiled into
/// the runner so that every place it runs (`cargo xtask test`, the QEMU guest, the NixOS VM
/// tests) has them.
const HELPERS: &[(&str, &str)] = &[
    ("scan_memory.py", include_str!("../helpers/scan_memory.py")),
    ("tcp_server.py", include_str!("../helpers/tcp_server.py")),
    ("serve.sh", include_str!("../helpers/serve.sh")),
    ("learn.sh", include_str!("../helpers/learn.sh")),
];

impl Scratch {
    pub(crate) fn new(host: &str) -> io::Result<Scratch> {
        let root = std::env::temp_dir().join(format!("h-cases-{host}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).map_err(annotate(&root))?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))?;
        let scratch = Scratch { root };
        let helpers = scratch.helpers();
        std::fs::create_dir_all(&helpers).map_err(annotate(&helpers))?;
        std::fs::set_permissions(&helpers, std::fs::Permissions::from_mode(0o755))?;
        for (name, text) in HELPERS {
            let path = helpers.join(name);
            std::fs::write(&path, text).map_err(annotate(&path))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        }
        Ok(scratch)
    }

    /// The directory of the shared helpers (readable by every user).
    pub(crate) fn helpers(&self) -> PathBuf {
        self.root.join("helpers")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A fresh work directory `name` for one run: the case folder as `case/`, an empty `home/`, the
/// case's `files` and `file_modes`, everything owned by `who`.
pub(crate) fn prepare_work(
    scratch: &Scratch,
    name: &str,
    case_dir: &Path,
    case: &Case,
    who: &User,
) -> io::Result<PathBuf> {
    let work = scratch.root.join(name);
    let _ = std::fs::remove_dir_all(&work);
    copy_tree(case_dir, &work.join("case"))?;
    std::fs::create_dir_all(work.join("home"))?;
    for (path, contents) in &case.files {
        let target = work.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(annotate(parent))?;
        }
        std::fs::write(&target, contents).map_err(annotate(&target))?;
    }
    chown_tree(&work, who)?;
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755))?;
    for (path, mode) in &case.file_modes {
        let mode = u32::from_str_radix(mode, 8)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad mode {mode} for {path}")))?;
        let target = work.join(path);
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).map_err(annotate(&target))?;
    }
    Ok(work)
}

pub(crate) fn substitute(text: &str, work: &Path) -> String {
    text.replace("$WORK", &work.to_string_lossy())
}
