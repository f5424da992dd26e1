//! The checks of the flake itself: every `.nix` file parses, `nix flake check` against the
//! stand-in nixpkgs, the evaluated outputs (`nix/tests/report.nix`) asserted in depth, the VM
//! tests' scripts through the driver's lint, and the lock through Nix.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use h_testkit::Manifest;
use serde_json::Value;

use super::*;

/// Every `.nix` file of a tree, outside build output and version control.
pub(super) fn nix_files(root: &Path) -> Result<Vec<PathBuf>> {
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

pub(super) fn check_parse(_: &Workspace, tree: &Path) -> Result<()> {
    let files = nix_files(tree)?;
    ensure!(files.iter().any(|file| file.ends_with("flake.nix")), "no flake.nix");
    for file in &files {
        output_of(Command::new("nix-instantiate").arg("--parse").arg(file))
            .with_context(|| format!("{} does not parse", file.display()))?;
    }
    Ok(())
}

pub(super) fn check_flake(work: &Workspace, tree: &Path) -> Result<()> {
    let stand_in = format!("path:{}", tree.join("nix/tests/nixpkgs").display());
    output_of(
        nix(work)
            .args(["flake", "check", "--no-build", "--override-input", "nixpkgs", &stand_in])
            .arg(format!("path:{}", tree.display())),
    )?;
    Ok(())
}

/// `nix/tests/report.nix` of `tree`, evaluated.
pub(super) fn report(tree: &Path) -> Result<Value> {
    let text = output_of(
        Command::new("nix-instantiate")
            .args(["--readonly-mode", "--eval", "--strict", "--json", "nix/tests/report.nix"])
            .current_dir(tree),
    )?;
    serde_json::from_str(&text).context("reading report.nix's JSON")
}

pub(super) fn names(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

pub(super) fn text<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    path.iter().try_fold(value, |value, key| value.get(*key)).and_then(Value::as_str).unwrap_or_default()
}

/// The manifests of the hosts in `tree` (`hosts/*/host.toml`): what the flake must package.
pub(super) fn manifests_in(tree: &Path) -> Result<Vec<Manifest>> {
    h_testkit::manifests(tree).map_err(anyhow::Error::msg)
}

/// The names of the hosts in `tree`.
pub(super) fn hosts_in(tree: &Path) -> Result<Vec<String>> {
    Ok(manifests_in(tree)?.into_iter().map(|manifest| manifest.name).collect())
}

pub(super) fn check_report(_: &Workspace, tree: &Path) -> Result<()> {
    let report = report(tree)?;
    let manifests = manifests_in(tree)?;
    let hosts: Vec<&str> = manifests.iter().map(|manifest| manifest.name.as_str()).collect();
    check_outputs(&report, &hosts)?;
    check_packages(&report, &manifests)?;
    check_vm_tests(&report)
}

/// Every output the flake must offer, for every host with a crate, on every system.
pub(super) fn check_outputs(report: &Value, hosts: &[&str]) -> Result<()> {
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
        for check in ["filters", "cases"].iter().chain(VM_TESTS.iter().map(|(name, _, _)| name)) {
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
pub(super) fn check_packages(report: &Value, manifests: &[Manifest]) -> Result<()> {
    for manifest in manifests {
        let host = manifest.name.as_str();
        let package =
            report.get("package").and_then(|set| set.get(host)).with_context(|| format!("no package {host}"))?;
        let stand_in = package.get("standIn").with_context(|| format!("{host}: no builder record"))?;
        ensure!(
            text(stand_in, &["builder"]) == "rustPlatform.buildRustPackage",
            "{host}: not built by buildRustPackage"
        );
        ensure!(names(stand_in.get("cargoBuildFlags")) == ["-p", host], "{host}: cargoBuildFlags are not -p {host}");
        ensure!(text(stand_in, &["env", "H_STORE_ONLY"]) == "1", "{host}: H_STORE_ONLY is not \"1\" in its build");
        for variable in &manifest.nix.env {
            let value = text(stand_in, &["env", variable]);
            ensure!(value.starts_with("/nix/store/"), "{host}: {variable} is {value:?}, not a store path");
        }
        let env = stand_in.get("env").and_then(Value::as_object).map(|env| env.len()).unwrap_or_default();
        ensure!(env == 1 + manifest.nix.env.len(), "{host}: its build environment has other variables");
        ensure!(stand_in.get("doCheck").and_then(Value::as_bool) == Some(false), "{host}: doCheck is not false");
        ensure!(text(package, &["meta", "mainProgram"]) == host, "{host}: meta.mainProgram is not {host}");
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
    let mut expected: Vec<String> = manifests.iter().map(|manifest| manifest.name.clone()).collect();
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

/// The VM tests: their kernels, and the harness run as a VM run (`--vm`: kernel checks, the
/// cases' own `[needs]`) against the landlock ABI each kernel must show.
pub(super) fn check_vm_tests(report: &Value) -> Result<()> {
    for (check, kernel, abi) in VM_TESTS {
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
        let expected = text(&expect, &["abi"]);
        ensure!(expected == *abi, "{check} expects landlock ABI {expected:?} of its kernel, not {abi:?}");
        ensure!(
            script.contains("/harness --vm --expect-abi {shlex.quote(expect['abi'])}"),
            "{check}: the test script does not run the harness as a VM run (--vm, --expect-abi): \
             it would not skip the cases whose needs it cannot meet, nor check the kernel"
        );
    }
    Ok(())
}

/// The JSON literal of `json.loads("...")` after `marker` in a rendered script.
pub(super) fn json_after(script: &str, marker: &str) -> Result<Value> {
    let start = script.find(marker).with_context(|| format!("no {marker}"))? + marker.len();
    let line = script[start..].lines().next().unwrap_or_default();
    let literal = line.strip_suffix(')').unwrap_or(line);
    let inner: String = serde_json::from_str(literal).context("the JSON string literal")?;
    serde_json::from_str(&inner).context("the JSON")
}

pub(super) fn check_lint(work: &Workspace, tree: &Path) -> Result<()> {
    let report = report(tree)?;
    let lint_dir = work.dir.join("lint");
    std::fs::create_dir_all(&lint_dir)?;
    let driver = tree.join("nix/tests/driver");
    let symbols = std::fs::read_to_string(driver.join("symbols.txt"))?.trim().to_string();
    let prelude = std::fs::read_to_string(driver.join("prelude.py"))?;
    for (check, _, _) in VM_TESTS {
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

pub(super) fn check_lock_file(work: &Workspace, tree: &Path) -> Result<()> {
    output_of(nix(work).args(["flake", "metadata", "--no-update-lock-file"]).arg(format!("path:{}", tree.display())))
        .context("flake.lock does not match flake.nix's inputs: run `nix flake update` on a networked machine")?;
    let lock_path = tree.join("flake.lock");
    let lock: Value = serde_json::from_str(&std::fs::read_to_string(&lock_path)?).context("flake.lock is not JSON")?;
    let url = text(&report(tree)?, &["nixpkgsUrl"]).to_string();
    check_lock(&lock, &url)?;
    Ok(())
}
