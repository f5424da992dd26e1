//! Finds, at build time, the exact files an interpreter reads at run time, and renders them as
//! the Rust table a host compiles in (`RUNTIME_FILES`). Used by the hosts' `build.rs`, so a host
//! never builds without its table; `H_STORE_ONLY=1` (the Nix build) rejects any path outside
//! the store (`NIX_STORE`, else `/nix/store`) and never searches the host's library directories.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

mod elf;
pub mod python;

pub use elf::{
    default_library_dirs, elf_closure, elf_closure_with, is_elf, loaded_objects_with, program_interpreter, store_dir,
    store_only_requested, LoadedObject, Search,
};

/// Access a runtime file gets, by the name of `h_sandbox::FsAccess`'s variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    Read,
    ReadExecute,
}

impl Access {
    fn variant(self) -> &'static str {
        match self {
            Access::Read => "Read",
            Access::ReadExecute => "ReadExecute",
        }
    }

    fn from_variant(name: &str) -> Option<Access> {
        match name {
            "Read" => Some(Access::Read),
            "ReadExecute" => Some(Access::ReadExecute),
            _ => None,
        }
    }
}

/// One file or directory a host's interpreter needs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuntimeFile {
    pub path: PathBuf,
    pub access: Access,
    pub why: String,
}

#[derive(Debug)]
pub enum ResolveError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    Parse {
        path: PathBuf,
        message: String,
    },
    /// A `DT_NEEDED` name matched no loaded object and was not found in `searched`.
    Missing {
        library: String,
        needed_by: PathBuf,
        searched: Vec<PathBuf>,
        store_only: bool,
    },
    /// A file outside the store, in store mode (`H_STORE_ONLY`).
    OutsideStore {
        path: PathBuf,
        needed_by: Option<PathBuf>,
        store: PathBuf,
    },
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            ResolveError::Parse { path, message } => {
                write!(f, "cannot parse ELF {}: {message}", path.display())
            }
            ResolveError::Missing { library, needed_by, searched, store_only } => {
                let dirs: Vec<String> = searched.iter().map(|dir| dir.display().to_string()).collect();
                write!(
                    f,
                    "{library} (needed by {}) matches no loaded object and is not in [{}]",
                    needed_by.display(),
                    dirs.join(", ")
                )?;
                if *store_only {
                    write!(f, "; H_STORE_ONLY is set, so the host's default library directories are not searched")?;
                }
                Ok(())
            }
            ResolveError::OutsideStore { path, needed_by, store } => {
                write!(f, "{} is outside {}", path.display(), store.display())?;
                if let Some(needed_by) = needed_by {
                    write!(f, " (needed by {})", needed_by.display())?;
                }
                write!(f, ", but H_STORE_ONLY is set")
            }
        }
    }
}

impl std::error::Error for ResolveError {}

/// Fails when `H_STORE_ONLY` is set and a path lies outside the store ([`store_dir`]).
pub fn check_store_only(files: &[RuntimeFile]) -> Result<(), ResolveError> {
    if !store_only_requested() {
        return Ok(());
    }
    let store = store_dir();
    match files.iter().find(|file| !file.path.starts_with(&store)) {
        Some(file) => Err(ResolveError::OutsideStore { path: file.path.clone(), needed_by: None, store }),
        None => Ok(()),
    }
}

/// The Rust source of `RUNTIME_FILES`, as `h_host::HostProfile::runtime_files` takes it.
pub fn render_table(files: &[RuntimeFile]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "// Generated at build time by h-resolve; the host's landlock table.");
    let _ = writeln!(out, "pub const RUNTIME_FILES: &[(&str, h_sandbox::FsAccess, &str)] = &[");
    for file in files {
        let _ = writeln!(
            out,
            "    ({:?}, h_sandbox::FsAccess::{}, {:?}),",
            file.path.to_string_lossy(),
            file.access.variant(),
            file.why
        );
    }
    let _ = writeln!(out, "];");
    out
}

/// The file beside `runtime_files.rs` in a host's `OUT_DIR` that lists the same table for tools
/// (`cargo xtask vm-test` builds the guest from it): one `ACCESS<TAB>PATH<TAB>WHY` line per file.
pub const TABLE_LIST: &str = "runtime_files.tsv";

/// The table as [`TABLE_LIST`] holds it.
pub fn render_list(files: &[RuntimeFile]) -> String {
    files.iter().map(|file| format!("{}\t{}\t{}\n", file.access.variant(), file.path.display(), file.why)).collect()
}

/// Reads what [`render_list`] wrote.
pub fn parse_list(text: &str) -> Result<Vec<RuntimeFile>, String> {
    let mut files = Vec::new();
    for line in text.lines().filter(|line| !line.is_empty()) {
        let mut fields = line.splitn(3, '\t');
        let (Some(access), Some(path), Some(why)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(format!("not ACCESS<TAB>PATH<TAB>WHY: {line:?}"));
        };
        let access = Access::from_variant(access).ok_or_else(|| format!("unknown access {access:?} in {line:?}"))?;
        files.push(RuntimeFile { path: PathBuf::from(path), access, why: why.to_string() });
    }
    Ok(files)
}

