//! The store-shaped build: hsh, hnode and hpython built with `H_STORE_ONLY=1` against copies
//! of this machine's bash, node and Python laid out as in /nix/store, while the host's library
//! directories are hidden (a mount namespace, as root).
//!
//! The fake store (`target/nix-check/fake-store`, made once):
//! - `glibc/lib`: the C library's objects, copied unchanged (no RUNPATH, as in nixpkgs);
//! - `libs/lib`: every other library of the three closures, RUNPATH `libs/lib:glibc/lib`;
//! - `bash`, `node`, `python3`: the programs with their interpreter in `glibc/lib` and that
//!   RUNPATH; python3 with its standard library, extension modules and a sysconfig whose
//!   LIBDIR is the store's.
//!
//! The build runs in a mount namespace where `/usr/lib/<triplet>` holds only the program
//! interpreter (every tool names it), `/usr/local/lib` and `/etc/ld.so.cache` are empty; the
//! toolchain finds its own libraries through `LD_LIBRARY_PATH` and a linker `--sysroot` that
//! point at a private view of the real directory. `NIX_STORE` names the fake store, so the
//! resolver's store mode accepts it and nothing else. Each host's `--print-policy` must then
//! name only files inside the fake store (besides the script and the kernel's /dev and /proc).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use h_resolve::{elf_closure_with, Search};

use crate::nixcheck::{output_of, Workspace};

const TRIPLET: &str = if cfg!(target_arch = "aarch64") { "aarch64-linux-gnu" } else { "x86_64-linux-gnu" };
/// The glibc objects (by file name prefix) that go to `glibc/lib` unpatched.
const GLIBC: &[&str] = &[
    "ld-linux",
    "libc.so",
    "libm.so",
    "libpthread.so",
    "libdl.so",
    "librt.so",
    "libutil.so",
    "libresolv.so",
    "libanl.so",
];
const BASH: &str = "/usr/bin/bash";
const NODE: &str = "/usr/bin/node";
const PYTHON: &str = "/usr/bin/python3.11";

pub fn run(work: &Workspace) -> Result<()> {
    if !crate::is_root() {
        println!("nix-check: store-shaped build SKIPPED: hiding the library directories needs a mount namespace (run as root)");
        return Ok(());
    }
    for program in [BASH, NODE, PYTHON] {
        ensure!(Path::new(program).is_file(), "the store-shaped build copies {program}, which is missing");
    }
    let store = work.dir.join("fake-store");
    let stamp = store.join(".complete");
    if !stamp.is_file() {
        make_store(&store)?;
        std::fs::write(&stamp, "")?;
    }
    let binaries = build(work, &store)?;
    for (host, binary) in binaries {
        let script = work.root.join("examples/hello.lua");
        let policy = output_of(Command::new(&binary).arg("--print-policy=json").arg(&script))?;
        let paths = rule_paths(&policy)?;
        let outside = outside_paths(&paths, &store, &script);
        ensure!(outside.is_empty(), "{host} built against the fake store grants paths outside it: {outside:?}");
        let inside = paths.iter().filter(|path| Path::new(path).starts_with(&store)).count();
        ensure!(inside > 1, "{host}: no fake-store path in its policy");
        println!("nix-check: store-shaped {host}: {inside} rules, every one inside the fake store");
    }
    Ok(())
}

/// The paths of the landlock rules of a `--print-policy=json` report.
fn rule_paths(policy: &str) -> Result<Vec<String>> {
    let report: serde_json::Value = serde_json::from_str(policy).context("--print-policy=json is not JSON")?;
    let rules = report["landlock"]["rules"].as_array().context("--print-policy=json has no landlock rules")?;
    Ok(rules.iter().filter_map(|rule| rule["path"].as_str().map(str::to_string)).collect())
}

/// The paths that are neither in `store`, nor the kernel's own (/dev, /proc), nor the script.
fn outside_paths(paths: &[String], store: &Path, script: &Path) -> Vec<String> {
    paths
        .iter()
        .filter(|path| {
            !path.starts_with("/dev/")
                && !path.starts_with("/proc/")
                && !Path::new(path).starts_with(store)
                && Path::new(path) != script
        })
        .cloned()
        .collect()
}

fn patchelf(args: &[&str], file: &Path) -> Result<()> {
    output_of(Command::new("patchelf").args(args).arg(file)).map(drop)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    Ok(())
}

