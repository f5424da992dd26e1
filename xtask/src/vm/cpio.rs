//! A newc ("070701") cpio writer: the format the kernel unpacks as its initramfs.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The file type bits of a mode.
pub const TYPE_MASK: u32 = 0o170_000;
pub const DIRECTORY: u32 = 0o040_000;
pub const REGULAR: u32 = 0o100_000;
const SYMLINK: u32 = 0o120_000;
const CHARACTER_DEVICE: u32 = 0o020_000;

/// An archive being written in memory. Names are relative (`bin/busybox`), each written once.
#[derive(Default)]
pub struct Cpio {
    out: Vec<u8>,
    inode: u32,
    /// The names written so far, with their file type bits.
    names: BTreeMap<String, u32>,
}

/// The name of `path` in the archive (without the leading `/`).
pub fn name_of(path: &Path) -> String {
    path.strip_prefix("/").unwrap_or(path).to_string_lossy().into_owned()
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) -> Result<()> {
        if self.names.insert(name.to_string(), mode & TYPE_MASK).is_some() {
            bail!("{name} is in the initramfs twice");
        }
        self.inode += 1;
        let size = u32::try_from(data.len()).with_context(|| format!("{name} is too large for cpio"))?;
        let name_size = u32::try_from(name.len() + 1).context("cpio name too long")?;
        let fields = [self.inode, mode, 0, 0, 1, 0, size, 0, 0, rdev.0, rdev.1, name_size, 0];
        self.out.extend_from_slice(b"070701");
        for value in fields {
            self.out.extend_from_slice(format!("{value:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
        Ok(())
    }

    fn pad(&mut self) {
        while self.out.len() & 3 != 0 {
            self.out.push(0);
        }
    }

    /// The file type bits of `name` if it was written.
    pub fn kind(&self, name: &str) -> Option<u32> {
        self.names.get(name).copied()
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> Result<()> {
        self.entry(name, DIRECTORY | mode, &[], (0, 0))
    }

    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> Result<()> {
        self.entry(name, REGULAR | mode, data, (0, 0))
    }

    pub fn symlink(&mut self, name: &str, target: &Path) -> Result<()> {
        self.entry(name, SYMLINK | 0o777, target.to_string_lossy().as_bytes(), (0, 0))
    }

    pub fn character_device(&mut self, name: &str, mode: u32, major: u32, minor: u32) -> Result<()> {
        self.entry(name, CHARACTER_DEVICE | mode, &[], (major, minor))
    }

    /// Copies the directory tree `from` to `name` (files 0644, or 0755 when executable;
    /// directories 0755; symlinks as they are), leaving out every entry whose file name is in
    /// `left_out`.
    pub fn tree(&mut self, name: &str, from: &Path, left_out: &[&str]) -> Result<()> {
        if self.kind(name).is_none() {
            self.dir(name, 0o755)?;
        }
        let mut entries: Vec<_> = std::fs::read_dir(from)
            .with_context(|| format!("reading {}", from.display()))?
            .collect::<std::io::Result<Vec<_>>>()?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if left_out.contains(&file_name.as_str()) {
                continue;
            }
            let child = format!("{name}/{file_name}");
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                self.symlink(&child, &std::fs::read_link(entry.path())?)?;
            } else if kind.is_dir() {
                self.tree(&child, &entry.path(), left_out)?;
            } else if kind.is_file() {
                let executable = entry.metadata()?.permissions().mode() & 0o111 != 0;
                let data =
                    std::fs::read(entry.path()).with_context(|| format!("reading {}", entry.path().display()))?;
                self.file(&child, if executable { 0o755 } else { 0o644 }, &data)?;
            } else {
                bail!("{}: only files, directories and symlinks can go into the guest", entry.path().display());
            }
        }
        Ok(())
    }

    /// Copies `path` of this machine to the same path in the guest: each directory on the way,
    /// each symlink as a symlink (and what it points to), and the file itself with its mode (a
    /// directory at the end is created empty). Entries already written are kept; a name written
    /// as another type is an error.
    pub fn mirror(&mut self, path: &Path) -> Result<()> {
        let mut real = PathBuf::from("/");
        let parts: Vec<_> = path.components().skip(1).collect();
        for (index, part) in parts.iter().enumerate() {
            if *part == Component::ParentDir {
                real.pop();
                continue;
            }
            let here = real.join(part);
            let name = name_of(&here);
            let meta = std::fs::symlink_metadata(&here).with_context(|| format!("{}", here.display()))?;
            let kind = meta.mode() & TYPE_MASK;
            if let Some(written) = self.kind(&name) {
                if written != kind {
                    bail!("{} cannot go into the guest: {name} is already there as another type", path.display());
                }
            } else if meta.is_symlink() {
                self.symlink(&name, &std::fs::read_link(&here)?)?;
            } else if meta.is_dir() {
                self.dir(&name, 0o755)?;
            } else if meta.is_file() && index + 1 == parts.len() {
                let data = std::fs::read(&here).with_context(|| format!("reading {}", here.display()))?;
                self.file(&name, meta.mode() & 0o7777, &data)?;
            } else {
                bail!("{}: only files, directories and symlinks can go into the guest", here.display());
            }
            if meta.is_symlink() {
                let target = real.join(std::fs::read_link(&here)?);
                let rest: PathBuf = parts[index + 1..].iter().collect();
                return self.mirror(&target.join(rest));
            }
            real = here;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.entry("TRAILER!!!", 0, &[], (0, 0))?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_aligned_newc() {
        let mut cpio = Cpio::default();
        cpio.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        assert!(cpio.file("init", 0o755, b"").is_err());
        let bytes = cpio.finish().unwrap();
        assert!(bytes.starts_with(b"070701"));
        assert_eq!(bytes.len() % 4, 0);
        assert!(bytes.windows(10).any(|w| w == b"TRAILER!!!"));
    }

    #[test]
    fn mirror_keeps_symlinks_and_what_they_point_to() {
        let dir = std::env::temp_dir().join(format!("h-vm-cpio-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("real")).unwrap();
        std::fs::write(dir.join("real/file"), b"x").unwrap();
        std::os::unix::fs::symlink("real", dir.join("link")).unwrap();
        let mut cpio = Cpio::default();
        cpio.mirror(&dir.join("link/file")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let name = |tail: &str| name_of(&dir.join(tail));
        assert_eq!(cpio.kind(&name("link")), Some(SYMLINK));
        assert_eq!(cpio.kind(&name("real")), Some(DIRECTORY));
        assert_eq!(cpio.kind(&name("real/file")), Some(REGULAR));
    }
}
