//! `cargo xtask vm-test [--kernel VERSION]... [--jobs N]`: the hosts on real kernels.
//!
//! For each kernel of [`KERNELS`] (or the ones named with `--kernel`) this:
//!
//! 1. fetches the Debian `cloud-amd64` kernel image with `apt-get download` under a private apt
//!    configuration in `target/vm-kernels/apt` (its own sources.list, lists, cache and status; the
//!    machine's apt sources are never touched), unpacks it with `dpkg-deb -x` and caches the
//!    bare `vmlinuz` as `target/vm-kernels/VERSION/vmlinuz` (nothing is installed on the host);
//! 2. builds the hosts and this xtask as static binaries (`+crt-static`, `target/vm`);
//! 3. writes one initramfs (newc cpio, uncompressed) holding busybox-static, the static hosts,
//!    the static xtask as the in-guest case runner, the hosts' `cases/` and `attacks/`, and an
//!    unprivileged user `h-test` (uid 1000) in `/etc/passwd`;
//! 4. boots it under QEMU with software emulation (`-accel tcg`, no KVM: it cannot boot kernels
//!    on these machines) and reads the serial console.
//!
//! Inside the guest, `/init` runs `xtask vm-test --guest /cases` as root; the runner measures the
//! kernel's landlock ABI itself, checks it against the ABI this table expects (passed on the
//! kernel command line), runs every case as `h-test` and as root (a case may restrict that),
//! asserts the per-kernel expectations (see [`guest`]) and prints one `H-VM-RESULT` line that
//! the host side turns into one row of the table. Anything missing or failed exits non-zero.
//!
//! Everything runs from the initramfs: the hosts in the guest are static and read nothing from
//! `/usr`, so no 9p or virtio module is needed (docs/vm-tests.md has the measurements). Only
//! hlua runs in the guest for now: hpython, hsh and hnode need their interpreters' files.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A kernel of the matrix: a Debian kernel series, the suite that carries it, and the landlock
/// ABI it must report (`None`: no landlock at all).
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    pub version: &'static str,
    pub suite: &'static str,
    pub abi: Option<u32>,
}

/// The matrix. The newest package of each series in its suite is taken.
pub const KERNELS: &[Kernel] = &[
    Kernel { version: "5.10", suite: "bullseye", abi: None },
    Kernel { version: "6.1", suite: "bookworm", abi: Some(2) },
    Kernel { version: "6.12", suite: "trixie", abi: Some(6) },
    Kernel { version: "6.18", suite: "trixie-backports", abi: Some(7) },
    Kernel { version: "7.3", suite: "trixie-backports", abi: Some(11) },
];

/// A host that runs in the guest, with what it needs there and which of its cases a kernel or
/// the guest cannot serve. Case names are `FOLDER/NAME` (`attacks/exec`); every entry must be a
/// case (checked in the guest and by a unit test).
pub struct GuestHost {
    pub name: &'static str,
    /// Programs of this machine the host executes: each one, its program interpreter and its
    /// libraries go into the guest at the same paths, symlinks kept (the landlock table names
    /// the canonical files, the loader opens them by the names it was linked with).
    pub executes: &'static [&'static str],
    /// Files of this machine the attacks aim at: they must exist for landlock to deny them.
    pub targets: &'static [&'static str],
    /// Cases that need landlock ABI N or later: skipped on older kernels and without landlock.
    pub needs_abi: &'static [(&'static str, u32)],
    /// Cases that run programs the guest does not have (only busybox and the hosts' own
    /// interpreters are there): skipped on every kernel; the host's `cargo xtask test` runs them.
    pub needs_programs: &'static [&'static str],
    /// Cases that must run, and pass, without landlock (`--allow-degraded`): what seccomp, the
    /// environment scrub and the rlimits still stop there. None may be skipped.
    pub degraded_holds: &'static [&'static str],
}

/// The hosts that run in the guest: the static build of each, plus the files it names.
pub const GUEST_HOSTS: &[GuestHost] = &[
    GuestHost {
        name: "hlua",
        executes: &[],
        targets: &[LOADLIB_TARGET],
        needs_abi: &[
            // Landlock's filesystem layer (ABI 1) is what these show: files outside the grants,
            // a sibling module without -s, a library the script tries to load, root's DAC bypass.
            ("cases/allow-write", 1),
            ("cases/require-without-s", 1),
            ("attacks/delete", 1),
            ("attacks/read-secret", 1),
            ("attacks/rename", 1),
            ("attacks/root-dac-override", 1),
            ("attacks/write-outside", 1),
        ],
        needs_programs: &[
            "cases/allow-exec", // sh, cat and ls
        ],
        degraded_holds: &["attacks/exec", "attacks/popen", "attacks/environment", "attacks/loadlib"],
    },
    GuestHost {
        name: "hsh",
        executes: &["/usr/bin/bash"],
        targets: &[LOADLIB_TARGET],
        needs_abi: &[
            // Landlock's filesystem layer (ABI 1): unreadable siblings and secrets, no writes
            // or truncation outside the grants, no library for `enable -f`.
            ("cases/source-without-s", 1),
            ("attacks/enable-f", 1),
            ("attacks/read-secret", 1),
            ("attacks/truncate", 1),
            ("attacks/write-outside", 1),
            // Landlock's signal scope (ABI 6): before it, kill -0 reaches the supervisor (same
            // user), the parent and, as root, pid 1.
            ("cases/signal-scope", 6),
            ("attacks/kill-init", 6),
            ("attacks/kill-parent", 6),
        ],
        needs_programs: &[
            "cases/external-command",       // ls: landlock's exit 126 needs the program to exist
            "attacks/exec-python",          // python3
            "attacks/loader-trick",         // /usr/bin/id, the program ld.so is asked to run
            "attacks/tiocsti",              // script(1) and python3
            "cases/allow-exec",             // cat and ls
            "attacks/exec-through-granted", // env, find and sh
        ],
        // /dev/tcp and /dev/udp: seccomp denies socket (issue 6), with or without landlock.
        degraded_holds: &["attacks/dev-tcp", "attacks/dev-udp", "attacks/environment"],
    },
];

/// The Debian mirror the private apt configuration uses (the same one the machine's apt uses).
const MIRROR: &str = "http://deb.debian.org/debian";

/// How long one kernel may take from QEMU's start to its power-off.
const BOOT_TIMEOUT: Duration = Duration::from_secs(900);

/// The kernel flavour: `cloud-amd64` images are the smallest and have everything the guest
/// needs built in (8250 serial console, initramfs, landlock, seccomp filters).
const FLAVOUR: &str = "cloud-amd64";

const USAGE: &str = "usage: cargo xtask vm-test [--kernel VERSION]... [--jobs N]";

