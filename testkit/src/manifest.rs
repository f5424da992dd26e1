//! A host's manifest, `hosts/HOST/host.toml`: what the tools around a host know of it (its case
//! harness, `cargo xtask` and the Nix build, which reads the same file with `builtins.fromTOML`).
//! The host's policy (rlimits, devices, runtime files) stays typed Rust in its crate and its
//! filter in `filters/HOST.toml`: a new host is its crate, this manifest, its filter and its
//! cases, and no other file names it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The manifest's file name inside a host crate.
pub const MANIFEST_FILE: &str = "host.toml";

/// One host's manifest.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The binary and crate name (`hlua`), the same as the crate directory's.
    pub name: String,
    /// The language the host runs (`Lua 5.4`).
    pub language: String,
    /// One line for package descriptions.
    pub description: String,
    /// How the host's binary is linked.
    pub build: Build,
    pub cases: Cases,
    #[serde(default)]
    pub vm: Vm,
    pub nix: Nix,
    pub bench: Bench,
}

/// How the host's binary is linked (read by `tools/rustc-static-libc`, cargo's wrapper for the
/// workspace's crates, and by `cargo xtask vm-test`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// The C library is linked in (`-C target-feature=+crt-static`): the binary starts without
    /// the dynamic loader, about 0.3 ms sooner on this machine kind (docs/overhead.md), and runs
    /// in the QEMU guests as it is. False for a host that `dlopen`s (hpython's extension modules
    /// need the shared C library and the host's exported symbols). A store build
    /// (`H_STORE_ONLY`, the Nix package) links the C library of the store dynamically either way.
    pub static_libc: bool,
    /// The C library the binary is built with (`c_library = "musl"`; glibc when left out). With
    /// musl the binary is built for `ARCH-unknown-linux-musl` ([`Manifest::target`]), linked in:
    /// it starts without glibc's probing of the CPU's caches, `cpuid` instructions that trap to
    /// the hypervisor on a virtual machine (0.6 ms of every start on this machine kind,
    /// docs/overhead.md). Only for a host that execs its interpreter (hsh, hnode), which keeps
    /// the system's C library; the sandbox makes its own calls with the arguments its filters
    /// name, whichever C library it is built with.
    #[serde(default)]
    pub c_library: CLibrary,
}

/// The C library of a host's binary.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CLibrary {
    #[default]
    Glibc,
    Musl,
}

/// What the case harness needs besides the cases.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Cases {
    /// The bare interpreter of the control runs; a word `${NAME}` is the build value `NAME`
    /// (a `cargo:rustc-env` of the host's build script, handed over by its `tests/cases.rs`).
    pub control: Vec<String>,
    /// Build values substituted in the cases' expectations: `"$LIBPYTHON" = "H_LIBPYTHON"`, so
    /// that no interpreter version is a literal of a case.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
}

/// What the QEMU guest of `cargo xtask vm-test` needs.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Vm {
    /// Entries of the directories of the host's landlock table left out of the guest (file names,
    /// at any depth): what no case reads and the image would only carry.
    #[serde(default)]
    pub left_out: Vec<String>,
}

/// How the Nix build packages the host.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Nix {
    /// The nixpkgs attribute of the interpreter (`python3`); empty when the interpreter is
    /// linked into the host (hlua).
    pub interpreter: String,
    /// The interpreter's program inside that package (`bin/python3`).
    pub program: String,
    /// Build variables set to the program's store path (what the build script resolves).
    #[serde(default)]
    pub env: Vec<String>,
    /// Names under which the VM tests put the program on the case PATH (control runs, and cases
    /// that run the interpreter by name).
    #[serde(default)]
    pub controls: Vec<String>,
    /// The interpreter is also a build input (linked against, as hpython links libpython).
    #[serde(default)]
    pub link: bool,
}

/// The workloads of `cargo xtask bench`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Bench {
    /// The bare interpreter the host is compared with, as the machine has it.
    pub bare: Vec<String>,
    pub workloads: Vec<Workload>,
}

/// One row of the benchmark table.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// What it measures (`hello`, `200k write+flush to a pipe`).
    pub name: String,
    /// The script and its arguments, relative to the repository's root.
    pub script: Vec<String>,
    /// Rounds: each runs the bare command, the host and the peers once.
    pub runs: u32,
    /// The most host / bare may be (issue 15's goal for the row), if the row has one.
    #[serde(default)]
    pub goal: Option<f64>,
}

