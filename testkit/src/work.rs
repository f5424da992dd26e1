//! Who runs a case, and the fresh work directory each run gets.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::case::Case;

#[derive(Clone, Copy, Debug)]
pub(crate) struct RunAs {
    pub(crate) label: &'static str,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

const TEST_USER: &str = "h-test";

fn unprivileged_user() -> RunAs {
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
                .status()
                .expect("useradd");
            assert!(status.success(), "cannot create the test user {TEST_USER}");
            lookup().expect("test user after useradd")
        }
    };
    RunAs { label: "user", uid, gid }
}

pub(crate) fn users() -> Vec<RunAs> {
    // SAFETY: geteuid and getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid == 0 {
        vec![RunAs { label: "root", uid: 0, gid: 0 }, unprivileged_user()]
    } else {
        vec![RunAs { label: "user", uid, gid }]
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn chown_tree(path: &Path, who: RunAs) {
    std::os::unix::fs::lchown(path, Some(who.uid), Some(who.gid)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), who);
        }
    }
}

pub(crate) struct Scratch {
    pub(crate) root: PathBuf,
}

impl Scratch {
    pub(crate) fn new(host: &str) -> Scratch {
        let root = std::env::temp_dir().join(format!("h-cases-{host}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch { root }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

pub(crate) fn prepare_work(scratch: &Scratch, name: &str, case_dir: &Path, case: &Case, who: RunAs) -> PathBuf {
    let work = scratch.root.join(name);
    let _ = std::fs::remove_dir_all(&work);
    copy_tree(case_dir, &work.join("case"));
    std::fs::create_dir_all(work.join("home")).unwrap();
    for (path, contents) in &case.files {
        let target = work.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, contents).unwrap();
    }
    chown_tree(&work, who);
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (path, mode) in &case.file_modes {
        let mode = u32::from_str_radix(mode, 8).unwrap_or_else(|_| panic!("bad mode {mode}"));
        std::fs::set_permissions(work.join(path), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    work
}

pub(crate) fn substitute(text: &str, work: &Path) -> String {
    text.replace("$WORK", &work.to_string_lossy())
}
