//! The repository's generated programs: which policies are compiled and where each program is
//! written, every output computed from `filters/`, and writing them or checking that the
//! committed ones are fresh.

use std::path::{Path, PathBuf};

use crate::emit::compile;
use crate::render::{render, render_syscall_names};
use crate::resolve::resolve;
use crate::schema::Policy;
use crate::{Arch, Error, ARCHES};

/// The programs compiled: (the policy's name in `filters/`, the crate directory the output goes
/// to). `supervisor` is the supervisor's own filter, inside the sandbox crate; then every host
/// (a `hosts/HOST` with a `host.toml`) with `filters/HOST.toml`, and each `filters/HOST-VARIANT.toml`
/// as a second program of that host (`HOST-programs`: the host's rules and those the programs
/// granted with `--allow-exec` need).
pub fn programs(root: &Path) -> Vec<(String, String)> {
    let names = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| entries.filter_map(|entry| entry.ok()?.file_name().into_string().ok()).collect())
            .unwrap_or_default();
        names.sort();
        names
    };
    let mut programs = vec![("supervisor".to_string(), "sandbox".to_string())];
    let mut policies: Vec<String> =
        names(&root.join("filters")).iter().filter_map(|file| file.strip_suffix(".toml").map(str::to_string)).collect();
    policies.sort();
    for host in
        names(&root.join("hosts")).into_iter().filter(|host| root.join("hosts").join(host).join("host.toml").is_file())
    {
        let crate_dir = format!("hosts/{host}");
        let variant_prefix = format!("{host}-");
        for policy in policies.iter().filter(|policy| **policy == host || policy.starts_with(&variant_prefix)) {
            programs.push((policy.clone(), crate_dir.clone()));
        }
    }
    programs
}

/// Where the program of `policy` (in the crate `crate_dir`) for `arch` is committed:
/// `seccomp_ARCH.rs`, or `seccomp_VARIANT_ARCH.rs` for a policy named `HOST-VARIANT`.
pub fn output_path(root: &Path, policy: &str, crate_dir: &str, arch: Arch) -> PathBuf {
    let file = match policy.split_once('-') {
        Some((_, variant)) => format!("seccomp_{variant}_{}.rs", arch.name()),
        None => format!("seccomp_{}.rs", arch.name()),
    };
    root.join(crate_dir).join("src/generated").join(file)
}

/// Everything codegen writes: (path, contents).
pub fn generate_all(root: &Path) -> Result<Vec<(PathBuf, String)>, Error> {
    let filters_dir = root.join("filters");
    let mut outputs = Vec::new();
    for arch in ARCHES {
        let path = root.join("sandbox/src/generated").join(format!("syscall_names_{}.rs", arch.name()));
        outputs.push((path, render_syscall_names(arch)));
    }
    for (host, crate_dir) in programs(root) {
        let (host, crate_dir) = (host.as_str(), crate_dir.as_str());
        let policy = Policy::load(&filters_dir, host)?;
        for arch in ARCHES {
            let resolved = resolve(&policy.rules, arch).map_err(|source| Error::Resolve {
                host: host.to_string(),
                arch,
                source,
            })?;
            let program = compile(&resolved, arch, policy.denied).map_err(|source| Error::Emit {
                host: host.to_string(),
                arch,
                source,
            })?;
            outputs.push((output_path(root, host, crate_dir, arch), render(host, arch, &resolved, &program)));
        }
    }
    Ok(outputs)
}

/// The committed files that differ from what `filters/` compiles to (missing ones included).
pub fn stale(root: &Path) -> Result<Vec<PathBuf>, Error> {
    let outputs = generate_all(root)?;
    Ok(outputs.into_iter().filter(|(path, contents)| !is_current(path, contents)).map(|(path, _)| path).collect())
}

/// Fails with [`Error::Stale`] if any committed program is not what `filters/` compiles to.
pub fn check(root: &Path) -> Result<(), Error> {
    let stale = stale(root)?;
    if stale.is_empty() {
        return Ok(());
    }
    Err(Error::Stale(stale.iter().map(|path| path.display().to_string()).collect()))
}

/// Writes every program that changed; returns the paths written.
pub fn write(root: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut written = Vec::new();
    for (path, contents) in generate_all(root)? {
        if is_current(&path, &contents) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Write { path: parent.to_path_buf(), source })?;
        }
        std::fs::write(&path, contents).map_err(|source| Error::Write { path: path.clone(), source })?;
        written.push(path);
    }
    Ok(written)
}

fn is_current(path: &Path, contents: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|current| current == contents)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The repository this crate is part of.
    pub(crate) fn project_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
    }

    /// Every host's filters are found: the supervisor's, each host's and its variants.
    #[test]
    fn programs_follow_the_manifests() {
        let found = programs(&project_root());
        let named: Vec<&str> = found.iter().map(|(policy, _)| policy.as_str()).collect();
        assert_eq!(
            named,
            [
                "supervisor",
                "hlua",
                "hlua-learn",
                "hlua-programs",
                "hnode",
                "hnode-learn",
                "hnode-programs",
                "hpython",
                "hpython-learn",
                "hpython-programs",
                "hsh"
            ]
        );
        assert!(found
            .iter()
            .all(|(policy, dir)| policy == "supervisor" || dir.ends_with(policy.split('-').next().unwrap())));
    }

    /// The committed programs match filters/ (a hand edit or a forgotten `cargo xtask codegen` fails).
    #[test]
    fn generated_programs_are_fresh() {
        check(&project_root()).unwrap();
    }

    /// A changed committed file is reported stale, and only it.
    #[test]
    fn a_changed_program_is_stale() {
        let root = project_root();
        let copy = std::env::temp_dir().join(format!("h-filter-codegen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&copy);
        let outputs = generate_all(&root).unwrap();
        for (path, _) in &outputs {
            let target = copy.join(path.strip_prefix(&root).unwrap());
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(path, &target).unwrap();
        }
        let filters = copy.join("filters");
        std::fs::create_dir_all(&filters).unwrap();
        for entry in std::fs::read_dir(root.join("filters")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), filters.join(entry.file_name())).unwrap();
        }
        for (_, crate_dir) in programs(&root) {
            let manifest = root.join(&crate_dir).join("host.toml");
            if manifest.is_file() {
                std::fs::copy(&manifest, copy.join(&crate_dir).join("host.toml")).unwrap();
            }
        }
        assert!(stale(&copy).unwrap().is_empty());
        let edited = output_path(&copy, "hlua", "hosts/hlua", Arch::Aarch64);
        let text = std::fs::read_to_string(&edited).unwrap();
        std::fs::write(&edited, text.replacen("jt: 0", "jt: 1", 1)).unwrap();
        assert_eq!(stale(&copy).unwrap(), std::slice::from_ref(&edited));
        assert!(matches!(check(&copy), Err(Error::Stale(paths)) if paths.len() == 1));
        assert_eq!(write(&copy).unwrap(), [edited]);
        assert!(stale(&copy).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(copy);
    }
}
