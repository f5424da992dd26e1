//! The kernels of the matrix: Debian `cloud-amd64` images, fetched with `apt-get download` under
//! a private apt configuration in `target/vm-kernels/apt` (its own sources.list, lists, cache and
//! status; the machine's apt sources are never touched), unpacked with `dpkg-deb -x` and cached
//! as `target/vm-kernels/VERSION/vmlinuz` (nothing is installed on the host); and the tools that
//! boot them (QEMU, a static busybox), installed with apt-get when missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::{run_command, write_file};

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

/// The Debian mirror the private apt configuration uses (the same one the machine's apt uses).
const MIRROR: &str = "http://deb.debian.org/debian";

/// The kernel flavour: `cloud-amd64` images are the smallest and have everything the guest
/// needs built in (8250 serial console, initramfs, landlock, seccomp filters).
const FLAVOUR: &str = "cloud-amd64";

pub fn is_root() -> bool {
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

/// QEMU and a static busybox from Debian, installed with apt-get when missing (as root).
pub fn ensure_tools() -> Result<()> {
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
pub struct KernelImage {
    pub vmlinuz: PathBuf,
    /// The Debian package it came from, with its version.
    pub package: String,
}

pub fn fetch_kernels(cache: &Path, kernels: &[Kernel]) -> Result<Vec<KernelImage>> {
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
}
