//! The guest's root filesystem: one uncompressed newc initramfs built from the hosts' landlock
//! tables.
//!
//! It holds `/init`, busybox (static, with its applets linked in `/bin`), the runner, and for each
//! host its binary in `/bin`, every file and directory of its landlock table at the same path
//! (directories without the host's `left_out` entries), the ELF closure of every program and
//! library among them by the paths the loader opens (symlinks kept, found by `h-resolve`), and
//! its `cases/` and `attacks/` under `/cases/HOST`; then the programs and files of
//! [`GUEST_FILES`] the cases use outside the sandbox.
//! The image is checked to hold every path of every table as the same kind of file.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use h_resolve::{is_elf, loaded_objects_with, Search};

use super::binaries::{require_static, Binaries, Built};
use super::cpio::{name_of, Cpio, DIRECTORY, REGULAR};
use super::hosts::GUEST_FILES;
use super::protocol::{GuestConfig, GuestHost, CONFIG_PATH};
use h_testkit::FOLDERS;

/// The unprivileged user of the guest (`h-test`).
const UID: u32 = 1000;
const GID: u32 = 1000;

/// Guest code runs about ten times slower under TCG: case timeouts are stretched by this.
const TIMEOUT_FACTOR: u64 = 3;

/// The guest's `/init`: mount the pseudo filesystems, run the case runner, power off.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox mkdir -p /dev/pts
/bin/busybox mount -t devpts devpts /dev/pts
/bin/busybox mount -t tmpfs -o mode=1777 tmpfs /tmp
/bin/busybox ip link set lo up
/bin/busybox ln -s /proc/self/fd /dev/fd
/bin/busybox ln -s /proc/self/fd/0 /dev/stdin
/bin/busybox ln -s /proc/self/fd/1 /dev/stdout
/bin/busybox ln -s /proc/self/fd/2 /dev/stderr
/bin/h-vm-runner vm-test --guest /etc/h-vm.json
echo "H-VM-EXIT $?"
/bin/busybox poweroff -f
"#;

/// The ELF files beneath `dir`, without the `left_out` names.
fn elf_files(dir: &Path, left_out: &[&str], found: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if left_out.contains(&entry.file_name().to_string_lossy().as_ref()) {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            elf_files(&entry.path(), left_out, found)?;
        } else if kind.is_file() && is_elf(&entry.path()) {
            found.push(entry.path());
        }
    }
    Ok(())
}

/// Copies `programs` (the first one the program, the rest loaded into it) and their ELF closure
/// by every path the loader opens, except the file `outside` (a host binary, which the guest
/// holds in `/bin`).
fn mirror_closure(cpio: &mut Cpio, programs: &[PathBuf], outside: Option<&Path>) -> Result<()> {
    if programs.is_empty() {
        return Ok(());
    }
    let loaded = loaded_objects_with(&Search::host(), programs).map_err(|error| anyhow::anyhow!("{error}"))?;
    for object in loaded.iter().filter(|object| Some(object.path.as_path()) != outside) {
        cpio.mirror(&object.path).with_context(|| format!("copying {}", object.path.display()))?;
    }
    Ok(())
}

fn add_host(cpio: &mut Cpio, root: &Path, host: &Built) -> Result<GuestHost> {
    let name = host.manifest.name.as_str();
    let left_out: Vec<&str> = host.manifest.vm.left_out.iter().map(String::as_str).collect();
    let binary = PathBuf::from("/bin").join(name);
    cpio.file(&name_of(&binary), 0o755, &std::fs::read(&host.binary)?)?;
    let mut programs = Vec::new();
    if !host.manifest.build.static_libc {
        programs.push(host.binary.clone());
    }
    for file in &host.table {
        let meta = std::fs::metadata(&file.path).with_context(|| format!("{name} grants {}", file.path.display()))?;
        if meta.is_dir() {
            cpio.mirror(&file.path)?;
            cpio.tree(&name_of(&file.path), &file.path, &left_out)?;
            elf_files(&file.path, &left_out, &mut programs)?;
        } else {
            cpio.mirror(&file.path)?;
            if is_elf(&file.path) {
                programs.push(file.path.clone());
            }
        }
    }
    mirror_closure(cpio, &programs, Some(&host.binary)).with_context(|| format!("{name}'s ELF closure"))?;

    for file in &host.table {
        let want = if file.path.is_dir() { DIRECTORY } else { REGULAR };
        if cpio.kind(&name_of(&file.path)) != Some(want) {
            bail!("{name} grants {}, which is not the same kind of file in the guest", file.path.display());
        }
    }
    let cases = PathBuf::from("/cases").join(name);
    cpio.dir(&name_of(&cases), 0o755)?;
    for folder in FOLDERS {
        let from = root.join("hosts").join(name).join(folder);
        if from.is_dir() {
            cpio.tree(&name_of(&cases.join(folder)), &from, &[])?;
        }
    }
    let build_values: Vec<(&str, &str)> = host.env.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    let vars = host.manifest.case_vars(&build_values).map_err(anyhow::Error::msg)?;
    Ok(GuestHost { name: name.to_string(), binary, cases, vars })
}

