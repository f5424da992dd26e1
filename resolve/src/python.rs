//! What an embedded CPython reads at run time, asked of the Python executable itself.
//!
//! The executable (`H_PYTHON`, e.g. `/usr/bin/python3.11` or a `/nix/store` path) is run once
//! with `-I -S` and prints its own layout: prefix, stdlib, lib-dynload, libpython and the
//! OpenSSL directory. Nothing under `/usr` is assumed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{elf_closure_with, Access, ResolveError, RuntimeFile, Search};

/// The layout of one Python installation, as its executable reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PythonLayout {
    /// The executable that was asked (as given).
    pub executable: PathBuf,
    /// `sys.prefix`: the `home` an embedding host gives getpath so that it searches nothing.
    pub prefix: PathBuf,
    /// `major.minor`, e.g. `3.11`.
    pub version: String,
    /// The pure-Python standard library (`sysconfig.get_path("stdlib")`).
    pub stdlib: PathBuf,
    /// The extension modules (`lib-dynload`).
    pub lib_dynload: PathBuf,
    /// The shared libpython (`LIBDIR/INSTSONAME`).
    pub libpython: PathBuf,
    /// The directory of libpython, for the host's rpath.
    pub libdir: PathBuf,
    /// OpenSSL's configuration file, read when `ssl` or `hashlib` loads libcrypto (if present).
    pub openssl_cnf: Option<PathBuf>,
    /// The static libpython built like the interpreter itself (`LIBPL/LIBRARY`), if installed.
    pub static_library: Option<PathBuf>,
    /// The libraries a static libpython needs (`-l` names of MODLIBS, LIBS and SYSLIBS).
    pub static_link_libraries: Vec<String>,
}

/// How a host links libpython.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linking {
    /// `libpython*.so`, loaded at start and listed in the runtime table.
    Shared,
    /// The static archive, linked into the host (whole), whose symbols it exports to extension
    /// modules: libpython is then no file the host reads.
    Static,
}

/// Printed by the executable, one `key=value` per line (paths never contain newlines here).
const PROBE: &str = r#"
import os, sys, sysconfig
print("prefix=" + sys.prefix)
print("version=%d.%d" % sys.version_info[:2])
print("stdlib=" + sysconfig.get_path("stdlib"))
dynload = [p for p in sys.path if os.path.basename(p) == "lib-dynload"]
print("lib_dynload=" + (dynload[0] if dynload else sysconfig.get_config_var("DESTSHARED") or ""))
print("libdir=" + (sysconfig.get_config_var("LIBDIR") or ""))
print("instsoname=" + (sysconfig.get_config_var("INSTSONAME") or ""))
print("static_library=" + os.path.join(sysconfig.get_config_var("LIBPL") or "", sysconfig.get_config_var("LIBRARY") or ""))
print("static_link=" + " ".join(sysconfig.get_config_var(name) or "" for name in ("MODLIBS", "LIBS", "SYSLIBS")))
try:
    import ssl
    capath = ssl.get_default_verify_paths().openssl_capath
    print("openssl_cnf=" + os.path.join(os.path.dirname(capath), "openssl.cnf"))
except Exception:
    print("openssl_cnf=")
"#;

fn probe_error(python: &Path, message: String) -> ResolveError {
    ResolveError::Parse { path: python.to_path_buf(), message }
}

/// Runs `python -I -S -c PROBE` and reads the layout it prints.
pub fn layout(python: &Path) -> Result<PythonLayout, ResolveError> {
    let output = Command::new(python)
        .args(["-I", "-S", "-c", PROBE])
        .env_clear()
        .output()
        .map_err(|source| ResolveError::Read { path: python.to_path_buf(), source })?;
    if !output.status.success() {
        return Err(probe_error(
            python,
            format!(
                "probing the layout failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let field = |key: &str| -> Result<String, ResolveError> {
        text.lines()
            .find_map(|line| line.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
            .map(str::to_string)
            .ok_or_else(|| probe_error(python, format!("the layout probe printed no {key}")))
    };
    let required = |key: &str| -> Result<PathBuf, ResolveError> {
        let value = field(key)?;
        if value.is_empty() {
            return Err(probe_error(python, format!("the interpreter reports no {key}")));
        }
        Ok(PathBuf::from(value))
    };
    let libdir = required("libdir")?;
    let instsoname = field("instsoname")?;
    if instsoname.is_empty() || !instsoname.starts_with("libpython") {
        return Err(probe_error(
            python,
            "the interpreter was not built with a shared libpython (--enable-shared)".into(),
        ));
    }
    let openssl_cnf =
        Some(PathBuf::from(field("openssl_cnf")?)).filter(|path| !path.as_os_str().is_empty() && path.is_file());
    let static_library = Some(PathBuf::from(field("static_library")?))
        .filter(|path| path.extension().is_some_and(|ext| ext == "a") && path.is_file());
    let mut static_link_libraries: Vec<String> = Vec::new();
    for name in field("static_link")?.split_whitespace().filter_map(|flag| flag.strip_prefix("-l")) {
        if !static_link_libraries.iter().any(|known| known == name) {
            static_link_libraries.push(name.to_string());
        }
    }
    Ok(PythonLayout {
        static_library,
        static_link_libraries,
        executable: python.to_path_buf(),
        prefix: required("prefix")?,
        version: field("version")?,
        stdlib: required("stdlib")?,
        lib_dynload: required("lib_dynload")?,
        libpython: libdir.join(instsoname),
        libdir,
        openssl_cnf,
    })
}

fn canonical(path: &Path) -> Result<PathBuf, ResolveError> {
    std::fs::canonicalize(path).map_err(|source| ResolveError::Read { path: path.to_path_buf(), source })
}

/// The extension modules of `lib-dynload` (every `*.so`), sorted.
fn extension_modules(dir: &Path) -> Result<Vec<PathBuf>, ResolveError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ResolveError::Read { path: dir.to_path_buf(), source })?;
    let mut modules = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ResolveError::Read { path: dir.to_path_buf(), source })?;
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "so") && path.is_file() {
            modules.push(path);
        }
    }
    modules.sort();
    Ok(modules)
}