pub fn run(root: &Path, arguments: &[String]) -> Result<()> {
    if arguments.first().map(String::as_str) == Some("--guest") {
        return guest::main(&arguments[1..]);
    }
    if std::env::consts::ARCH != "x86_64" {
        bail!("vm-test boots x86_64 kernels with a static x86_64 build; this machine is {}", std::env::consts::ARCH);
    }
    let (kernels, jobs) = parse_arguments(arguments)?;
    let started = Instant::now();
    ensure_tools()?;
    let cache = root.join("target/vm-kernels");
    let images = fetch_kernels(&cache, &kernels)?;
    let binaries = build_static(root)?;
    let initramfs = root.join("target/vm/initramfs.cpio");
    let size = write_initramfs(root, &binaries, &initramfs)?;
    eprintln!("vm-test: initramfs {} ({:.1} MiB)", initramfs.display(), size as f64 / (1024.0 * 1024.0));

    let logs = root.join("target/vm/logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let queue: Mutex<Vec<(usize, Kernel, KernelImage)>> = Mutex::new(
        kernels.iter().copied().zip(images).enumerate().map(|(i, (k, image))| (i, k, image)).rev().collect(),
    );
    let rows: Mutex<Vec<(usize, Row)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(kernels.len()) {
            scope.spawn(|| loop {
                let next = match queue.lock() {
                    Ok(mut queue) => queue.pop(),
                    Err(_) => None,
                };
                let Some((index, kernel, image)) = next else { break };
                eprintln!("vm-test: booting {} ({})", kernel.version, image.package);
                let log = logs.join(format!("{}.log", kernel.version));
                let row = boot(kernel, &image, &initramfs, &log);
                eprintln!("vm-test: {} done in {}s", kernel.version, row.seconds);
                for line in &row.failures {
                    eprintln!("vm-test: {}: {line}", kernel.version);
                }
                if let Ok(mut rows) = rows.lock() {
                    rows.push((index, row));
                }
            });
        }
    });
    let mut rows = rows.into_inner().map_err(|_| anyhow::anyhow!("a boot thread panicked"))?;
    rows.sort_by_key(|(index, _)| *index);
    if rows.len() != kernels.len() {
        bail!("only {} of {} kernels reported", rows.len(), kernels.len());
    }

    println!();
    println!("{}", Row::header());
    let mut bad = Vec::new();
    for (_, row) in &rows {
        for line in row.lines() {
            println!("{line}");
        }
        if !row.ok() {
            bad.push(row.kernel.version);
        }
    }
    let (passed, failed): (usize, usize) = rows
        .iter()
        .fold((0, 0), |(p, f), (_, row)| (p + row.passed, f + row.failed + usize::from(!row.ok() && row.failed == 0)));
    println!("vm-test: {} kernels in {}s, logs in {}", rows.len(), started.elapsed().as_secs(), logs.display());
    println!("{passed} passed, {failed} failed");
    if !bad.is_empty() {
        bail!("vm-test failed on kernel(s) {} (see {})", bad.join(", "), logs.display());
    }
    Ok(())
}

fn parse_arguments(arguments: &[String]) -> Result<(Vec<Kernel>, usize)> {
    let mut wanted: Vec<Kernel> = Vec::new();
    let mut jobs = std::thread::available_parallelism().map(usize::from).unwrap_or(1).clamp(1, 2);
    let mut iter = arguments.iter().peekable();
    while let Some(argument) = iter.next() {
        match argument.as_str() {
            "--kernel" | "-k" => {
                let mut any = false;
                while let Some(version) = iter.next_if(|value| !value.starts_with('-')) {
                    any = true;
                    for version in version.split(',').filter(|v| !v.is_empty()) {
                        let Some(kernel) = KERNELS.iter().find(|k| k.version == version) else {
                            let known: Vec<&str> = KERNELS.iter().map(|k| k.version).collect();
                            bail!("unknown kernel {version}; the matrix has {}", known.join(", "));
                        };
                        if !wanted.iter().any(|k| k.version == kernel.version) {
                            wanted.push(*kernel);
                        }
                    }
                }
                if !any {
                    bail!("--kernel needs a version\n{USAGE}");
                }
            }
            "--jobs" | "-j" => {
                let value = iter.next().with_context(|| format!("--jobs needs a number\n{USAGE}"))?;
                jobs = value.parse().ok().filter(|&n: &usize| n > 0).with_context(|| format!("bad --jobs {value}"))?;
            }
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown vm-test argument {other}\n{USAGE}"),
        }
    }
    if wanted.is_empty() {
        wanted = KERNELS.to_vec();
    }
    Ok((wanted, jobs))
}

// ---------------------------------------------------------------------------------------------
// Tools and kernels

fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output();
    output.ok().and_then(|out| String::from_utf8(out.stdout).ok()).is_some_and(|uid| uid.trim() == "0")
}

fn have(program: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {program} >/dev/null")).status().is_ok_and(|s| s.success())
}

fn package_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| out.status.success() && String::from_utf8_lossy(&out.stdout).ends_with("install ok installed"))
}

