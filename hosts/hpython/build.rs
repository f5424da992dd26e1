//! Resolves, from the Python executable itself, every file the embedded CPython reads at run
//! time, and writes the landlock table (`$OUT_DIR/runtime_files.rs`) and the layout constants
//! (`$OUT_DIR/python_layout.rs`) the host compiles in. A build without them fails.
//!
//! The interpreter is `H_PYTHON`, else `PYO3_PYTHON` (the one pyo3 links against), else
//! `/usr/bin/python3.11`; `.cargo/config.toml` sets `PYO3_PYTHON` to the same default.

use std::path::{Path, PathBuf};

use h_resolve::python::{layout, runtime_files, Linking, PythonLayout};
use h_resolve::{Access, RuntimeFile};

const DEFAULT_PYTHON: &str = "/usr/bin/python3.11";

/// Links libpython statically when the installation has the archive it builds its own
/// interpreter from (Debian's `libpython3.11.a`: not position-independent, so the host is linked
/// without PIE, as Debian's `python3.11` is), else the shared library. `H_PYTHON_LINK=shared` or
/// `static` decides instead. Statically, the host exports libpython's symbols to the extension
/// modules of lib-dynload, which do not link libpython themselves.
fn link_libpython(layout: &PythonLayout) -> Linking {
    println!("cargo:rerun-if-env-changed=H_PYTHON_LINK");
    let wanted = std::env::var("H_PYTHON_LINK").unwrap_or_default();
    // A store build links only what is in the store.
    let store = h_resolve::store_only_requested().then(h_resolve::store_dir);
    let in_store = |path: &&PathBuf| store.as_ref().is_none_or(|store| path.starts_with(store));
    let available = layout.static_library.as_ref().filter(in_store);
    let archive = match (wanted.as_str(), available) {
        ("shared", _) | ("", None) => {
            println!("cargo:rustc-env=H_PYTHON_LINKING=shared");
            return Linking::Shared;
        }
        ("static" | "", Some(archive)) => archive.clone(),
        ("static", None) => panic!("hpython: H_PYTHON_LINK=static, but the interpreter has no static libpython"),
        (other, _) => panic!("hpython: H_PYTHON_LINK={other:?}: expected shared or static"),
    };
    println!("cargo:rerun-if-changed={}", archive.display());
    let position_independent = archive.file_name().is_some_and(|name| name.to_string_lossy().contains("-pic"));
    if !position_independent {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rustc-link-arg-bins=-Wl,--whole-archive");
    println!("cargo:rustc-link-arg-bins={}", archive.display());
    println!("cargo:rustc-link-arg-bins=-Wl,--no-whole-archive");
    println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic");
    for library in &layout.static_link_libraries {
        println!("cargo:rustc-link-arg-bins=-l{library}");
    }
    println!("cargo:rustc-env=H_PYTHON_LINKING=static");
    Linking::Static
}

/// Where libpython is linked in, links the unwinder in too (gcc's `libgcc_eh.a`): otherwise the
/// loader maps libgcc_s.so.1 at every start only for Rust's unwinder, and runs its constructor,
/// a `cpuid` probe that traps to the hypervisor on a virtual machine (about 0.14 ms a start).
/// Rust's standard library asks for `-lgcc_s`; a linker script of that name in a directory
/// searched first names the archive instead. glibc still loads libgcc_s.so.1 itself, by its
/// name through ld.so.cache, when a thread ends through `pthread_exit` (every CPython thread
/// does) or is cancelled: the returned file is the grant for that. Store builds and a shared
/// libpython keep the shared unwinder (nothing to grant: it is loaded before the sandbox).
fn link_unwinder(linking: Linking, store_only: bool, out_dir: &Path) -> Option<RuntimeFile> {
    if linking != Linking::Static || store_only {
        return None;
    }
    println!("cargo:rerun-if-env-changed=CC");
    let compiler = std::env::var("CC").ok().filter(|value| !value.is_empty()).unwrap_or_else(|| "cc".into());
    let output = std::process::Command::new(&compiler).arg("-print-file-name=libgcc_eh.a").output().ok()?;
    let archive = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    // gcc prints the bare name back when it has no such file.
    if !output.status.success() || !archive.is_absolute() || !archive.is_file() {
        return None;
    }
    let shared = h_resolve::default_library_dirs()
        .into_iter()
        .map(|dir| dir.join("libgcc_s.so.1"))
        .find(|path| path.is_file())
        .and_then(|path| path.canonicalize().ok())?;
    let dir = out_dir.join("static-unwinder");
    let script = format!("/* -lgcc_s: the unwinder linked in (hpython's build.rs) */\nINPUT({})\n", archive.display());
    if let Err(error) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join("libgcc_s.so"), script)) {
        panic!("hpython: cannot write {}: {error}", dir.display());
    }
    println!("cargo:rerun-if-changed={}", archive.display());
    println!("cargo:rustc-link-search=native={}", dir.display());
    Some(RuntimeFile {
        path: shared,
        access: Access::Read,
        why: "the unwinder glibc loads when a thread ends by pthread_exit (the host links its own)".into(),
    })
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    let python = std::env::var_os("H_PYTHON")
        .filter(|value| !value.is_empty())
        .or_else(|| std::env::var_os("PYO3_PYTHON").filter(|value| !value.is_empty()))
        .map_or_else(|| PathBuf::from(DEFAULT_PYTHON), PathBuf::from);
    let layout = match layout(&python) {
        Ok(layout) => layout,
        Err(error) => {
            panic!("hpython: cannot resolve the Python runtime of {}: {error}", python.display())
        }
    };
    let linking = link_libpython(&layout);
    let mut files = match runtime_files(&layout, linking) {
        Ok(files) => files,
        Err(error) => {
            panic!("hpython: cannot resolve the Python runtime of {}: {error}", python.display())
        }
    };
    let store_only = h_resolve::store_only_requested();
    let cache = Path::new("/etc/ld.so.cache");
    if !store_only && cache.is_file() {
        // Saves the loader a walk of every default directory on each extension-module import.
        files.push(RuntimeFile {
            path: cache.to_path_buf(),
            access: Access::Read,
            why: "the dynamic loader's cache (dlopen of extension modules)".into(),
        });
    }
    let out_dir = std::env::var_os("OUT_DIR").map(PathBuf::from).unwrap_or_else(|| panic!("OUT_DIR is not set"));
    files.extend(link_unwinder(linking, store_only, &out_dir));
    h_resolve::write_for_build(&files, &["H_PYTHON"]);

    let search = [layout.stdlib.clone(), layout.lib_dynload.clone()];
    let constants = format!(
        "// Generated by hpython's build.rs from {python:?}.\n\
         pub const PYTHON_EXECUTABLE: &str = {executable:?};\n\
         pub const PYTHON_PREFIX: &str = {prefix:?};\n\
         pub const PYTHON_VERSION: &str = {version:?};\n\
         pub const MODULE_SEARCH_PATHS: &[&str] = &{search:?};\n",
        python = python.display().to_string(),
        executable = layout.executable.display().to_string(),
        prefix = layout.prefix.display().to_string(),
        version = layout.version,
        search = search.iter().map(|path| path.display().to_string()).collect::<Vec<_>>(),
    );
    let target = out_dir.join("python_layout.rs");
    if let Err(error) = std::fs::write(&target, constants) {
        panic!("hpython: cannot write {}: {error}", target.display());
    }
    // For the case harness (tests/cases.rs): the bare interpreter of the control runs, and the
    // libpython file name the print-policy case expects (no version is written in a case).
    println!("cargo:rustc-env=H_PYTHON_EXECUTABLE={}", layout.executable.display());
    // What --print-policy names for libpython: the shared library in the runtime table, or the
    // archive linked in (the interpreter line).
    let libpython_name = match linking {
        Linking::Shared => layout.libpython.file_name(),
        Linking::Static => layout.static_library.as_deref().and_then(Path::file_name),
    };
    println!("cargo:rustc-env=H_LIBPYTHON={}", libpython_name.map(|name| name.to_string_lossy()).unwrap_or_default());
    // Load exactly the libpython that was resolved, even where the loader's default search
    // would find another one first (pyenv, a Nix store path). Linked in, libpython is no file to
    // load, and a RUNPATH would only send the loader through its hardware-capability
    // subdirectories (about 40 failed lookups at every start) instead of ld.so.cache.
    if let Linking::Shared = linking {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{}", layout.libdir.display());
    }
    for path in [&layout.libpython, &layout.stdlib, &layout.lib_dynload] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
