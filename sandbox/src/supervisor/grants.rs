//! The host's landlock grants as the supervisor sees them: canonical paths with what each
//! lets the script do. Emulated calls act only where these admit a change or a watch; `--learn`
//! asks them whether landlock would have let a path be read, written, created or executed.

use std::path::{Path, PathBuf};

use crate::filesystem::{FsAccess, OpenedRule};

/// One grant of the host, resolved.
struct Grant {
    root: PathBuf,
    is_directory: bool,
    access: FsAccess,
}

impl Grant {
    /// `path` is the grant, or lies beneath a granted directory.
    fn covers(&self, path: &Path) -> bool {
        path == self.root || (self.is_directory && path.starts_with(&self.root))
    }

    fn writable(&self) -> bool {
        matches!(self.access, FsAccess::ReadWrite | FsAccess::Terminal)
    }
}

/// Where the script may act: the host's landlock grants, by canonical path.
pub(crate) struct Grants {
    grants: Vec<Grant>,
    /// Run by root, the supervisor's effective uid and gid: it acts only for a caller with the
    /// same (read at start, before its filter, which allows no geteuid). Run by a user, no
    /// process of the run can have other credentials (no_new_privs, no capabilities).
    pub(super) identity: Option<(u32, u32)>,
}

impl Grants {
    /// The grants of `rules`, resolved now (a grant whose path does not resolve admits nothing).
    pub(crate) fn new(rules: &[OpenedRule]) -> Grants {
        let grants = rules
            .iter()
            .filter_map(|rule| {
                let root = rule.canonical_path()?;
                Some(Grant { root, is_directory: rule.is_directory, access: rule.access })
            })
            .collect();
        // SAFETY: geteuid and getegid have no preconditions.
        let identity = unsafe { (libc::geteuid() == 0).then(|| (libc::geteuid(), libc::getegid())) };
        Grants { grants, identity }
    }

    /// Whether `path` (absolute, canonical) may be changed: it lies beneath a directory the
    /// script may write (not that directory itself, which the user handed over but did not give
    /// away), or it is a file the script may write.
    pub(super) fn admit_change(&self, path: &Path) -> bool {
        self.grants.iter().filter(|grant| grant.access == FsAccess::ReadWrite).any(|grant| {
            if grant.is_directory {
                path != grant.root && path.starts_with(&grant.root)
            } else {
                path == grant.root
            }
        })
    }

    /// Whether `path` may be watched: it is a grant or lies beneath one (what the script may
    /// list or read there anyway).
    pub(super) fn admit_watch(&self, path: &Path) -> bool {
        self.grants.iter().any(|grant| grant.covers(path))
    }

    /// Whether landlock lets the script read `path` (every grant reads what it covers).
    pub(super) fn admit_read(&self, path: &Path) -> bool {
        self.admit_watch(path)
    }

    /// Whether landlock lets the script write the existing file `path`.
    pub(super) fn admit_write(&self, path: &Path) -> bool {
        self.grants.iter().any(|grant| grant.writable() && grant.covers(path))
    }

    /// Whether landlock lets the script create a file or directory in `directory`.
    pub(super) fn admit_create_in(&self, directory: &Path) -> bool {
        self.grants
            .iter()
            .any(|grant| grant.access == FsAccess::ReadWrite && grant.is_directory && grant.covers(directory))
    }

    /// Whether landlock lets the script execute `path`.
    pub(super) fn admit_execute(&self, path: &Path) -> bool {
        self.grants.iter().any(|grant| grant.access == FsAccess::ReadExecute && grant.covers(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filesystem::open_rules;
    use crate::FsRule;

    #[test]
    fn grants_admit_what_lies_beneath_them_only() {
        let dir = std::env::temp_dir().join(format!("h-grants-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("inner")).unwrap();
        let rule = |path: &Path, access| FsRule { path: path.to_path_buf(), access, why: String::new() };
        let opened = open_rules(&[rule(&dir.join("inner"), FsAccess::ReadWrite), rule(&dir, FsAccess::Read)]).unwrap();
        let grants = Grants::new(&opened);
        assert!(open_rules(&[rule(Path::new("/no/such/h/grant"), FsAccess::ReadWrite)]).is_err(), "a missing grant");
        let inner = std::fs::canonicalize(dir.join("inner")).unwrap();
        let outer = std::fs::canonicalize(&dir).unwrap();
        assert!(!grants.admit_change(&inner), "the granted directory itself");
        assert!(grants.admit_change(&inner.join("a")));
        assert!(grants.admit_change(&inner.join("a/b")));
        assert!(!grants.admit_change(&outer), "a read grant");
        assert!(!grants.admit_change(&outer.join("file")), "beneath a read grant");
        assert!(!grants.admit_change(&PathBuf::from(format!("{}-sibling", inner.display()))));
        assert!(!grants.admit_change(Path::new("/no/such/h/grant")));
        assert!(grants.admit_watch(&outer) && grants.admit_watch(&outer.join("file")) && grants.admit_watch(&inner));
        assert!(!grants.admit_watch(Path::new("/etc")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn grants_answer_what_landlock_would_allow() {
        let dir = std::env::temp_dir().join(format!("h-grants-learn-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("out")).unwrap();
        std::fs::write(dir.join("data"), "x").unwrap();
        std::fs::write(dir.join("tool"), "x").unwrap();
        let rule = |path: PathBuf, access| FsRule { path, access, why: String::new() };
        let grants = Grants::new(
            &open_rules(&[
                rule(dir.join("out"), FsAccess::ReadWrite),
                rule(dir.join("data"), FsAccess::Read),
                rule(dir.join("tool"), FsAccess::ReadExecute),
            ])
            .unwrap(),
        );
        let dir = std::fs::canonicalize(&dir).unwrap();
        assert!(grants.admit_read(&dir.join("data")) && !grants.admit_write(&dir.join("data")));
        assert!(grants.admit_read(&dir.join("out/a")) && grants.admit_write(&dir.join("out/a")));
        assert!(grants.admit_create_in(&dir.join("out")) && grants.admit_create_in(&dir.join("out/sub")));
        assert!(!grants.admit_create_in(&dir), "a file grant's directory");
        assert!(!grants.admit_read(&dir.join("other")) && !grants.admit_read(&dir));
        assert!(grants.admit_execute(&dir.join("tool")) && !grants.admit_execute(&dir.join("data")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