fn run_command(command: &mut Command) -> Result<()> {
    eprintln!("$ {command:?}");
    let status = command.status().with_context(|| format!("starting {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

/// QEMU and a static busybox from Debian, installed with apt-get when missing (as root).
fn ensure_tools() -> Result<()> {
    for tool in ["apt-get", "apt-cache", "dpkg-deb", "dpkg-query"] {
        if !have(tool) {
            bail!("vm-test needs {tool} (a Debian machine)");
        }
    }
    let mut missing = Vec::new();
    if !have("qemu-system-x86_64") {
        missing.push("qemu-system-x86");
    }
    if !package_installed("busybox-static") {
        missing.push("busybox-static");
    }
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!("missing Debian packages; run as root: apt-get update && apt-get install -y {}", missing.join(" "));
    }
    run_command(Command::new("apt-get").args(["update", "-qq"]))?;
    run_command(
        Command::new("apt-get").args(["install", "-y", "-qq"]).args(&missing).env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// A private apt configuration: its own sources, lists, cache and (empty) status file.
struct Apt {
    dir: PathBuf,
}

impl Apt {
    fn new(dir: PathBuf) -> Result<Apt> {
        for sub in ["lists/partial", "cache/archives/partial", "sources.list.d"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        }
        let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
        if !Path::new(keyring).exists() {
            bail!("{keyring} is missing (package debian-archive-keyring): the kernels could not be verified");
        }
        let mut suites: Vec<&str> = KERNELS.iter().map(|k| k.suite).collect();
        suites.dedup();
        let sources: String =
            suites.iter().map(|suite| format!("deb [signed-by={keyring}] {MIRROR} {suite} main\n")).collect();
        write_file(&dir.join("sources.list"), sources.as_bytes())?;
        write_file(&dir.join("status"), b"")?;
        Ok(Apt { dir })
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        let dir = self.dir.display();
        for option in [
            format!("Dir::Etc::SourceList={dir}/sources.list"),
            format!("Dir::Etc::SourceParts={dir}/sources.list.d"),
            format!("Dir::State::Lists={dir}/lists"),
            format!("Dir::Cache={dir}/cache"),
            format!("Dir::State::Status={dir}/status"),
            "APT::Architecture=amd64".to_string(),
            "APT::Architectures=amd64".to_string(),
            // The private directories belong to root; apt's _apt download user cannot write them.
            "APT::Sandbox::User=root".to_string(),
            // Only the package lists: no AppStream metadata, no translations.
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".to_string(),
            "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".to_string(),
            "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".to_string(),
            "Acquire::Languages=none".to_string(),
        ] {
            command.arg("-o").arg(option);
        }
        command
    }

    fn output(&self, program: &str, arguments: &[&str]) -> Result<String> {
        let mut command = self.command(program);
        command.args(arguments);
        let output = command.output().with_context(|| format!("starting {command:?}"))?;
        if !output.status.success() {
            bail!("{command:?} failed: {}\n{}", output.status, String::from_utf8_lossy(&output.stderr).trim());
        }
        String::from_utf8(output.stdout).with_context(|| format!("{command:?} printed non-UTF-8"))
    }
}

#[derive(Clone, Debug)]
struct KernelImage {
    vmlinuz: PathBuf,
    /// The Debian package it came from, with its version.
    package: String,
}

fn fetch_kernels(cache: &Path, kernels: &[Kernel]) -> Result<Vec<KernelImage>> {
    let mut apt: Option<Apt> = None;
    let mut images = Vec::new();
    for kernel in kernels {
        let dir = cache.join(kernel.version);
        let vmlinuz = dir.join("vmlinuz");
        let package_file = dir.join("package");
        if vmlinuz.is_file() && package_file.is_file() {
            let package = std::fs::read_to_string(&package_file)?.trim().to_string();
            images.push(KernelImage { vmlinuz, package });
            continue;
        }
        let apt = match &mut apt {
            Some(apt) => apt,
            None => {
                let fresh = Apt::new(cache.join("apt"))?;
                eprintln!("vm-test: apt-get update (private configuration in {})", fresh.dir.display());
                run_command(fresh.command("apt-get").args(["update", "-qq"]))?;
                apt.insert(fresh)
            }
        };
        images.push(fetch_kernel(apt, kernel, &dir)?);
    }
    Ok(images)
}

/// Orders package names by their numbers (`6.18.9` before `6.18.15`).
fn natural_key(name: &str) -> Vec<(u64, String)> {
    let mut key = Vec::new();
    let mut rest = name;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            key.push((rest[..digits].parse().unwrap_or(u64::MAX), String::new()));
            rest = &rest[digits..];
        } else {
            let text = rest.len() - rest.trim_start_matches(|c: char| !c.is_ascii_digit()).len();
            key.push((0, rest[..text].to_string()));
            rest = &rest[text..];
        }
    }
    key
}

/// Whether `name` is the `linux-image` package of kernel series `version` in our flavour.
fn is_image_of(name: &str, version: &str) -> bool {
    let Some(rest) = name.strip_prefix("linux-image-").and_then(|rest| rest.strip_prefix(version)) else {
        return false;
    };
    (rest.starts_with('.') || rest.starts_with('-')) && rest.ends_with(&format!("-{FLAVOUR}"))
}

fn fetch_kernel(apt: &Apt, kernel: &Kernel, dir: &Path) -> Result<KernelImage> {
    let pattern = format!("^linux-image-{}[.-].*-{FLAVOUR}$", kernel.version.replace('.', "\\."));
    let found = apt.output("apt-cache", &["search", "--names-only", &pattern])?;
    let mut names: Vec<&str> = found
        .lines()
        .filter_map(|line| line.split(' ').next())
        .filter(|name| is_image_of(name, kernel.version))
        .collect();
    names.sort_by_key(|name| natural_key(name));
    let Some(name) = names.last().copied() else {
        bail!("no {FLAVOUR} kernel {} found in Debian {} (apt-cache search '{pattern}')", kernel.version, kernel.suite);
    };
    let show = apt.output("apt-cache", &["show", "--no-all-versions", name])?;
    let version = field(&show, "Version").unwrap_or("?");
    let package = format!("{name} {version}");
    eprintln!("vm-test: fetching {package}");

    let download = dir.join("download");
    let _ = std::fs::remove_dir_all(&download);
    std::fs::create_dir_all(&download).with_context(|| format!("creating {}", download.display()))?;
    let unpacked = download.join("root");
    let mut pending = vec![name.to_string()];
    let mut fetched = Vec::new();
    let image = loop {
        let Some(next) = pending.pop() else {
            bail!("{package} and its linux-binary packages hold no vmlinuz");
        };
        run_command(apt.command("apt-get").current_dir(&download).args(["download", "-qq", &next]))?;
        let deb = std::fs::read_dir(&download)?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .find(|path| {
                path.file_name().is_some_and(|file| file.to_string_lossy().starts_with(&format!("{next}_")))
                    && path.extension().is_some_and(|ext| ext == "deb")
            })
            .with_context(|| format!("apt-get download {next} left no .deb in {}", download.display()))?;
        run_command(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
        fetched.push(next);
        if let Some(image) = find_vmlinuz(&unpacked)? {
            break image;
        }
        // Newer Debian kernels ship the image in a separate linux-binary-* package.
        let control = Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Depends").output()?;
        for dependency in String::from_utf8_lossy(&control.stdout).split([',', '|']) {
            let dependency = dependency.split_whitespace().next().unwrap_or("");
            if dependency.starts_with("linux-binary-") && !fetched.iter().any(|f| f == dependency) {
                pending.push(dependency.to_string());
            }
        }
    };
    let staged = dir.join("vmlinuz.partial");
    std::fs::copy(&image, &staged).with_context(|| format!("copying {}", image.display()))?;
    std::fs::rename(&staged, dir.join("vmlinuz"))?;
    write_file(&dir.join("package"), format!("{package}\n").as_bytes())?;
    std::fs::remove_dir_all(&download).with_context(|| format!("removing {}", download.display()))?;
    Ok(KernelImage { vmlinuz: dir.join("vmlinuz"), package })
}

fn field<'a>(control: &'a str, name: &str) -> Option<&'a str> {
    control.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':')).map(str::trim)
}

fn find_vmlinuz(dir: &Path) -> Result<Option<PathBuf>> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() && entry.file_name().to_string_lossy().starts_with("vmlinuz") {
                return Ok(Some(entry.path()));
            }
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------------
// Static build and initramfs

struct Binaries {
    hosts: Vec<(String, PathBuf)>,
    runner: PathBuf,
}

fn build_static(root: &Path) -> Result<Binaries> {
    let target_dir = root.join("target/vm");
    let triple = "x86_64-unknown-linux-gnu";
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    command.current_dir(root).args(["build", "--release", "--quiet", "--target", triple, "--package", "xtask"]);
    for host in GUEST_HOSTS {
        command.args(["--package", host.name]);
    }
    // With --target, RUSTFLAGS reach only the target's code: build scripts and proc macros
    // stay dynamic host programs.
    command.env("RUSTFLAGS", "-C target-feature=+crt-static").env_remove("CARGO_ENCODED_RUSTFLAGS");
    // hsh's build script then resolves /usr/bin/bash, the bash the guest gets.
    command.env("CARGO_TARGET_DIR", &target_dir).env_remove("H_BASH");
    run_command(&mut command)?;
    let out = target_dir.join(triple).join("release");
    let hosts = GUEST_HOSTS.iter().map(|host| (host.name.to_string(), out.join(host.name))).collect::<Vec<_>>();
    let runner = out.join("xtask");
    for path in hosts.iter().map(|(_, path)| path).chain([&runner]) {
        require_static(path)?;
    }
    Ok(Binaries { hosts, runner })
}

/// Fails unless `path` is an ELF executable without a program interpreter (a static binary).
fn require_static(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if elf_interpreter(&bytes).with_context(|| format!("{} is not a 64-bit ELF file", path.display()))? {
        bail!("{} is dynamically linked; the guest has no shared libraries", path.display());
    }
    Ok(())
}

