//! `cargo xtask vm-test [--kernel VERSION]... [--jobs N]`: the hosts on real kernels.
//!
//! For each kernel of [`kernels::KERNELS`] (or the ones named with `--kernel`) this:
//!
//! 1. fetches the Debian kernel image ([`kernels`]);
//! 2. builds the hosts and this xtask for the guest ([`binaries`]): static where they can be,
//!    with their landlock tables as their build scripts resolved them;
//! 3. writes one initramfs from those tables ([`image`], newc cpio by [`cpio`]): busybox, the
//!    hosts, every file their tables grant and the ELF closures by the paths the loader opens,
//!    the programs the cases use, the cases, and the guest's configuration ([`protocol`]);
//! 4. boots it under QEMU with software emulation and reads the serial console ([`qemu`]).
//!
//! Inside the guest, `/init` runs `xtask vm-test --guest CONFIG` as root ([`guest`]): the
//! per-kernel assertions, then every case of every host through `h-testkit`'s runner, as
//! `h-test` and as root, skipping what a case's own `[needs]` says the guest cannot serve. It
//! reports JSON lines that the host side turns into one row per host and kernel; anything
//! missing or failed exits non-zero.

mod binaries;
mod cpio;
mod guest;
mod hosts;
mod image;
mod kernels;
mod protocol;
mod qemu;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use kernels::{Kernel, KernelImage, KERNELS};

const USAGE: &str = "usage: cargo xtask vm-test [--kernel VERSION]... [--jobs N] [--filter TEXT]";

/// The command line.
#[derive(Debug)]
struct Options {
    kernels: Vec<Kernel>,
    /// VMs at once.
    jobs: usize,
    /// Only the cases whose `HOST/FOLDER/NAME` contains this (the kernel checks always run).
    filter: Option<String>,
}

pub fn run(root: &Path, arguments: &[String]) -> Result<()> {
    if arguments.first().map(String::as_str) == Some("--guest") {
        return guest::main(&arguments[1..]);
    }
    if std::env::consts::ARCH != "x86_64" {
        bail!("vm-test boots x86_64 kernels with a static x86_64 build; this machine is {}", std::env::consts::ARCH);
    }
    let Options { kernels, jobs, filter } = parse_arguments(arguments)?;
    let started = Instant::now();
    kernels::ensure_tools()?;
    let cache = root.join("target/vm-kernels");
    let images = kernels::fetch_kernels(&cache, &kernels)?;
    let binaries = binaries::build(root)?;
    let initramfs = root.join("target/vm/initramfs.cpio");
    let written = Instant::now();
    let size = image::write_initramfs(root, &binaries, &initramfs)?;
    eprintln!(
        "vm-test: initramfs {} ({:.1} MiB, written in {:.1}s)",
        initramfs.display(),
        size as f64 / (1024.0 * 1024.0),
        written.elapsed().as_secs_f64()
    );

    let host_names: Vec<String> = binaries.hosts.iter().map(|host| host.manifest.name.clone()).collect();
    let logs = root.join("target/vm/logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let queue: Mutex<Vec<(usize, Kernel, KernelImage)>> = Mutex::new(
        kernels.iter().copied().zip(images).enumerate().map(|(i, (k, image))| (i, k, image)).rev().collect(),
    );
    let rows: Mutex<Vec<(usize, qemu::Row)>> = Mutex::new(Vec::new());
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
                let row = qemu::boot(kernel, &image, &initramfs, filter.as_deref(), &host_names, &log);
                eprintln!("vm-test: {} done in {}s", kernel.version, row.seconds);
                for failure in &row.failures {
                    eprintln!("vm-test: {}: {failure}", kernel.version);
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
    println!("{}", qemu::Row::header());
    let mut bad = Vec::new();
    for (_, row) in &rows {
        for line in row.lines() {
            println!("{line}");
        }
        if !row.ok() {
            bad.push(row.kernel.version);
        }
    }
    let (passed, failed): (usize, usize) = rows.iter().fold((0, 0), |(p, f), (_, row)| {
        (p + row.tally.passed, f + row.tally.failed + usize::from(!row.ok() && row.tally.failed == 0))
    });
    let only = filter.map(|filter| format!(" (only cases matching {filter})")).unwrap_or_default();
    println!("vm-test: {} kernels in {}s{only}, logs in {}", rows.len(), started.elapsed().as_secs(), logs.display());
    println!("{passed} passed, {failed} failed");
    if !bad.is_empty() {
        bail!("vm-test failed on kernel(s) {} (see {})", bad.join(", "), logs.display());
    }
    Ok(())
}

fn parse_arguments(arguments: &[String]) -> Result<Options> {
    let mut wanted: Vec<Kernel> = Vec::new();
    let mut filter = None;
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
            "--filter" => {
                let value = iter.next().with_context(|| format!("--filter needs a text\n{USAGE}"))?;
                if value.is_empty() || value.contains(char::is_whitespace) {
                    bail!("--filter {value:?}: a case name has no spaces");
                }
                filter = Some(value.clone());
            }
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown vm-test argument {other}\n{USAGE}"),
        }
    }
    if wanted.is_empty() {
        wanted = KERNELS.to_vec();
    }
    Ok(Options { kernels: wanted, jobs, filter })
}

pub(crate) fn run_command(command: &mut Command) -> Result<()> {
    eprintln!("$ {command:?}");
    let status = command.status().with_context(|| format!("starting {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

/// Writes `bytes` to `path`, creating its directory.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_select_kernels() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = parse_arguments(&[]).unwrap();
        assert_eq!(all.kernels.len(), KERNELS.len());
        assert_eq!(all.filter, None);
        let two = parse_arguments(&args(&["--kernel", "5.10", "7.3", "--jobs", "1", "--filter", "hsh/"])).unwrap();
        assert_eq!(two.kernels.iter().map(|k| k.version).collect::<Vec<_>>(), ["5.10", "7.3"]);
        assert_eq!(two.jobs, 1);
        assert_eq!(two.filter.as_deref(), Some("hsh/"));
        assert!(parse_arguments(&args(&["--filter", "a b"])).is_err());
        assert!(parse_arguments(&args(&["--kernel", "4.19"])).is_err());
        assert!(parse_arguments(&args(&["--kernel"])).is_err());
        assert!(parse_arguments(&args(&["--bogus"])).is_err());
    }
}
