//! The guest's binaries, built in `target/vm`: the static hosts and this xtask (the in-guest
//! runner) with `+crt-static` for `x86_64-unknown-linux-gnu` (the explicit target keeps build
//! scripts and proc macros dynamic host programs), the hosts built with musl for its target
//! (static by nature), and the hosts that need the dynamic loader (hpython) as usual. Cargo's
//! JSON messages say where each binary is, where its build script wrote the landlock table
//! ([`h_resolve::TABLE_LIST`]) and what it set with `cargo:rustc-env`.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use h_resolve::RuntimeFile;
use serde_json::Value;

use h_testkit::Manifest;

pub const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// One host as built for the guest.
pub struct Built {
    /// Its manifest (`hosts/HOST/host.toml`).
    pub manifest: Manifest,
    pub binary: PathBuf,
    /// The landlock table its build script resolved (empty without one).
    pub table: Vec<RuntimeFile>,
    /// What its build script set with `cargo:rustc-env`.
    pub env: BTreeMap<String, String>,
}

pub struct Binaries {
    pub hosts: Vec<Built>,
    /// The static xtask, run in the guest as `/bin/h-vm-runner`.
    pub runner: PathBuf,
}

/// What cargo reported for one package: its binaries by name, its build script's output.
#[derive(Default)]
struct Package {
    executables: BTreeMap<String, PathBuf>,
    out_dir: Option<PathBuf>,
    env: BTreeMap<String, String>,
}

/// Runs `cargo build --message-format=json-render-diagnostics` with `arguments` and collects the
/// artifacts by package id.
fn cargo_build(root: &Path, arguments: &[&str], configure: impl FnOnce(&mut Command)) -> Result<Vec<Package>> {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    command.current_dir(root).args(["build", "--release", "--message-format=json-render-diagnostics"]).args(arguments);
    command.env("CARGO_TARGET_DIR", root.join("target/vm")).stdout(Stdio::piped());
    configure(&mut command);
    eprintln!("$ {command:?}");
    let mut child = command.spawn().with_context(|| format!("starting {command:?}"))?;
    let stdout = child.stdout.take().context("cargo's stdout")?;
    let mut packages: BTreeMap<String, Package> = BTreeMap::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let message: Value = serde_json::from_str(&line?).context("cargo printed a line that is not JSON")?;
        let Some(id) = message["package_id"].as_str() else { continue };
        let package = packages.entry(id.to_string()).or_default();
        match message["reason"].as_str() {
            Some("compiler-artifact") => {
                if let (Some(name), Some(executable)) =
                    (message["target"]["name"].as_str(), message["executable"].as_str())
                {
                    package.executables.insert(name.to_string(), PathBuf::from(executable));
                }
            }
            Some("build-script-executed") => {
                package.out_dir = message["out_dir"].as_str().map(PathBuf::from);
                for pair in message["env"].as_array().into_iter().flatten() {
                    if let (Some(key), Some(value)) = (pair[0].as_str(), pair[1].as_str()) {
                        package.env.insert(key.to_string(), value.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(packages.into_values().collect())
}

/// The package that built binary `name`.
fn take(packages: &mut Vec<Package>, name: &str) -> Result<Package> {
    let index = packages
        .iter()
        .position(|package| package.executables.contains_key(name))
        .with_context(|| format!("cargo built no binary {name}"))?;
    Ok(packages.swap_remove(index))
}

fn built(manifest: Manifest, mut package: Package) -> Result<Built> {
    let name = &manifest.name;
    let binary = package.executables.remove(name).with_context(|| format!("no binary {name}"))?;
    // A host whose build script writes no table (hlua: Lua is linked in) reads no interpreter
    // files.
    let list = package.out_dir.map(|out_dir| out_dir.join(h_resolve::TABLE_LIST)).filter(|list| list.is_file());
    let table = match list {
        Some(list) => {
            let text = std::fs::read_to_string(&list).with_context(|| format!("reading {}", list.display()))?;
            h_resolve::parse_list(&text).map_err(anyhow::Error::msg).with_context(|| list.display().to_string())?
        }
        None => Vec::new(),
    };
    Ok(Built { manifest, binary, table, env: package.env })
}

/// Fails unless `path` is an ELF executable without a program interpreter (a static binary).
pub fn require_static(path: &Path) -> Result<()> {
    let interpreter = h_resolve::program_interpreter(path).map_err(|error| anyhow::anyhow!("{error}"))?;
    if let Some(interpreter) = interpreter {
        bail!("{} is dynamically linked ({interpreter}); it must be static in the guest", path.display());
    }
    Ok(())
}

pub fn build(root: &Path) -> Result<Binaries> {
    let manifests = h_testkit::manifests(root).map_err(anyhow::Error::msg)?;
    crate::hosts::ensure_targets(&manifests)?;
    let mut arguments = vec!["--target", TRIPLE, "--package", "xtask"];
    let glibc_static = |manifest: &&Manifest| manifest.build.static_libc && crate::hosts::target(manifest).is_none();
    for manifest in manifests.iter().filter(glibc_static) {
        arguments.extend(["--package", manifest.name.as_str()]);
    }
    // The build scripts resolve the interpreters of this machine (what the guest gets), not the
    // ones an environment variable names.
    let unset = ["H_BASH", "H_NODE", "H_PYTHON", "H_STORE_ONLY", "CARGO_ENCODED_RUSTFLAGS"];
    let mut packages = cargo_build(root, &arguments, |command| {
        command.env("RUSTFLAGS", "-C target-feature=+crt-static");
        unset.iter().for_each(|name| _ = command.env_remove(name));
    })?;
    for (target, group) in crate::hosts::by_target(&manifests) {
        let Some(target) = target else { continue };
        let mut arguments = vec!["--target", target.as_str()];
        arguments.extend(group.iter().flat_map(|manifest| ["--package", manifest.name.as_str()]));
        packages.extend(cargo_build(root, &arguments, |command| {
            unset.iter().for_each(|name| _ = command.env_remove(name));
        })?);
    }
    let mut dynamic_arguments = Vec::new();
    for manifest in manifests.iter().filter(|manifest| !manifest.build.static_libc) {
        dynamic_arguments.extend(["--package", manifest.name.as_str()]);
    }
    if !dynamic_arguments.is_empty() {
        packages.extend(cargo_build(root, &dynamic_arguments, |command| {
            unset.iter().for_each(|name| _ = command.env_remove(name));
        })?);
    }
    let runner = take(&mut packages, "xtask")?.executables.remove("xtask").context("no xtask binary")?;
    require_static(&runner)?;
    let mut hosts = Vec::new();
    for manifest in manifests {
        let package = take(&mut packages, &manifest.name)?;
        let host = built(manifest, package)?;
        if host.manifest.build.static_libc {
            require_static(&host.binary)?;
        }
        hosts.push(host);
    }
    Ok(Binaries { hosts, runner })
}