/// Whether a 64-bit little-endian ELF file has a PT_INTERP program header; `None` if not ELF.
fn elf_interpreter(bytes: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if bytes.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let phoff = usize::try_from(u64::from_le_bytes(bytes.get(0x20..0x28)?.try_into().ok()?)).ok()?;
    let (entsize, count) = (usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    for index in 0..count {
        let at = phoff.checked_add(index.checked_mul(entsize)?)?;
        if u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}

/// A newc ("070701") cpio archive, the format the kernel unpacks as its initramfs.
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    inode: u32,
    /// The names written so far, with their file type bits.
    names: BTreeMap<String, u32>,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) -> Result<()> {
        if self.names.insert(name.to_string(), mode & 0o170_000).is_some() {
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

    fn dir(&mut self, name: &str, mode: u32) -> Result<()> {
        self.entry(name, 0o040_000 | mode, &[], (0, 0))
    }

    fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> Result<()> {
        self.entry(name, 0o100_000 | mode, data, (0, 0))
    }

    /// Copies a directory tree (files 0644, or 0755 when executable; directories 0755).
    fn tree(&mut self, name: &str, from: &Path) -> Result<()> {
        self.dir(name, 0o755)?;
        let mut entries: Vec<_> = std::fs::read_dir(from)
            .with_context(|| format!("reading {}", from.display()))?
            .collect::<std::io::Result<Vec<_>>>()?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let child = format!("{name}/{}", entry.file_name().to_string_lossy());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                self.tree(&child, &entry.path())?;
            } else if kind.is_file() {
                let executable = entry.metadata()?.permissions().mode() & 0o111 != 0;
                let data =
                    std::fs::read(entry.path()).with_context(|| format!("reading {}", entry.path().display()))?;
                self.file(&child, if executable { 0o755 } else { 0o644 }, &data)?;
            } else {
                bail!("{}: only files and directories can go into the guest", entry.path().display());
            }
        }
        Ok(())
    }

    fn symlink(&mut self, name: &str, target: &Path) -> Result<()> {
        self.entry(name, 0o120_777, target.to_string_lossy().as_bytes(), (0, 0))
    }

    /// Copies `path` of this machine to the same path in the guest: each directory on the way,
    /// each symlink as a symlink (and what it points to), and the file itself with its mode.
    /// Entries already written are kept; a name written as another type is an error.
    fn mirror(&mut self, path: &Path) -> Result<()> {
        let mut real = PathBuf::from("/");
        let parts: Vec<_> = path.components().skip(1).collect();
        for (index, part) in parts.iter().enumerate() {
            if *part == std::path::Component::ParentDir {
                real.pop();
                continue;
            }
            let here = real.join(part);
            let name = here.strip_prefix("/").unwrap_or(&here).to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&here).with_context(|| format!("{}", here.display()))?;
            let kind = meta.mode() & 0o170_000;
            if let Some(&written) = self.names.get(&name) {
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

    fn finish(mut self) -> Result<Vec<u8>> {
        self.entry("TRAILER!!!", 0, &[], (0, 0))?;
        Ok(self.out)
    }
}

/// The guest's `/init`: mount the pseudo filesystems, run the case runner, power off.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox mount -t tmpfs -o mode=1777 tmpfs /tmp
/bin/busybox ln -s /proc/self/fd /dev/fd
/bin/h-vm-runner vm-test --guest /cases
echo "H-VM-EXIT $?"
/bin/busybox poweroff -f
"#;

/// The zlib hlua's `loadlib` and hsh's `enable-f` attacks try to load (it must exist for
/// landlock to deny it).
const LOADLIB_TARGET: &str = "/lib/x86_64-linux-gnu/libz.so.1";

/// `program` and what the loader opens to run it, by the names it opens (`ldd`: the program
/// interpreter and every library, as found on this machine).
fn loaded_files(program: &str) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd").arg(program).output().with_context(|| format!("starting ldd {program}"))?;
    if !output.status.success() {
        bail!("ldd {program} failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let mut files = vec![PathBuf::from(program)];
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let path = line.split_once("=>").map_or(line, |(_, found)| found).split_whitespace().next().unwrap_or("");
        if path.starts_with('/') {
            files.push(PathBuf::from(path));
        }
    }
    Ok(files)
}

/// The files of a host's landlock table (its `--print-policy` rules, without devices and the
/// script), run on this machine.
fn granted_files(binary: &Path, script: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new(binary).arg("--print-policy").arg(script).output()?;
    if !output.status.success() {
        bail!("{} --print-policy failed: {}", binary.display(), String::from_utf8_lossy(&output.stderr).trim());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let rules = text.lines().skip_while(|line| !line.trim_start().starts_with("rules")).skip(1);
    Ok(rules
        .map_while(|line| line.starts_with("    ").then(|| line.split_whitespace().nth(1)).flatten())
        .map(PathBuf::from)
        .filter(|path| !path.starts_with("/dev") && path.as_path() != script)
        .collect())
}

fn write_initramfs(root: &Path, binaries: &Binaries, path: &Path) -> Result<usize> {
    let busybox = Path::new("/bin/busybox");
    require_static(busybox).context("busybox must be the static one (Debian package busybox-static)")?;
    let read = |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));

    let mut cpio = Cpio::default();
    for dir in ["bin", "etc", "proc", "sys", "dev", "root", "cases"] {
        cpio.dir(dir, 0o755)?;
    }
    cpio.dir("tmp", 0o1777)?;
    cpio.entry("dev/console", 0o020_600, &[], (5, 1))?;
    cpio.file("init", 0o755, INIT.as_bytes())?;
    cpio.file("bin/busybox", 0o755, &read(busybox)?)?;
    cpio.file("bin/h-vm-runner", 0o755, &read(&binaries.runner)?)?;
    for ((host, binary), spec) in binaries.hosts.iter().zip(GUEST_HOSTS) {
        cpio.file(&format!("bin/{host}"), 0o755, &read(binary)?)?;
        for program in spec.executes {
            for file in loaded_files(program)? {
                cpio.mirror(&file)?;
            }
        }
        for target in spec.targets {
            cpio.mirror(Path::new(target)).with_context(|| format!("{host}'s attacks need {target} in the guest"))?;
        }
        // The guest must hold every file the host's landlock table grants, at the same path.
        let script = root.join("hosts").join(host).join("cases/hello/main");
        for granted in granted_files(binary, &script)? {
            let name = granted.to_string_lossy().trim_start_matches('/').to_string();
            if cpio.names.get(&name) != Some(&0o100_000) {
                bail!("{host} grants {}, which is not a file in the guest: add it to GUEST_HOSTS", granted.display());
            }
        }
        cpio.dir(&format!("cases/{host}"), 0o755)?;
        for folder in guest::FOLDERS {
            let from = root.join("hosts").join(host).join(folder);
            if from.is_dir() {
                cpio.tree(&format!("cases/{host}/{folder}"), &from)?;
            }
        }
    }
    cpio.file(
        "etc/passwd",
        0o644,
        format!(
            "root:x:0:0:root:/root:/bin/sh\n{}:x:{}:{}:h test user:/nonexistent:/bin/false\n",
            guest::USER,
            guest::UID,
            guest::GID
        )
        .as_bytes(),
    )?;
    cpio.file("etc/group", 0o644, format!("root:x:0:\n{}:x:{}:\n", guest::USER, guest::GID).as_bytes())?;

    let bytes = cpio.finish()?;
    write_file(path, &bytes)?;
    Ok(bytes.len())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Booting

/// One host's counts on one kernel: a line of the table.
#[derive(Debug, Default)]
struct HostRow {
    host: String,
    passed: usize,
    failed: usize,
    skipped: usize,
    /// What `HOST --print-policy` marked enforced.
    enforced: String,
}

/// One kernel's outcome: a row of the table, one line per host.
struct Row {
    kernel: Kernel,
    release: String,
    abi: String,
    /// The kernel's totals: every host's runs and the kernel's own check.
    passed: usize,
    failed: usize,
    skipped: usize,
    hosts: Vec<HostRow>,
    seconds: u64,
    /// Why the kernel failed: FAIL lines from the guest, or what went wrong around it.
    failures: Vec<String>,
    complete: bool,
}

impl Row {
    fn ok(&self) -> bool {
        self.complete && self.failed == 0 && self.failures.is_empty()
    }

    fn header() -> String {
        format!(
            "{:<6} {:<28} {:<8} {:<5} {:>6} {:>6} {:>7} {:>5}  {}",
            "kernel",
            "release",
            "landlock",
            "host",
            "passed",
            "failed",
            "skipped",
            "time",
            "enforced (HOST --print-policy)"
        )
    }

    fn lines(&self) -> Vec<String> {
        let release = if self.release.is_empty() { "(no result)" } else { self.release.as_str() };
        let abi = if self.abi.is_empty() { "?" } else { self.abi.as_str() };
        let mut hosts: Vec<&HostRow> = self.hosts.iter().collect();
        let missing = HostRow { host: "-".to_string(), ..HostRow::default() };
        if hosts.is_empty() {
            hosts.push(&missing);
        }
        hosts
            .iter()
            .map(|host| {
                let ok = self.ok() && host.failed == 0;
                format!(
                    "{:<6} {:<28} {:<8} {:<5} {:>6} {:>6} {:>7} {:>4}s  {}{}",
                    self.kernel.version,
                    release,
                    abi,
                    host.host,
                    host.passed,
                    host.failed,
                    host.skipped,
                    self.seconds,
                    if ok { "" } else { "FAILED; " },
                    host.enforced
                )
            })
            .collect()
    }
}

fn boot(kernel: Kernel, image: &KernelImage, initramfs: &Path, log: &Path) -> Row {
    let started = Instant::now();
    let mut row = Row {
        kernel,
        release: String::new(),
        abi: String::new(),
        passed: 0,
        failed: 0,
        skipped: 0,
        hosts: Vec::new(),
        seconds: 0,
        failures: Vec::new(),
        complete: false,
    };
    match boot_and_read(kernel, image, initramfs, log) {
        Ok(console) => read_console(&console, &mut row),
        Err(error) => row.failures.push(format!("{error:#}")),
    }
    row.seconds = started.elapsed().as_secs();
    if !row.complete && row.failures.is_empty() {
        row.failures.push(format!("the guest printed no H-VM-RESULT line (see {})", log.display()));
    }
    row
}

fn boot_and_read(kernel: Kernel, image: &KernelImage, initramfs: &Path, log: &Path) -> Result<String> {
    let expected = kernel.abi.map_or_else(|| "none".to_string(), |abi| abi.to_string());
    let append = format!(
        "console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init h_vm_kernel={} h_vm_abi={expected}",
        kernel.version
    );
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(["-accel", "tcg", "-M", "pc", "-nodefaults", "-nographic", "-serial", "stdio"])
        .args(["-m", "1G", "-smp", "1", "-no-reboot"])
        .arg("-kernel")
        .arg(&image.vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", &append])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().with_context(|| format!("starting {command:?}"))?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let stderr = child.stderr.take().context("qemu stderr")?;
    let mut log_file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let _ = writeln!(log_file, "$ {command:?}\n# {}", image.package);
    let log_file = Mutex::new(log_file);
    let console = Mutex::new(String::new());
    let finished = std::thread::scope(|scope| -> Result<bool> {
        let console = &console;
        let log_file = &log_file;
        scope.spawn(move || {
            for line in BufReader::new(stdout).split(b'\n').map_while(std::result::Result::ok) {
                let line = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
                if let Ok(mut file) = log_file.lock() {
                    let _ = writeln!(file, "{line}");
                }
                if let Ok(mut console) = console.lock() {
                    console.push_str(&line);
                    console.push('\n');
                }
            }
        });
        scope.spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            if let Ok(mut file) = log_file.lock() {
                for line in text.lines() {
                    let _ = writeln!(file, "qemu: {line}");
                }
            }
        });
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("qemu exited with {status} (see {})", log.display());
                }
                return Ok(true);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })?;
    let console = console.into_inner().map_err(|_| anyhow::anyhow!("console reader panicked"))?;
    if !finished {
        bail!("the guest did not power off within {}s (see {})", BOOT_TIMEOUT.as_secs(), log.display());
    }
    Ok(console)
}