fn make_store(store: &Path) -> Result<()> {
    if store.exists() {
        std::fs::remove_dir_all(store)?;
    }
    let (glibc, libs) = (store.join("glibc/lib"), store.join("libs/lib"));
    std::fs::create_dir_all(&glibc)?;
    std::fs::create_dir_all(&libs)?;
    let runpath = format!("{}:{}", libs.display(), glibc.display());
    let python_lib = Path::new("/usr/lib/python3.11");
    let libpython = PathBuf::from(format!("/usr/lib/{TRIPLET}/libpython3.11.so.1.0"));
    let mut roots = vec![PathBuf::from(BASH), PathBuf::from(NODE), PathBuf::from(PYTHON), libpython.clone()];
    for entry in std::fs::read_dir(python_lib.join("lib-dynload"))? {
        roots.push(entry?.path());
    }
    // Every library of the three closures, by the name the loader asks for (its file name).
    let mut loader = PathBuf::new();
    for root in &roots {
        for library in elf_closure_with(&Search::host(), std::slice::from_ref(root))? {
            if roots.contains(&library) || library.starts_with(python_lib) {
                continue;
            }
            let name = library.file_name().context("a library without a name")?.to_string_lossy().into_owned();
            let is_glibc = GLIBC.iter().any(|prefix| name.starts_with(prefix));
            let target = if is_glibc { glibc.join(&name) } else { libs.join(&name) };
            if name.starts_with("ld-linux") {
                loader = target.clone();
            }
            if !target.exists() {
                copy(&library, &target)?;
                if !is_glibc {
                    patchelf(&["--set-rpath", &runpath], &target)?;
                }
            }
        }
    }
    // Sonames that differ from the file names (libtinfo.so.6 -> libtinfo.so.6.4).
    for dir in [&glibc, &libs] {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let soname = output_of(Command::new("patchelf").arg("--print-soname").arg(&path)).unwrap_or_default();
            let soname = soname.trim();
            if !soname.is_empty() && !dir.join(soname).exists() {
                std::os::unix::fs::symlink(path.file_name().context("name")?, dir.join(soname))?;
            }
        }
    }
    ensure!(loader.is_file(), "no program interpreter in the closures");
    let loader = loader.to_string_lossy().into_owned();
    for (program, target) in [
        (BASH, store.join("bash/bin/bash")),
        (NODE, store.join("node/bin/node")),
        (PYTHON, store.join("python3/bin/python3.11")),
    ] {
        copy(Path::new(program), &target)?;
        patchelf(&["--set-interpreter", &loader, "--set-rpath", &runpath], &target)?;
    }
    // Python: libpython, the standard library with its extension modules, and a sysconfig whose
    // LIBDIR is the store's (pyo3 links the libpython it names; h-resolve lists it).
    let python = store.join("python3");
    let store_libpython = python.join("lib/libpython3.11.so.1.0");
    copy(&libpython, &store_libpython)?;
    patchelf(&["--set-rpath", &runpath], &store_libpython)?;
    std::os::unix::fs::symlink("libpython3.11.so.1.0", python.join("lib/libpython3.11.so"))?;
    output_of(
        Command::new("cp").args(["-a", "--no-preserve=ownership"]).arg(python_lib).arg(python.join("lib/python3.11")),
    )?;
    for entry in std::fs::read_dir(python.join("lib/python3.11/lib-dynload"))? {
        patchelf(&["--set-rpath", &runpath], &entry?.path())?;
    }
    let sysconfig = python.join(format!("lib/python3.11/_sysconfigdata__{TRIPLET}.py"));
    let text = std::fs::read_to_string(&sysconfig)?;
    std::fs::write(&sysconfig, text.replace(&format!("/usr/lib/{TRIPLET}"), &python.join("lib").to_string_lossy()))?;
    Ok(())
}

/// Builds the three hosts against the fake store in a namespace without the host's library
/// directories; returns (host, binary).
fn build(work: &Workspace, store: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
    let target = work.dir.join("fake-store-target");
    let view = "/run/h-nix-check-sysroot";
    let multiarch = format!("/usr/lib/{TRIPLET}");
    let loader = if cfg!(target_arch = "aarch64") { "ld-linux-aarch64.so.1" } else { "ld-linux-x86-64.so.2" };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let script = format!(
        r#"set -eu
export LD_LIBRARY_PATH={view}{multiarch}
mount --make-rprivate /
mkdir -p {view}
mount -t tmpfs h-nix-check {view}
mkdir -p {view}{multiarch} {view}/usr/lib64 {view}/hide
mount --bind {multiarch} {view}{multiarch}
[ -d /usr/lib64 ] && mount --bind /usr/lib64 {view}/usr/lib64
ln -s usr/lib {view}/lib
ln -s usr/lib64 {view}/lib64
touch {view}/hide/{loader}
mount --bind {view}{multiarch}/{loader} {view}/hide/{loader}
mount --rbind {view}/hide {multiarch}
[ -d /usr/local/lib ] && mount -t tmpfs h-nix-check /usr/local/lib
mount --bind /dev/null /etc/ld.so.cache
if ls {multiarch} | grep -qv '^{loader}$'; then echo "library directory still visible" >&2; exit 1; fi
export RUSTFLAGS="-C link-arg=--sysroot={view}"
exec "$@"
"#
    );
    let script_path = work.dir.join("fake-store-build.sh");
    std::fs::write(&script_path, script)?;
    let hosts = ["hsh", "hnode", "hpython"];
    let mut command = Command::new("unshare");
    command.args(["-m", "sh"]).arg(&script_path).arg(&cargo).args(["build", "--quiet"]);
    for host in hosts {
        command.args(["-p", host]);
    }
    command
        .current_dir(&work.root)
        .env("CARGO_TARGET_DIR", &target)
        .env("H_STORE_ONLY", "1")
        .env("NIX_STORE", store)
        .env("H_BASH", store.join("bash/bin/bash"))
        .env("H_NODE", store.join("node/bin/node"))
        .env("H_PYTHON", store.join("python3/bin/python3.11"))
        .env("PYO3_PYTHON", store.join("python3/bin/python3.11"));
    crate::nixcheck::run_command(&mut command).context("building hsh, hnode and hpython against the fake store")?;
    Ok(hosts.into_iter().map(|host| (host, target.join("debug").join(host))).collect())
}