/// The runtime table of an embedded CPython: the stdlib and lib-dynload directories, libpython,
/// the ELF closure of libpython and of every extension module, and OpenSSL's configuration.
/// Every path is canonical; a file inside an already listed directory is not listed again.
/// Store mode when `H_STORE_ONLY` is set ([`Search::from_env`]).
pub fn runtime_files(layout: &PythonLayout, linking: Linking) -> Result<Vec<RuntimeFile>, ResolveError> {
    runtime_files_with(layout, linking, &Search::from_env())
}

/// [`runtime_files`] under `search`. The libraries are resolved in the namespace of the Python
/// executable (its program interpreter is the one already loaded, as in the host), which is
/// itself not listed. In store mode an OpenSSL configuration outside the store is left out:
/// it is the file of another system, which the interpreter does not find where it runs.
pub fn runtime_files_with(
    layout: &PythonLayout,
    linking: Linking,
    search: &Search,
) -> Result<Vec<RuntimeFile>, ResolveError> {
    let mut files: Vec<RuntimeFile> = Vec::new();
    let stdlib = canonical(&layout.stdlib)?;
    let dynload = canonical(&layout.lib_dynload)?;
    let stdlib_why = if dynload.starts_with(&stdlib) {
        "the Python standard library, with its extension modules (lib-dynload)"
    } else {
        "the Python standard library"
    };
    files.push(RuntimeFile { path: stdlib.clone(), access: Access::Read, why: stdlib_why.into() });
    if !dynload.starts_with(&stdlib) {
        files.push(RuntimeFile {
            path: dynload.clone(),
            access: Access::Read,
            why: "the standard library's extension modules (lib-dynload)".into(),
        });
    }
    let executable = canonical(&layout.executable)?;
    let mut objects = vec![executable.clone(), layout.libpython.clone()];
    objects.extend(extension_modules(&layout.lib_dynload)?);
    let libpython = canonical(&layout.libpython)?;
    for library in elf_closure_with(search, &objects)? {
        if library == executable || library.starts_with(&stdlib) || library.starts_with(&dynload) {
            continue;
        }
        if library == libpython && linking == Linking::Static {
            continue;
        }
        let why = if library == libpython {
            "libpython, the interpreter itself".to_string()
        } else {
            "a shared library of libpython or of an extension module (ELF closure)".to_string()
        };
        files.push(RuntimeFile { path: library, access: Access::Read, why });
    }
    let cnf = layout.openssl_cnf.as_deref().map(canonical).transpose()?;
    if let Some(cnf) = cnf.filter(|cnf| search.store.as_ref().is_none_or(|store| cnf.starts_with(store))) {
        files.push(RuntimeFile {
            path: cnf,
            access: Access::Read,
            why: "OpenSSL's configuration, read when ssl or hashlib loads libcrypto".into(),
        });
    }
    files.sort();
    files.dedup_by(|a, b| a.path == b.path);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSTEM_PYTHON: &str = "/usr/bin/python3.11";

    #[test]
    fn system_python_layout_and_table() {
        if !Path::new(SYSTEM_PYTHON).exists() {
            return;
        }
        let layout = layout(Path::new(SYSTEM_PYTHON)).unwrap();
        assert_eq!(layout.version, "3.11");
        assert!(layout.stdlib.join("os.py").is_file(), "{layout:?}");
        let files = runtime_files_with(&layout, Linking::Shared, &Search::host()).unwrap();
        let has = |needle: &str| files.iter().any(|file| file.path.to_string_lossy().contains(needle));
        assert!(has("libpython3.11"), "{files:?}");
        assert!(has("libc.so"), "{files:?}");
        assert!(has("libffi"), "{files:?}");
        assert!(files.iter().all(|file| file.path.is_absolute() && file.path.exists()));
        // Linked statically, libpython is no file the host reads; the rest stays.
        let static_files = runtime_files_with(&layout, Linking::Static, &Search::host()).unwrap();
        assert!(!static_files.iter().any(|file| file.path.to_string_lossy().contains("libpython3.11")));
        assert!(static_files.iter().any(|file| file.path.to_string_lossy().contains("libffi")));
        if let Some(archive) = &layout.static_library {
            assert!(archive.is_file() && layout.static_link_libraries.iter().any(|name| name == "m"), "{layout:?}");
        }
    }
}