/// busybox and its applets in `/bin` (the programs cases run outside the sandbox: `sleep`,
/// `grep`, `awk`, ...), except names the image has already. Where the image has the program in
/// `/usr/bin` (bash, dash as `sh`, coreutils' `cat`), `/bin/NAME` links to it, as on a
/// merged-`/usr` system: a program granted by its `PATH` name is then also the one a host runs
/// by `/bin/NAME` (hlua's `io.popen` runs `/bin/sh`).
fn add_busybox(cpio: &mut Cpio) -> Result<()> {
    let busybox = Path::new("/bin/busybox");
    require_static(busybox).context("busybox must be the static one (Debian package busybox-static)")?;
    cpio.file("bin/busybox", 0o755, &std::fs::read(busybox)?)?;
    let list = Command::new(busybox).arg("--list").output().context("busybox --list")?;
    for applet in String::from_utf8_lossy(&list.stdout).lines().map(str::trim) {
        let name = format!("bin/{applet}");
        if applet.is_empty() || applet.contains('/') || cpio.kind(&name).is_some() {
            continue;
        }
        let merged = Path::new("/usr/bin").join(applet);
        if cpio.kind(&name_of(&merged)).is_some() {
            cpio.symlink(&name, &merged)?;
        } else {
            cpio.symlink(&name, Path::new("busybox"))?;
        }
    }
    Ok(())
}

/// Writes the initramfs to `path`; returns its size in bytes.
pub fn write_initramfs(root: &Path, binaries: &Binaries, path: &Path) -> Result<usize> {
    let mut cpio = Cpio::default();
    for dir in ["bin", "etc", "proc", "sys", "dev", "root", "cases"] {
        cpio.dir(dir, 0o755)?;
    }
    cpio.dir("tmp", 0o1777)?;
    cpio.character_device("dev/console", 0o600, 5, 1)?;
    cpio.file("init", 0o755, INIT.as_bytes())?;
    cpio.file("bin/h-vm-runner", 0o755, &std::fs::read(&binaries.runner)?)?;
    let mut hosts = Vec::new();
    for host in &binaries.hosts {
        hosts.push(add_host(&mut cpio, root, host)?);
    }
    for file in GUEST_FILES {
        let path = Path::new(file);
        // A directory a host's table brought in whole is there already.
        let present = cpio.kind(&name_of(path)).is_some();
        cpio.mirror(path).with_context(|| format!("the cases need {file} in the guest"))?;
        if path.is_dir() && !present {
            cpio.tree(&name_of(path), path, &[])?;
        } else if is_elf(path) {
            mirror_closure(&mut cpio, &[path.to_path_buf()], None)?;
        }
    }
    add_busybox(&mut cpio)?;
    let user = h_testkit::TEST_USER;
    let passwd = format!("root:x:0:0:root:/root:/bin/sh\n{user}:x:{UID}:{GID}:h test user:/nonexistent:/bin/false\n");
    cpio.file("etc/passwd", 0o644, passwd.as_bytes())?;
    cpio.file("etc/group", 0o644, format!("root:x:0:\n{user}:x:{GID}:\n").as_bytes())?;
    // As on any machine: the cases grant `localhost:PORT` by name (connect-by-name).
    cpio.file("etc/hosts", 0o644, b"127.0.0.1 localhost\n")?;
    let config = GuestConfig { hosts, uid: UID, gid: GID, timeout_factor: TIMEOUT_FACTOR };
    cpio.file(CONFIG_PATH, 0o644, serde_json::to_string_pretty(&config)?.as_bytes())?;

    let bytes = cpio.finish()?;
    super::write_file(path, &bytes)?;
    Ok(bytes.len())
}