/// For a `build.rs`: check, render and write the table to `$OUT_DIR/runtime_files.rs` (and
/// [`TABLE_LIST`] beside it), and make
/// cargo rerun when any listed environment variable or file changes. Panics (failing the build)
/// on an empty table or a store violation: a host is never built without its table.
pub fn write_for_build(files: &[RuntimeFile], env_vars: &[&str]) {
    for var in env_vars.iter().chain(["H_STORE_ONLY", "NIX_STORE"].iter()) {
        println!("cargo:rerun-if-env-changed={var}");
    }
    assert!(!files.is_empty(), "h-resolve: empty runtime table");
    if let Err(error) = check_store_only(files) {
        panic!("h-resolve: {error}");
    }
    let out_dir = std::env::var_os("OUT_DIR").map(PathBuf::from).unwrap_or_else(|| panic!("OUT_DIR is not set"));
    for (name, contents) in [("runtime_files.rs", render_table(files)), (TABLE_LIST, render_list(files))] {
        let target = out_dir.join(name);
        if let Err(error) = std::fs::write(&target, contents) {
            panic!("h-resolve: cannot write {}: {error}", target.display());
        }
    }
}

/// For a host that executes a real interpreter, in its `build.rs`: the interpreter named by the
/// environment variable `env_var` (else `default`), canonical, and its ELF closure as
/// read+execute entries (the interpreter itself described by `itself`, the rest by `closure`).
/// Panics (failing the build) when the interpreter is missing or its closure cannot be resolved.
pub fn executed_interpreter(
    host: &str,
    env_var: &str,
    default: &str,
    itself: &str,
    closure: &str,
) -> (PathBuf, Vec<RuntimeFile>) {
    println!("cargo:rerun-if-env-changed={env_var}");
    let requested = std::env::var_os(env_var)
        .filter(|value| !value.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from);
    let interpreter = match std::fs::canonicalize(&requested) {
        Ok(path) => path,
        Err(error) => panic!("{host}: {} not found ({error}); install it or set {env_var}", requested.display()),
    };
    println!("cargo:rerun-if-changed={}", interpreter.display());
    let paths = match elf_closure(std::slice::from_ref(&interpreter)) {
        Ok(paths) => paths,
        Err(error) => {
            panic!("{host}: cannot resolve the ELF closure of {}: {error}", interpreter.display())
        }
    };
    let files = paths
        .into_iter()
        .map(|path| {
            let why = if path == interpreter { itself } else { closure };
            RuntimeFile { path, access: Access::ReadExecute, why: why.to_string() }
        })
        .collect();
    (interpreter, files)
}

/// The first line `program --version` prints, with an empty environment; panics if it fails.
pub fn version_line(host: &str, program: &Path) -> String {
    std::process::Command::new(program)
        .arg("--version")
        .env_clear()
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.lines().next().map(str::to_string))
        .unwrap_or_else(|| panic!("{host}: {} --version failed", program.display()))
}

/// Writes `contents` to `$OUT_DIR/file_name`; panics (failing the build) if it cannot.
pub fn write_generated(file_name: &str, contents: &str) {
    let out_dir = std::env::var_os("OUT_DIR").map(PathBuf::from).unwrap_or_else(|| panic!("OUT_DIR is not set"));
    let target = out_dir.join(file_name);
    if let Err(error) = std::fs::write(&target, contents) {
        panic!("cannot write {}: {error}", target.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closure_of_bash_has_its_loader_and_libc() {
        let closure = elf_closure_with(&Search::host(), &[PathBuf::from("/usr/bin/bash")]).unwrap();
        assert!(closure.iter().any(|path| path.to_string_lossy().contains("ld-linux")), "{closure:?}");
        assert!(closure.iter().any(|path| path.to_string_lossy().contains("libc.so")), "{closure:?}");
        assert!(closure.iter().all(|path| path.is_absolute()));
    }

    #[test]
    fn the_list_reads_back() {
        let files = vec![
            RuntimeFile {
                path: PathBuf::from("/usr/bin/bash"),
                access: Access::ReadExecute,
                why: "bash itself".into(),
            },
            RuntimeFile { path: PathBuf::from("/usr/lib/python3.11"), access: Access::Read, why: "a\tb".into() },
        ];
        assert_eq!(parse_list(&render_list(&files)).unwrap(), files);
        assert!(parse_list("Write\t/x\ty\n").is_err());
        assert!(parse_list("Read /x\n").is_err());
    }

    #[test]
    fn loaded_objects_name_the_loader_by_its_interpreter_path() {
        let loaded = loaded_objects_with(&Search::host(), &[PathBuf::from("/usr/bin/bash")]).unwrap();
        let interpreter = program_interpreter(Path::new("/usr/bin/bash")).unwrap().unwrap();
        assert!(loaded.iter().any(|object| object.path == Path::new(&interpreter)), "{loaded:?}");
        assert!(loaded.iter().all(|object| object.canonical.is_absolute() && object.canonical.is_file()));
        let me = std::env::current_exe().unwrap();
        assert!(program_interpreter(&me).is_ok());
        assert!(program_interpreter(Path::new("/etc/hostname")).is_err());
    }

    #[test]
    fn store_only_rejects_usr_paths() {
        let files =
            vec![RuntimeFile { path: PathBuf::from("/usr/bin/bash"), access: Access::ReadExecute, why: "x".into() }];
        std::env::set_var("H_STORE_ONLY", "1");
        let result = check_store_only(&files);
        std::env::remove_var("H_STORE_ONLY");
        assert!(matches!(result, Err(ResolveError::OutsideStore { .. })));
    }
}