impl Manifest {
    /// Reads `host.toml` of the host crate `crate_dir`; its name must be the directory's.
    pub fn load(crate_dir: &Path) -> Result<Manifest, String> {
        let path = crate_dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|error| format!("{}: {error}", path.display()))?;
        let manifest: Manifest = toml::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;
        let dir_name = crate_dir.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        if manifest.name != dir_name {
            return Err(format!(
                "{}: name {:?} is not the crate directory's {dir_name:?}",
                path.display(),
                manifest.name
            ));
        }
        if manifest.build.c_library == CLibrary::Musl && !manifest.build.static_libc {
            return Err(format!(
                "{}: c_library = \"musl\" links the C library in: static_libc must be true",
                path.display()
            ));
        }
        Ok(manifest)
    }
    /// The target the host is built for when it is not cargo's default: musl's for this
    /// machine's architecture.
    pub fn target(&self) -> Option<String> {
        match self.build.c_library {
            CLibrary::Glibc => None,
            CLibrary::Musl => Some(format!("{}-unknown-linux-musl", std::env::consts::ARCH)),
        }
    }

    /// Where a release build of the host (for [`Manifest::target`]) puts its binary, in the
    /// cargo target directory `target_dir`.
    pub fn release_binary(&self, target_dir: &Path) -> PathBuf {
        match self.target() {
            Some(target) => target_dir.join(target).join("release").join(&self.name),
            None => target_dir.join("release").join(&self.name),
        }
    }

    /// The control interpreter's words with `${NAME}` replaced by the build value `NAME`.
    pub fn control(&self, build_values: &[(&str, &str)]) -> Result<Vec<String>, String> {
        self.cases
            .control
            .iter()
            .map(|word| match word.strip_prefix("${").and_then(|rest| rest.strip_suffix('}')) {
                None => Ok(word.clone()),
                Some(name) => build_values
                    .iter()
                    .find(|(known, _)| *known == name)
                    .map(|(_, value)| value.to_string())
                    .ok_or_else(|| {
                        format!("{}: the control names ${{{name}}}, which the build does not give", self.name)
                    }),
            })
            .collect()
    }

    /// The case variables with their build values: `("$LIBPYTHON", "libpython3.11.so.1.0")`.
    pub fn case_vars(&self, build_values: &[(&str, &str)]) -> Result<Vec<(String, String)>, String> {
        self.cases
            .vars
            .iter()
            .map(|(variable, name)| {
                build_values
                    .iter()
                    .find(|(known, _)| known == name)
                    .map(|(_, value)| (variable.clone(), value.to_string()))
                    .ok_or_else(|| format!("{}: {variable} names {name}, which the build does not give", self.name))
            })
            .collect()
    }
}

/// The host crates of the repository at `root`: every `hosts/*` directory with a manifest, by name.
pub fn host_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("hosts"))
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|dir| dir.join(MANIFEST_FILE).is_file())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// Every host's manifest, by name.
pub fn manifests(root: &Path) -> Result<Vec<Manifest>, String> {
    let manifests: Vec<Manifest> = host_dirs(root).iter().map(|dir| Manifest::load(dir)).collect::<Result<_, _>>()?;
    if manifests.is_empty() {
        return Err(format!("no hosts/*/{MANIFEST_FILE} under {}", root.display()));
    }
    Ok(manifests)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
    }

    #[test]
    fn every_host_has_a_manifest_that_reads() {
        let manifests = manifests(root()).unwrap();
        let names: Vec<&str> = manifests.iter().map(|manifest| manifest.name.as_str()).collect();
        assert_eq!(names, ["hlua", "hnode", "hpython", "hsh"]);
        for manifest in &manifests {
            assert!(!manifest.bench.workloads.is_empty(), "{}: no workload", manifest.name);
            for workload in &manifest.bench.workloads {
                assert!(root().join(&workload.script[0]).is_file(), "{}: {:?}", manifest.name, workload.script);
                // A goal is the most host / bare may be: a ratio near 1 (a slip such as 110 for
                // 1.10, or 0.11, is caught here).
                if let Some(goal) = workload.goal {
                    assert!((0.5..2.0).contains(&goal), "{}: {}: goal {goal}", manifest.name, workload.name);
                }
            }
        }
        let hello = |host: &str| {
            manifests.iter().find(|manifest| manifest.name == host).map(|manifest| {
                manifest
                    .bench
                    .workloads
                    .iter()
                    .find(|workload| workload.name == "hello")
                    .and_then(|workload| workload.goal)
            })
        };
        assert_eq!(hello("hlua"), Some(Some(1.10)), "issue 15's goal for hlua's hello");
    }

    /// The launchers that exec their interpreter, and hlua (Lua linked in, nothing loaded), are
    /// built with musl, for its target; hpython keeps glibc (it dlopens glibc's modules).
    #[test]
    fn musl_hosts_and_where_their_binaries_land() {
        let manifests = manifests(root()).unwrap();
        let target = format!("{}-unknown-linux-musl", std::env::consts::ARCH);
        for manifest in &manifests {
            let musl = matches!(manifest.name.as_str(), "hsh" | "hnode" | "hlua");
            let expected = if musl { CLibrary::Musl } else { CLibrary::Glibc };
            assert_eq!(manifest.build.c_library, expected, "{}", manifest.name);
            assert_eq!(manifest.target(), musl.then(|| target.clone()), "{}", manifest.name);
            let binary = manifest.release_binary(Path::new("/t"));
            let wanted = if musl {
                format!("/t/{target}/release/{}", manifest.name)
            } else {
                format!("/t/release/{}", manifest.name)
            };
            assert_eq!(binary, PathBuf::from(wanted));
        }
        let dir = std::env::temp_dir().join(format!("h-manifest-{}", std::process::id())).join("hsh");
        std::fs::create_dir_all(&dir).unwrap();
        let text = std::fs::read_to_string(root().join("hosts/hsh/host.toml")).unwrap();
        std::fs::write(dir.join(MANIFEST_FILE), text.replace("static_libc = true", "static_libc = false")).unwrap();
        let refused = Manifest::load(&dir).unwrap_err();
        assert!(refused.contains("static_libc must be true"), "{refused}");
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn build_values_are_substituted_or_refused() {
        let mut manifest = Manifest::load(&root().join("hosts/hpython")).unwrap();
        let values = [("H_PYTHON_EXECUTABLE", "/usr/bin/python3.11"), ("H_LIBPYTHON", "libpython3.11.so.1.0")];
        assert_eq!(manifest.control(&values).unwrap(), ["/usr/bin/python3.11", "-I", "-S"]);
        assert_eq!(
            manifest.case_vars(&values).unwrap(),
            [("$LIBPYTHON".to_string(), "libpython3.11.so.1.0".to_string())]
        );
        assert!(manifest.control(&[]).is_err());
        manifest.cases.vars.insert("$X".into(), "H_NOT_GIVEN".into());
        assert!(manifest.case_vars(&values).unwrap_err().contains("H_NOT_GIVEN"));
    }
}