fn read_console(console: &str, row: &mut Row) {
    let mut exit = None;
    for line in console.lines() {
        if let Some(rest) = line.strip_prefix("FAIL ") {
            row.failures.push(rest.to_string());
        } else if let Some(rest) = line.strip_prefix("H-VM-ERROR ") {
            row.failures.push(format!("runner: {rest}"));
        } else if let Some(rest) = line.strip_prefix("H-VM-EXIT ") {
            exit = Some(rest.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("H-VM-HOST ") {
            let fields = parse_fields(rest);
            let number = |name: &str| fields.get(name).and_then(|value| value.parse::<usize>().ok());
            match (fields.get("host"), number("passed"), number("failed"), number("skipped")) {
                (Some(host), Some(passed), Some(failed), Some(skipped)) => row.hosts.push(HostRow {
                    host: host.clone(),
                    passed,
                    failed,
                    skipped,
                    enforced: fields.get("enforced").cloned().unwrap_or_default(),
                }),
                _ => row.failures.push(format!("unreadable host line: {rest}")),
            }
        } else if let Some(rest) = line.strip_prefix("H-VM-RESULT ") {
            let fields = parse_fields(rest);
            let number = |name: &str| fields.get(name).and_then(|value| value.parse::<usize>().ok());
            row.release = fields.get("release").cloned().unwrap_or_default();
            row.abi = fields.get("abi").cloned().unwrap_or_default();
            match (number("passed"), number("failed"), number("skipped")) {
                (Some(passed), Some(failed), Some(skipped)) => {
                    (row.passed, row.failed, row.skipped) = (passed, failed, skipped);
                    row.complete = true;
                }
                _ => row.failures.push(format!("unreadable result line: {rest}")),
            }
        } else if line.contains("Kernel panic") {
            row.failures.push(line.trim().to_string());
        }
    }
    let expected = row.kernel.abi.map_or_else(|| "none".to_string(), |abi| abi.to_string());
    if row.complete && row.abi != expected {
        row.failures.push(format!("landlock ABI {} where the matrix expects {expected}", row.abi));
    }
    let reported: Vec<&str> = row.hosts.iter().map(|host| host.host.as_str()).collect();
    let wanted: Vec<&str> = GUEST_HOSTS.iter().map(|host| host.name).collect();
    if row.complete && reported != wanted {
        row.failures.push(format!("the guest reported hosts {reported:?}, not {wanted:?}"));
    }
    match exit.as_deref() {
        Some("0") => {}
        Some(code) => row.failures.push(format!("the runner exited with {code}")),
        None => row.failures.push("the guest's /init did not finish".to_string()),
    }
}

/// `key=value` pairs separated by `; `; a value runs to the next `; ` (it may contain spaces).
fn parse_fields(text: &str) -> BTreeMap<String, String> {
    text.split("; ")
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Inside the guest

pub mod guest {
    //! The case runner inside the guest (`xtask vm-test --guest DIR`, as root, from `/init`).
    //!
    //! It runs the same `test.toml` cases as `h-testkit` (whose runner needs cargo and the bare
    //! interpreters, which the guest does not have): every case as `h-test` and as root, in a
    //! fresh work directory, judged by the same rules. Control runs stay on the host side
    //! (`cargo xtask test`); here the sandboxed half runs on each kernel. Per kernel it asserts:
    //!
    //! - the landlock ABI measured here equals the matrix's, and `HOST --version` reports it;
    //! - `--print-policy` marks exactly the features of that ABI enforced; ABI < 4 lists TCP as
    //!   not enforced; ABI >= 6 lists the signal and abstract-socket scopes as enforced;
    //! - without landlock: the host refuses to run without `--allow-degraded` (exit 1, stderr
    //!   names landlock); with it every case that does not need landlock's filesystem layer
    //!   passes, among them the exec, popen and environment attacks (seccomp and the environment
    //!   scrub still hold); the cases in [`NEEDS_LANDLOCK`] are counted as skipped.

    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::process::CommandExt as _;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::Duration;

    use anyhow::{bail, Context, Result};
    use h_testkit::{execute, judge, status_problems, Case, Outcome};

    use super::{GuestHost, GUEST_HOSTS};

    pub const USER: &str = "h-test";
    pub const UID: u32 = 1000;
    pub const GID: u32 = 1000;
    pub const FOLDERS: &[&str] = &["cases", "attacks"];

    /// Why `case` (`FOLDER/NAME`) of `host` does not run on a kernel with landlock ABI `abi`.
    pub fn skip_reason(host: &GuestHost, case: &str, abi: Option<u32>) -> Option<String> {
        if host.needs_programs.contains(&case) {
            return Some("runs a program the guest does not have".to_string());
        }
        let needs = host.needs_abi.iter().find(|(name, _)| *name == case).map(|&(_, needs)| needs)?;
        (abi.unwrap_or(0) < needs).then(|| format!("needs landlock ABI {needs}"))
    }

    /// Every name in `host`'s lists is a case under `dir`, and no case that must hold without
    /// landlock is skipped there.
    pub fn check_lists(host: &GuestHost, dir: &Path) -> Result<()> {
        let named = host.needs_abi.iter().map(|(name, _)| name).chain(host.needs_programs).chain(host.degraded_holds);
        for name in named {
            if !dir.join(name).join("test.toml").is_file() {
                bail!("GUEST_HOSTS names {}/{name}, which is not a case: update xtask/src/vmtest.rs", host.name);
            }
        }
        for name in host.degraded_holds {
            if let Some(reason) = skip_reason(host, name, None) {
                bail!("{}/{name} must hold without landlock, but is skipped there ({reason})", host.name);
            }
        }
        Ok(())
    }

    #[derive(Clone, Copy, Debug)]
    struct RunAs {
        label: &'static str,
        uid: u32,
        gid: u32,
    }

    const EVERYONE: [RunAs; 2] = [RunAs { label: "user", uid: UID, gid: GID }, RunAs { label: "root", uid: 0, gid: 0 }];

    /// Guest code runs about ten times slower under TCG: case timeouts are stretched by this.
    const SLOWDOWN: u64 = 3;

    #[derive(Default)]
    struct Tally {
        passed: usize,
        failed: usize,
        skipped: usize,
    }

    impl Tally {
        fn record(&mut self, name: &str, problems: Vec<String>) {
            if problems.is_empty() {
                println!("ok   {name}");
                self.passed += 1;
            } else {
                println!("FAIL {name}: {}", problems.join("; "));
                self.failed += 1;
            }
        }
    }

    /// The landlock ABI, measured with the raw syscall (independently of the hosts' code).
    fn landlock_abi() -> Option<u32> {
        const LANDLOCK_CREATE_RULESET_VERSION: usize = 1;
        // SAFETY: a null attribute pointer with size 0 and the VERSION flag only asks the kernel
        // for a number; no memory is read or written.
        let result = unsafe {
            syscalls::syscall3(syscalls::Sysno::landlock_create_ruleset, 0, 0, LANDLOCK_CREATE_RULESET_VERSION)
        };
        result.ok().and_then(|abi| u32::try_from(abi).ok()).filter(|&abi| abi > 0)
    }

    fn abi_text(abi: Option<u32>) -> String {
        abi.map_or_else(|| "none".to_string(), |abi| abi.to_string())
    }

    pub fn main(arguments: &[String]) -> Result<()> {
        let result = run(arguments);
        if let Err(error) = &result {
            println!("H-VM-ERROR {error:#}");
        }
        let _ = std::io::stdout().flush();
        result
    }

    fn run(arguments: &[String]) -> Result<()> {
        let cases = PathBuf::from(arguments.first().context("usage: xtask vm-test --guest CASES-DIR")?);
        let cmdline = std::fs::read_to_string("/proc/cmdline").context("reading /proc/cmdline")?;
        let parameter = |name: &str| {
            cmdline.split_whitespace().find_map(|word| word.strip_prefix(name)?.strip_prefix('=')).map(str::to_string)
        };
        let expected = parameter("h_vm_abi").context("no h_vm_abi= on the kernel command line")?;
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .context("reading /proc/sys/kernel/osrelease")?
            .trim()
            .to_string();
        let abi = landlock_abi();
        println!("H-VM kernel {release}, landlock ABI {} (expected {expected})", abi_text(abi));

        let mut kernel_tally = Tally::default();
        kernel_tally.record(
            "kernel/landlock-abi",
            if abi_text(abi) == expected {
                Vec::new()
            } else {
                vec![format!("the kernel reports landlock ABI {} where {expected} is expected", abi_text(abi))]
            },
        );
        let scratch = Path::new("/tmp/h-vm");
        let mut total = kernel_tally;
        let mut host_lines = Vec::new();
        for host in GUEST_HOSTS {
            let dir = cases.join(host.name);
            check_lists(host, &dir)?;
            let binary = PathBuf::from("/bin").join(host.name);
            let mut tally = Tally::default();
            let enforced = host_checks(host.name, &binary, &dir, abi, &mut tally)?;
            run_cases(host, &binary, &dir, scratch, abi, &mut tally)?;
            host_lines.push(format!(
                "H-VM-HOST host={}; passed={}; failed={}; skipped={}; enforced={enforced}",
                host.name, tally.passed, tally.failed, tally.skipped
            ));
            total.passed += tally.passed;
            total.failed += tally.failed;
            total.skipped += tally.skipped;
        }
        for line in host_lines {
            println!("{line}");
        }
        println!(
            "H-VM-RESULT release={release}; abi={}; passed={}; failed={}; skipped={}",
            abi_text(abi),
            total.passed,
            total.failed,
            total.skipped,
        );
        Ok(())
    }

    /// The short name of what each landlock ABI adds, as `--print-policy` lists it.
    fn feature_tag(abi: u32) -> &'static str {
        match abi {
            1 => "fs",
            2 => "refer",
            3 => "truncate",
            4 => "tcp",
            5 => "ioctl-dev",
            6 => "scopes",
            7 => "audit",
            9 => "unix-connect",
            _ => "?",
        }
    }

    /// `--version` and `--print-policy` against the measured ABI; returns what the host
    /// reported as enforced.
    fn host_checks(host: &str, binary: &Path, dir: &Path, abi: Option<u32>, tally: &mut Tally) -> Result<String> {
        let script = dir.join("cases/hello/main");
        if !script.is_file() {
            bail!("{} is missing: the kernel checks run it", script.display());
        }
        let user = EVERYONE[0];
        let quick = |arguments: &[&str]| -> Outcome {
            let mut command = Command::new(binary);
            command.args(arguments).current_dir("/").env_clear().env("PATH", "/bin").uid(user.uid).gid(user.gid);
            execute(command, None, None, Duration::from_secs(60 * SLOWDOWN))
        };
        let script_arg = script.to_string_lossy().into_owned();

        // --version names the kernel's landlock ABI.
        let version = quick(&["--version"]);
        let wanted = match abi {
            Some(abi) => format!("landlock ABI {abi}"),
            None => "no landlock".to_string(),
        };
        let mut problems = status_problems(&version, None, Some(0));
        if !version.stdout.contains(&wanted) {
            problems.push(format!("--version lacks {wanted:?}: {:?}", version.stdout));
        }
        tally.record(&format!("{host}/kernel/version ({})", user.label), problems);

        // --print-policy marks exactly the features of this ABI as enforced.
        let policy = quick(&["--print-policy", &script_arg]);
        let mut problems = status_problems(&policy, None, Some(0));
        let mut tags = Vec::new();
        match abi {
            None => {
                if !policy.stdout.contains("UNAVAILABLE: the kernel has no landlock") {
                    problems.push("--print-policy does not say landlock is unavailable".to_string());
                }
                tags.push("landlock unavailable: refused without --allow-degraded".to_string());
            }
            Some(abi) => {
                let mut listed = 0;
                for line in policy.stdout.lines().map(str::trim) {
                    let (marked, rest) = if let Some(rest) = line.strip_prefix("[x] ") {
                        (true, rest)
                    } else if let Some(rest) = line.strip_prefix("[ ] ") {
                        (false, rest)
                    } else {
                        continue;
                    };
                    let Some(needs) = rest
                        .rsplit_once("(ABI ")
                        .and_then(|(_, tail)| tail.strip_suffix(')'))
                        .and_then(|n| n.parse::<u32>().ok())
                    else {
                        problems.push(format!("unreadable feature line {line:?}"));
                        continue;
                    };
                    listed += 1;
                    if marked != (abi >= needs) {
                        problems.push(format!("ABI {abi} but --print-policy says {line:?}"));
                    }
                    if marked {
                        tags.push(feature_tag(needs).to_string());
                    }
                }
                if listed == 0 {
                    problems.push("--print-policy lists no landlock features".to_string());
                }
                if abi < 4 && !policy.stdout.contains("[ ] network: TCP bind and connect") {
                    problems.push(format!("ABI {abi} has no TCP rules, but --print-policy does not say so"));
                }
                if abi >= 6 && !policy.stdout.contains("[x] scope: abstract unix sockets and signals") {
                    problems.push(format!("ABI {abi} has the scopes, but --print-policy does not list them enforced"));
                }
                if abi < 4 {
                    // Without landlock's TCP rules the network is closed by seccomp alone.
                    if policy.stdout.lines().any(|line| line.trim_start().starts_with("allow socket")) {
                        problems.push(format!("ABI {abi} has no TCP rules, and seccomp allows socket"));
                    }
                    tags.push("(no tcp: seccomp allows no socket)".to_string());
                }
            }
        }
        tally.record(&format!("{host}/kernel/print-policy ({})", user.label), problems);

        if abi.is_none() {
            // Refused without --allow-degraded: exit 1, one line naming landlock, nothing runs.
            let refused = quick(&[&script_arg]);
            let mut problems = status_problems(&refused, None, Some(1));
            if !refused.stderr.contains("landlock") {
                problems.push(format!("stderr does not name landlock: {:?}", refused.stderr));
            }
            if !refused.stdout.is_empty() {
                problems.push(format!("the script ran: stdout {:?}", refused.stdout));
            }
            tally.record(&format!("{host}/kernel/refuses-without-landlock ({})", user.label), problems);
            let degraded = quick(&["--allow-degraded", "--print-policy", &script_arg]);
            let mut problems = status_problems(&degraded, None, Some(0));
            if !degraded.stdout.contains("NOT ENFORCED") {
                problems.push("--allow-degraded --print-policy does not say landlock is not enforced".to_string());
            }
            tally.record(&format!("{host}/kernel/degraded-policy ({})", user.label), problems);
        }
        Ok(if tags.is_empty() { "nothing".to_string() } else { tags.join(" ") })
    }

    fn run_cases(
        host: &GuestHost,
        binary: &Path,
        dir: &Path,
        scratch: &Path,
        abi: Option<u32>,
        tally: &mut Tally,
    ) -> Result<()> {
        for folder in FOLDERS {
            let folder_path = dir.join(folder);
            let Ok(entries) = std::fs::read_dir(&folder_path) else { continue };
            let mut case_dirs: Vec<PathBuf> =
                entries.filter_map(|entry| entry.ok().map(|e| e.path())).filter(|path| path.is_dir()).collect();
            case_dirs.sort();
            for case_dir in case_dirs {
                let case_name = format!("{folder}/{}", case_dir.file_name().unwrap_or_default().to_string_lossy());
                let name = format!("{}/{case_name}", host.name);
                let text = std::fs::read_to_string(case_dir.join("test.toml"))
                    .with_context(|| format!("reading {name}/test.toml"))?;
                let case: Case = toml::from_str(&text).with_context(|| format!("{name}/test.toml"))?;
                if *folder == "attacks" && case.control.is_none() {
                    tally.record(&name, vec!["an attack case needs a [control] run".to_string()]);
                    continue;
                }
                for who in EVERYONE {
                    if case.users.as_ref().is_some_and(|users| !users.iter().any(|user| user == who.label)) {
                        continue;
                    }
                    let label = format!("{name} ({})", who.label);
                    if case.caller.is_some() || case.terminal {
                        println!("skip {label}: runs through a caller script or on a terminal, which the guest runner does not do");
                        tally.skipped += 1;
                        continue;
                    }
                    if let Some(minimum) = &case.needs.kernel {
                        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
                        if !h_testkit::kernel_at_least(release.trim(), minimum) {
                            println!("skip {label}: needs linux {minimum} or later");
                            tally.skipped += 1;
                            continue;
                        }
                    }
                    if let Some(reason) = skip_reason(host, &case_name, abi) {
                        println!("skip {label}: {reason}");
                        tally.skipped += 1;
                        continue;
                    }
                    let problems = run_case(binary, &case, &case_dir, scratch, &name, who, abi.is_none())?;
                    if !problems.is_empty() {
                        println!("     {}", case.about);
                    }
                    tally.record(&label, problems);
                }
            }
        }
        Ok(())
    }

    fn run_case(
        binary: &Path,
        case: &Case,
        case_dir: &Path,
        scratch: &Path,
        name: &str,
        who: RunAs,
        degraded: bool,
    ) -> Result<Vec<String>> {
        let work = scratch.join(format!("{}-{}", name.replace('/', "_"), who.label));
        let _ = std::fs::remove_dir_all(&work);
        prepare_work(&work, case_dir, case, who)?;
        let substitute = |text: &String| text.replace("$WORK", &work.to_string_lossy());
        let mut command = Command::new(binary);
        if degraded {
            command.arg("--allow-degraded");
        }
        command
            .args(case.options.iter().map(substitute))
            .arg(&case.script)
            .args(case.script_args.iter().map(substitute));
        command.current_dir(work.join("case")).env_clear();
        command.env("PATH", "/bin").env("HOME", work.join("home"));
        for (key, value) in &case.env {
            command.env(key, substitute(value));
        }
        if who.uid != 0 {
            command.uid(who.uid).gid(who.gid);
        }
        command.process_group(0);
        let stdout_file = case.stdout_to_file.then(|| work.join("stdout.txt"));
        let timeout = Duration::from_secs(case.timeout.saturating_mul(SLOWDOWN));
        let outcome = execute(command, case.stdin.as_deref(), stdout_file.as_deref(), timeout);
        let problems = judge(&case.expect, &outcome, &work);
        let _ = std::fs::remove_dir_all(&work);
        Ok(problems)
    }

    fn prepare_work(work: &Path, case_dir: &Path, case: &Case, who: RunAs) -> Result<()> {
        copy_tree(case_dir, &work.join("case"))?;
        std::fs::create_dir_all(work.join("home"))?;
        for (path, contents) in &case.files {
            let target = work.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&target, contents).with_context(|| format!("writing {}", target.display()))?;
        }
        chown_tree(work, who)?;
        std::fs::set_permissions(work, std::fs::Permissions::from_mode(0o755))?;
        for (path, mode) in &case.file_modes {
            let mode = u32::from_str_radix(mode, 8).with_context(|| format!("bad mode {mode}"))?;
            std::fs::set_permissions(work.join(path), std::fs::Permissions::from_mode(mode))?;
        }
        Ok(())
    }

    fn copy_tree(from: &Path, to: &Path) -> Result<()> {
        std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
        for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
            let entry = entry?;
            let target = to.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                copy_tree(&entry.path(), &target)?;
            } else {
                std::fs::copy(entry.path(), &target).with_context(|| format!("copying {}", entry.path().display()))?;
            }
        }
        Ok(())
    }

    fn chown_tree(path: &Path, who: RunAs) -> Result<()> {
        std::os::unix::fs::lchown(path, Some(who.uid), Some(who.gid))
            .with_context(|| format!("chown {}", path.display()))?;
        if path.is_dir() && !path.is_symlink() {
            for entry in std::fs::read_dir(path)? {
                chown_tree(&entry?.path(), who)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_match_their_series_only() {
        assert!(is_image_of("linux-image-6.1.0-50-cloud-amd64", "6.1"));
        assert!(!is_image_of("linux-image-6.12.117+deb13-cloud-amd64", "6.1"));
        assert!(is_image_of("linux-image-6.12.117+deb13-cloud-amd64", "6.12"));
        assert!(!is_image_of("linux-image-6.12.117+deb13-cloud-amd64-unsigned", "6.12"));
        assert!(!is_image_of("linux-image-6.12.117+deb13-amd64", "6.12"));
        assert!(is_image_of("linux-image-5.10.0-32-cloud-amd64", "5.10"));
    }

    #[test]
    fn newest_package_sorts_last() {
        let mut names = [
            "linux-image-6.18.15+deb13-cloud-amd64",
            "linux-image-6.18.5+deb13-cloud-amd64",
            "linux-image-6.18.9+deb13-cloud-amd64",
        ];
        names.sort_by_key(|name| natural_key(name));
        assert_eq!(names.last(), Some(&"linux-image-6.18.15+deb13-cloud-amd64"));
    }

    #[test]
    fn arguments_select_kernels() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (all, _) = parse_arguments(&[]).unwrap();
        assert_eq!(all.len(), KERNELS.len());
        let (two, jobs) = parse_arguments(&args(&["--kernel", "5.10", "7.3", "--jobs", "1"])).unwrap();
        assert_eq!(two.iter().map(|k| k.version).collect::<Vec<_>>(), ["5.10", "7.3"]);
        assert_eq!(jobs, 1);
        assert!(parse_arguments(&args(&["--kernel", "4.19"])).is_err());
        assert!(parse_arguments(&args(&["--kernel"])).is_err());
        assert!(parse_arguments(&args(&["--bogus"])).is_err());
    }

    #[test]
    fn cpio_entries_are_aligned_newc() {
        let mut cpio = Cpio::default();
        cpio.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        let bytes = cpio.finish().unwrap();
        assert!(bytes.starts_with(b"070701"));
        assert_eq!(bytes.len() % 4, 0);
        assert!(bytes.windows(10).any(|w| w == b"TRAILER!!!"));
    }

    #[test]
    fn the_build_hosts_busybox_check_reads_elf() {
        assert_eq!(elf_interpreter(b"not an elf"), None);
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(elf_interpreter(&me).is_some());
    }

    #[test]
    fn result_lines_parse() {
        let fields = parse_fields("host=hsh; passed=3; failed=0; skipped=0; enforced=fs refer (no tcp: x)");
        assert_eq!(fields.get("enforced").map(String::as_str), Some("fs refer (no tcp: x)"));
        assert_eq!(fields.get("passed").map(String::as_str), Some("3"));
    }

    #[test]
    fn guest_host_lists_name_cases() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for host in GUEST_HOSTS {
            guest::check_lists(host, &root.join("hosts").join(host.name)).unwrap();
        }
    }

    /// The guest's skip lists say what the cases' own `[needs]` declare (the NixOS VM tests read
    /// those): a case whose programs or files the guest does not provide (`targets`) is in
    /// `needs_programs`, and every other case has the same landlock ABI in `needs_abi`.
    #[test]
    fn guest_host_lists_agree_with_case_declarations() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for host in GUEST_HOSTS {
            for folder in guest::FOLDERS {
                let dir = root.join("hosts").join(host.name).join(folder);
                for entry in std::fs::read_dir(&dir).unwrap() {
                    let case_dir = entry.unwrap().path();
                    let name = format!("{folder}/{}", case_dir.file_name().unwrap().to_string_lossy());
                    let case = h_testkit::Case::load(&case_dir, &[]).unwrap();
                    if case.caller.is_some() || case.terminal {
                        // The guest runner skips these whatever they need.
                        continue;
                    }
                    let needs = case.needs;
                    let listed = host.needs_abi.iter().find(|(case, _)| *case == name).map(|&(_, abi)| abi);
                    let always_skipped = host.needs_programs.contains(&name.as_str());
                    if !always_skipped {
                        assert_eq!(
                            needs.landlock_abi, listed,
                            "{}/{name}: [needs] landlock_abi vs needs_abi",
                            host.name
                        );
                    }
                    let provided = |file: &String| host.targets.contains(&file.as_str());
                    let unmet = !needs.programs.is_empty()
                        || !needs.files.iter().all(provided)
                        || (!needs.any_file.is_empty() && !needs.any_file.iter().any(provided));
                    assert_eq!(
                        unmet, always_skipped,
                        "{}/{name}: [needs] programs and files vs needs_programs",
                        host.name
                    );
                }
            }
        }
    }
}
