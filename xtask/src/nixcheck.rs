//! `cargo xtask nix-check`: the offline check of the Nix flake layer.
//!
//! nixpkgs cannot be fetched on the machines this runs on, so `nix build` and `nix flake check`
//! are left to the `nix` workflow. What can be checked without nixpkgs is checked here:
//!
//! - every `.nix` file of the repository parses (`nix-instantiate --parse`; Debian's `nix-bin`
//!   is installed through apt-get when `nix-instantiate` is missing);
//! - the flake's outputs are complete: `nix/tests/outputs.nix` lists them with nixpkgs replaced
//!   by a stand-in, and every host in `hosts/` has its package, app, build check and VM tests;
//! - `flake.lock` is valid JSON (read by Nix's own parser) and pins nixpkgs to a full GitHub
//!   revision with a narHash, on the branch `flake.nix` follows;
//! - the workflows in `.github/workflows/` are valid YAML, pin every action by version, and run
//!   `cargo xtask test`, `nix flake check` and `nix run .#hlua`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use serde_yaml::Value;

/// The hosts the flake packages once their crate exists in `hosts/`.
const HOSTS: &[&str] = &["hlua", "hpython", "hnode", "hsh"];
/// The systems the flake offers everything for.
const SYSTEMS: &[&str] = &["x86_64-linux", "aarch64-linux"];
/// Checks the flake must have besides one `package-HOST` per host: the filter verification, the
/// case harnesses, and the NixOS VM tests on an LTS kernel with landlock ABI 2, the latest
/// kernel, and a kernel without landlock.
const CHECKS: &[&str] = &["filters", "cases", "vm-linux-6_1", "vm-linux-latest", "vm-no-landlock"];
/// Commands the workflows must run (`cargo xtask test` may be run through `.ci/run`).
const WORKFLOW_COMMANDS: &[(&str, &[&str])] = &[
    ("cargo xtask test", &["cargo xtask test", ".ci/run"]),
    ("nix flake check", &["nix flake check"]),
    ("nix run .#hlua", &["nix run .#hlua"]),
];

pub fn run(root: &Path) -> Result<()> {
    ensure_nix_instantiate()?;
    let files = nix_files(root)?;
    ensure!(files.iter().any(|file| file.ends_with("flake.nix")), "no flake.nix in {}", root.display());
    for file in &files {
        parse(file)?;
    }
    println!("nix-check: {} .nix files parse", files.len());

    let outputs = evaluate(root, &["--eval", "--strict", "--json", "nix/tests/outputs.nix"])?;
    let hosts: Vec<&str> =
        HOSTS.iter().copied().filter(|host| root.join("hosts").join(host).join("Cargo.toml").is_file()).collect();
    check_outputs(&outputs, &hosts)?;
    println!("nix-check: flake outputs complete for {} on {}", hosts.join(", "), SYSTEMS.join(", "));

    let lock_path = root.join("flake.lock");
    let expression = format!("builtins.fromJSON (builtins.readFile {})", nix_path(&lock_path)?);
    let lock = evaluate(root, &["--eval", "--strict", "--json", "--expr", &expression])
        .with_context(|| format!("{} is not valid JSON", lock_path.display()))?;
    let url = outputs.get("nixpkgsUrl").and_then(Value::as_str).unwrap_or_default();
    let pin = check_lock(&lock, url)?;
    println!("nix-check: flake.lock pins {pin}");

    let workflows = root.join(".github/workflows");
    let mut texts = Vec::new();
    for entry in std::fs::read_dir(&workflows).with_context(|| format!("reading {}", workflows.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|extension| extension == "yaml" || extension == "yml") {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            texts.push((path, text));
        }
    }
    texts.sort();
    let named: Vec<(String, String)> =
        texts.into_iter().map(|(path, text)| (path.display().to_string(), text)).collect();
    check_workflows(&named)?;
    println!("nix-check: {} workflows valid, actions pinned, commands present", named.len());
    Ok(())
}

fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output();
    output.ok().and_then(|out| String::from_utf8(out.stdout).ok()).is_some_and(|uid| uid.trim() == "0")
}

fn have_nix_instantiate() -> bool {
    Command::new("nix-instantiate").arg("--version").output().is_ok_and(|out| out.status.success())
}

