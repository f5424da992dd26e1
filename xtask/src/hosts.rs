//! Building the hosts where their manifests say: most for cargo's default target, hsh and hnode
//! for musl's (`c_library = "musl"`), so one `cargo build` per target.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use h_testkit::Manifest;

/// Every host's manifest.
pub fn all(root: &Path) -> Result<Vec<Manifest>> {
    h_testkit::manifests(root).map_err(anyhow::Error::msg)
}

/// The manifest of the host `name`.
pub fn named(root: &Path, name: &str) -> Result<Manifest> {
    let known = all(root)?;
    let names: Vec<String> = known.iter().map(|manifest| manifest.name.clone()).collect();
    known
        .into_iter()
        .find(|manifest| manifest.name == name)
        .with_context(|| format!("no host named {name:?} (hosts: {})", names.join(", ")))
}

/// Set when a host's target could not be installed (no rustup, or its server out of reach, or
/// no musl C compiler): the hosts that ask for musl are then built for cargo's default target,
/// with glibc linked in, which passes every case as well and starts slower; xtask says so when it
/// happens.
static TARGETS_MISSING: AtomicBool = AtomicBool::new(false);

/// The target `manifest`'s host is built for in this run: its manifest's, unless that could not
/// be installed.
pub fn target(manifest: &Manifest) -> Option<String> {
    manifest.target().filter(|_| !TARGETS_MISSING.load(Ordering::Relaxed))
}

/// Installs the Rust standard library of every target a host is built for that rustup does not
/// have yet (`rustup target add x86_64-unknown-linux-musl`), and for musl's targets the C
/// compiler that builds C code against musl (Debian's `musl-tools`: hlua's Lua). When either
/// fails, the hosts are built for the default target instead ([`target`]), and a warning says
/// why.
pub fn ensure_targets(manifests: &[Manifest]) -> Result<()> {
    if let Err(error) = install_targets(manifests) {
        eprintln!(
            "xtask: WARNING: {error:#}; hlua, hsh and hnode are built with glibc instead of musl \
             (the same sandbox, about 0.6 ms slower to start: docs/overhead.md)"
        );
        TARGETS_MISSING.store(true, Ordering::Relaxed);
    }
    Ok(())
}

fn install_targets(manifests: &[Manifest]) -> Result<()> {
    let wanted: BTreeSet<String> = manifests.iter().filter_map(Manifest::target).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    if wanted.iter().any(|target| target.ends_with("-linux-musl")) {
        crate::ensure_packages(&["musl-tools"])?;
    }
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running rustup: hlua, hsh and hnode are built for musl's target, which rustup installs")?;
    let text = String::from_utf8_lossy(&listed.stdout);
    let installed: BTreeSet<&str> = text.lines().map(str::trim).collect();
    let missing: Vec<&str> = wanted.iter().map(String::as_str).filter(|target| !installed.contains(target)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    crate::run(Command::new("rustup").args(["target", "add"]).args(&missing))
}

/// `manifests` grouped by the target each is built for in this run ([`target`]; `None` for
/// cargo's default), in a fixed order.
pub fn by_target<'a>(manifests: impl IntoIterator<Item = &'a Manifest>) -> BTreeMap<Option<String>, Vec<&'a Manifest>> {
    let mut groups: BTreeMap<Option<String>, Vec<&Manifest>> = BTreeMap::new();
    for manifest in manifests {
        groups.entry(target(manifest)).or_default().push(manifest);
    }
    groups
}

/// `cargo build --release --quiet` of `hosts`, one run per target, each host's packages with
/// `package_arguments(name)` after its `--package NAME`; `configure` sets what every run shares
/// (a target directory).
pub fn build(
    root: &Path,
    hosts: &[&Manifest],
    package_arguments: impl Fn(&str) -> Vec<String>,
    configure: impl Fn(&mut Command),
) -> Result<()> {
    if hosts.is_empty() {
        bail!("no host to build");
    }
    for (target, group) in by_target(hosts.iter().copied()) {
        let mut build = crate::cargo();
        build.current_dir(root).args(["build", "--release", "--quiet"]);
        if let Some(target) = &target {
            build.args(["--target", target]);
        }
        for manifest in group {
            build.args(["--package", &manifest.name]).args(package_arguments(&manifest.name));
        }
        configure(&mut build);
        crate::run(&mut build)?;
    }
    Ok(())
}

/// The release binary of `manifest` in the project's own target directory.
pub fn release_binary(root: &Path, manifest: &Manifest) -> PathBuf {
    binary_in(&root.join("target"), manifest)
}

/// The release binary of `manifest` in the cargo target directory `target_dir`.
pub fn binary_in(target_dir: &Path, manifest: &Manifest) -> PathBuf {
    match target(manifest) {
        Some(_) => manifest.release_binary(target_dir),
        None => target_dir.join("release").join(&manifest.name),
    }
}
