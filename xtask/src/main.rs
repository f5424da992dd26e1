//! `cargo xtask`: the project's build driver.
//!
//! - `codegen [--check]`   compile filters/*.toml into each host's seccomp programs (x86_64, aarch64)
//! - `verify`              prove the committed programs against the policies, print a report
//! - `run HOST ARGS...`    build HOST (release) and run it with ARGS
//! - `test`                everything CI runs: packages, codegen check, verification, all tests
//! - `bench`               startup overhead of each host against its bare interpreter
//! - `vm-test [--kernel V]... [--jobs N] [--filter TEXT]` the hosts' cases inside QEMU on each kernel of the matrix (docs/vm-tests.md)
//! - `compat [HOST[=BINARY]...]` third-party test suites bare and under each host (docs/compat.md; long)

mod bench;
mod compat;
mod fakestore;
mod hosts;
mod new_host;
mod nixcheck;
mod vm;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

pub(crate) fn run(command: &mut Command) -> Result<()> {
    eprintln!("$ {command:?}");
    let status = command.status().with_context(|| format!("starting {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

/// Debian packages the build and the tests need: the bare interpreters for control runs
/// (lua5.4, python3.11), libpython for hpython's build, the benchmark and tracing tools, and
/// patchelf for the resolver's store-shaped tests.
const TEST_PACKAGES: &[&str] = &["lua5.4", "python3.11", "libpython3.11-dev", "hyperfine", "strace", "patchelf"];

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output();
    output.ok().and_then(|out| String::from_utf8(out.stdout).ok()).is_some_and(|uid| uid.trim() == "0")
}

pub(crate) fn ensure_packages(wanted: &[&str]) -> Result<()> {
    let missing: Vec<&str> = wanted.iter().copied().filter(|package| !installed(package)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!("missing Debian packages; run as root: apt-get update && apt-get install -y {}", missing.join(" "));
    }
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get").args(["install", "-y", "-qq"]).args(&missing).env("DEBIAN_FRONTEND", "noninteractive"))
}

pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()))
}

/// `cargo xtask codegen [--check]`: writes the programs h_filter compiles from filters/, or
/// fails if a committed one is stale.
fn codegen(root: &Path, check: bool) -> Result<()> {
    if check {
        return Ok(h_filter::codegen::check(root)?);
    }
    for path in h_filter::codegen::write(root)? {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// `cargo xtask verify`: proves every committed program against its policy, one line each.
fn verify_report(root: &Path) -> Result<()> {
    for report in h_filter::verify::verify_all(root)? {
        println!(
            "verified {:<8} {:<8} {:>4} instructions, worst allowed path {:>3} instructions, {} cases",
            report.host,
            report.arch.name(),
            report.instructions,
            report.worst_allowed_path,
            report.cases
        );
    }
    Ok(())
}

const USAGE: &str = "usage: cargo xtask codegen [--check] | verify | nix-check | run HOST ARGS... | test | \
bench [--breakdown] [HOST...] | vm-test [KERNEL...] | compat [HOST...] | help";

/// Each host came out of the build linked as its manifest says: without a program interpreter
/// where `static_libc = true` (`tools/rustc-static-libc` adds the flag at the link, musl's target
/// links statically anyway), with one elsewhere. A wrapper that stopped working would otherwise
/// only show in the benchmarks.
fn check_linking(root: &Path) -> Result<()> {
    for manifest in hosts::all(root)? {
        let binary = hosts::release_binary(root, &manifest);
        let interpreter = h_resolve::program_interpreter(&binary).map_err(|error| anyhow::anyhow!("{error}"))?;
        let wanted = if manifest.build.static_libc { "statically (the C library linked in)" } else { "dynamically" };
        ensure!(
            interpreter.is_none() == manifest.build.static_libc,
            "{}: host.toml says static_libc = {}, but the binary is not linked {wanted}",
            manifest.name,
            manifest.build.static_libc
        );
        println!("{}: linked {wanted}, as host.toml says", manifest.name);
    }
    Ok(())
}

fn main() -> Result<()> {
    let root = project_root();
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = arguments.first() else { bail!("{USAGE}") };
    match command.as_str() {
        "codegen" => codegen(&root, arguments.iter().any(|arg| arg == "--check")),
        "verify" => verify_report(&root),
        "nix-check" => nixcheck::run(&root),
        "run" => {
            let Some(host) = arguments.get(1) else { bail!("usage: cargo xtask run HOST ARGS...") };
            let manifest = hosts::named(&root, host)?;
            hosts::ensure_targets(std::slice::from_ref(&manifest))?;
            hosts::build(&root, &[&manifest], |_| Vec::new(), |_| {})?;
            let binary = hosts::release_binary(&root, &manifest);
            let status = Command::new(&binary).args(&arguments[2..]).status()?;
            eprintln!("{host} exited with {status}");
            Ok(())
        }
        "test" => {
            ensure_packages(TEST_PACKAGES)?;
            let manifests = hosts::all(&root)?;
            hosts::ensure_targets(&manifests)?;
            codegen(&root, true)?;
            verify_report(&root)?;
            nixcheck::run(&root)?;
            // Style and the unsafe/unwrap rules of the workspace lints, before the tests.
            run(cargo().current_dir(&root).args(["fmt", "--check"]))?;
            run(cargo().current_dir(&root).args([
                "clippy",
                "--release",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))?;
            // The hosts built for another target (musl) are linted, tested and run there, as they
            // ship; everything else for cargo's default target.
            let other_targets: Vec<(String, Vec<&h_testkit::Manifest>)> = hosts::by_target(&manifests)
                .into_iter()
                .filter_map(|(target, group)| target.map(|target| (target, group)))
                .collect();
            let with_flag = |flag: &'static str, group: &[&h_testkit::Manifest]| -> Vec<String> {
                group.iter().flat_map(|manifest| [flag.to_string(), manifest.name.clone()]).collect()
            };
            for (target, group) in &other_targets {
                let clippy = ["clippy", "--release", "--target", target, "--all-targets"];
                let packages = with_flag("--package", group);
                run(cargo().current_dir(&root).args(clippy).args(&packages).args(["--", "-D", "warnings"]))?;
            }
            let moved: Vec<&h_testkit::Manifest> = other_targets.iter().flat_map(|(_, group)| group.clone()).collect();
            let excluded = with_flag("--exclude", &moved);
            run(cargo().current_dir(&root).args(["test", "--release", "--workspace"]).args(&excluded))?;
            for (target, group) in &other_targets {
                let packages = with_flag("--package", group);
                run(cargo().current_dir(&root).args(["test", "--release", "--target", target]).args(&packages))?;
            }
            // The release binaries check_linking reads, as `cargo xtask run` builds them.
            hosts::build(&root, &manifests.iter().collect::<Vec<_>>(), |_| Vec::new(), |_| {})?;
            check_linking(&root)
        }
        "bench" => {
            ensure_packages(TEST_PACKAGES)?;
            hosts::ensure_targets(&hosts::all(&root)?)?;
            bench::run(&root, &arguments[1..])
        }
        "vm-test" => vm::run(&root, &arguments[1..]),
        "compat" => compat::run(&root, &arguments[1..]),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown xtask command {other}; {USAGE}"),
    }
}