fn run_command(command: &mut Command) -> Result<()> {
    eprintln!("$ {command:?}");
    let status = command.status().with_context(|| format!("starting {command:?}"))?;
    ensure!(status.success(), "{command:?} failed: {status}");
    Ok(())
}

/// Installs Debian's `nix-bin` (which provides `nix-instantiate`) when it is missing.
fn ensure_nix_instantiate() -> Result<()> {
    if have_nix_instantiate() {
        return Ok(());
    }
    if !is_root() {
        bail!("nix-instantiate is missing; run as root: apt-get update && apt-get install -y nix-bin");
    }
    run_command(Command::new("apt-get").args(["update", "-qq"]))?;
    run_command(
        Command::new("apt-get").args(["install", "-y", "-qq", "nix-bin"]).env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    ensure!(have_nix_instantiate(), "nix-bin is installed but nix-instantiate still does not run");
    Ok(())
}

/// Every `.nix` file of the repository, outside build output and version control.
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

fn parse(file: &Path) -> Result<()> {
    let output = Command::new("nix-instantiate")
        .arg("--parse")
        .arg(file)
        .output()
        .with_context(|| format!("starting nix-instantiate --parse {}", file.display()))?;
    if !output.status.success() {
        bail!("{} does not parse:\n{}", file.display(), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// A path as a Nix path literal (absolute, so no quoting beyond refusing odd characters).
fn nix_path(path: &Path) -> Result<String> {
    let text = path.to_str().context("non-UTF-8 path")?;
    ensure!(
        text.starts_with('/') && text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c)),
        "{text} cannot be written as a Nix path literal"
    );
    Ok(text.to_string())
}

/// Runs `nix-instantiate ARGS` (read-only: nothing is added to the store) and parses its JSON
/// output (JSON is YAML, so serde_yaml reads it).
fn evaluate(root: &Path, arguments: &[&str]) -> Result<Value> {
    let output = Command::new("nix-instantiate")
        .arg("--readonly-mode")
        .args(arguments)
        .current_dir(root)
        .output()
        .with_context(|| format!("starting nix-instantiate {}", arguments.join(" ")))?;
    if !output.status.success() {
        bail!("nix-instantiate {} failed:\n{}", arguments.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    serde_yaml::from_slice(&output.stdout)
        .with_context(|| format!("reading the output of nix-instantiate {}", arguments.join(" ")))
}

fn names(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_sequence)
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// `outputs` is what `nix/tests/outputs.nix` evaluates to.
fn check_outputs(outputs: &Value, hosts: &[&str]) -> Result<()> {
    ensure!(hosts.contains(&"hlua"), "hosts/hlua is missing: the flake has nothing to package");
    let mut missing = Vec::new();
    for output in ["packages", "apps", "checks", "devShells", "formatter", "overlays"] {
        if !names(outputs.get("outputs")).iter().any(|name| name == output) {
            missing.push(output.to_string());
        }
    }
    for system in SYSTEMS {
        let mut want = |output: &str, name: String| {
            if !names(outputs.get(output).and_then(|set| set.get(*system))).contains(&name) {
                missing.push(format!("{output}.{system}.{name}"));
            }
        };
        want("packages", "default".to_string());
        want("devShells", "default".to_string());
        for host in hosts {
            want("packages", (*host).to_string());
            want("apps", (*host).to_string());
            want("checks", format!("package-{host}"));
        }
        for check in CHECKS {
            want("checks", (*check).to_string());
        }
        if !names(outputs.get("formatter")).iter().any(|name| name == system) {
            missing.push(format!("formatter.{system}"));
        }
    }
    if !names(outputs.get("overlays")).iter().any(|name| name == "default") {
        missing.push("overlays.default".to_string());
    }
    if !names(outputs.get("overlayAdds")).iter().any(|name| name == "h") {
        missing.push("overlays.default adding pkgs.h".to_string());
    }
    if names(outputs.get("inputs")) != ["nixpkgs"] {
        missing.push("exactly one input, nixpkgs".to_string());
    }
    ensure!(missing.is_empty(), "the flake lacks: {}", missing.join(", "));
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

/// `workflows` holds (name, YAML text) pairs.
fn check_workflows(workflows: &[(String, String)]) -> Result<()> {
    ensure!(!workflows.is_empty(), "no workflow in .github/workflows");
    let mut found: Vec<&str> = Vec::new();
    for (name, text) in workflows {
        let document: Value = serde_yaml::from_str(text).with_context(|| format!("{name} is not valid YAML"))?;
        ensure!(document.get("on").is_some(), "{name}: no `on:` trigger");
        let jobs = document.get("jobs").and_then(Value::as_mapping).with_context(|| format!("{name}: no jobs"))?;
        ensure!(!jobs.is_empty(), "{name}: no jobs");
        for (job_name, job) in jobs {
            let job_name = job_name.as_str().unwrap_or("?");
            ensure!(job.get("runs-on").is_some(), "{name}: job {job_name} has no runs-on");
            let steps = job
                .get("steps")
                .and_then(Value::as_sequence)
                .with_context(|| format!("{name}: job {job_name} has no steps"))?;
            for step in steps {
                if let Some(uses) = step.get("uses") {
                    let uses = uses.as_str().unwrap_or_default();
                    ensure!(pinned(uses), "{name}: job {job_name} uses {uses:?}, not pinned by version");
                }
                let run = step.get("run").and_then(Value::as_str).unwrap_or_default();
                for (command, spellings) in WORKFLOW_COMMANDS {
                    if spellings.iter().any(|spelling| run.contains(spelling)) {
                        found.push(command);
                    }
                }
            }
        }
    }
    let missing: Vec<&str> =
        WORKFLOW_COMMANDS.iter().map(|(command, _)| *command).filter(|command| !found.contains(command)).collect();
    ensure!(missing.is_empty(), "no workflow runs {}", missing.join(", "));
    Ok(())
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
        serde_yaml::from_str(&LOCK.replace(from, to)).unwrap()
    }

    #[test]
    fn lock_pinning_nixpkgs_passes() {
        let lock: Value = serde_yaml::from_str(LOCK).unwrap();
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
        let lock: Value = serde_yaml::from_str(LOCK).unwrap();
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

    const CI: &str = "on: [push]\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v5\n      - run: bash .ci/run\n";
    const NIX: &str = "on: [push]\njobs:\n  flake:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: cachix/install-nix-action@v31\n      - run: nix flake check\n      - run: nix run .#hlua -- examples/fun.lua\n";

    #[test]
    fn workflows_need_valid_yaml_pins_and_commands() {
        let named = |texts: &[&str]| -> Vec<(String, String)> {
            texts.iter().enumerate().map(|(i, text)| (format!("w{i}.yaml"), (*text).to_string())).collect()
        };
        assert!(check_workflows(&named(&[CI, NIX])).is_ok());
        assert!(check_workflows(&named(&[CI])).is_err(), "nix flake check missing");
        assert!(check_workflows(&named(&[NIX])).is_err(), "cargo xtask test missing");
        assert!(check_workflows(&named(&[&CI.replace("@v5", "@main"), NIX])).is_err(), "unpinned action");
        assert!(check_workflows(&named(&[&CI.replace("jobs:", "jobs: ["), NIX])).is_err(), "invalid YAML");
    }

    #[test]
    fn outputs_must_cover_every_host() {
        let systems = |names: &str| format!("{{\"x86_64-linux\": [{names}], \"aarch64-linux\": [{names}]}}");
        let outputs = |hosts: &str, checks: &str| -> Value {
            let text = format!(
                "{{\"outputs\": [\"apps\", \"checks\", \"devShells\", \"formatter\", \"overlays\", \"packages\"],
                  \"inputs\": [\"nixpkgs\"], \"overlays\": [\"default\"], \"overlayAdds\": [\"h\"],
                  \"formatter\": [\"aarch64-linux\", \"x86_64-linux\"],
                  \"packages\": {}, \"apps\": {}, \"devShells\": {}, \"checks\": {}}}",
                systems(&format!("\"default\", {hosts}")),
                systems(hosts),
                systems("\"default\""),
                systems(checks)
            );
            serde_yaml::from_str(&text).unwrap()
        };
        let checks =
            "\"package-hlua\", \"filters\", \"cases\", \"vm-linux-6_1\", \"vm-linux-latest\", \"vm-no-landlock\"";
        assert!(check_outputs(&outputs("\"hlua\"", checks), &["hlua"]).is_ok());
        assert!(check_outputs(&outputs("\"hlua\"", checks), &["hlua", "hsh"]).is_err(), "hsh not packaged");
        assert!(
            check_outputs(&outputs("\"hlua\"", "\"package-hlua\", \"filters\""), &["hlua"]).is_err(),
            "no VM tests"
        );
    }
}
