//! `--allow-exec PROGRAM`: a program the script may run, with everything the kernel and the
//! dynamic loader open to run it. Found on the caller's `PATH` (a name) or at a path, resolved
//! at start: the program, its `#!` interpreter if it is a script, and the ELF closure of each
//! (program interpreter and libraries, as the loader finds them). Each file becomes
//! read+execute for landlock, which then refuses to execute anything else.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A granted program and the files that run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantedProgram {
    /// As the user named it.
    pub name: String,
    pub path: PathBuf,
    /// The program's files: itself, its `#!` interpreter, their ELF closures (canonical, sorted).
    pub files: Vec<PathBuf>,
}

fn executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

/// `name` as the caller's shell would find it: a path if it has a slash, else the first
/// executable file of that name on `search_path`.
fn locate(name: &OsStr, search_path: Option<&OsStr>) -> Result<PathBuf, String> {
    let shown = name.to_string_lossy();
    if name.as_encoded_bytes().contains(&b'/') {
        let path = Path::new(name);
        if !executable_file(path) {
            return Err(format!("--allow-exec {shown}: not an executable file"));
        }
        return h_sandbox::canonical(path).map_err(|error| format!("--allow-exec {shown}: {error}"));
    }
    let search_path = search_path.ok_or_else(|| format!("--allow-exec {shown}: PATH is not set"))?;
    std::env::split_paths(search_path)
        .map(|dir| dir.join(name))
        .find(|candidate| executable_file(candidate))
        .ok_or_else(|| format!("--allow-exec {shown}: not found on PATH"))
        .and_then(|path| h_sandbox::canonical(&path).map_err(|error| format!("--allow-exec {shown}: {error}")))
}

/// The interpreter a `#!` line names, if the file starts with one.
fn script_interpreter(path: &Path) -> Option<PathBuf> {
    use std::io::Read as _;
    let mut head = [0u8; 256];
    let read = std::fs::File::open(path).and_then(|mut file| file.read(&mut head)).ok()?;
    let line = head[..read].strip_prefix(b"#!")?;
    let line = line.split(|&byte| byte == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?.trim();
    let interpreter = text.split_whitespace().next()?;
    Some(PathBuf::from(interpreter))
}

/// Resolves `name` into the files that run it.
pub fn resolve(name: &OsStr, search_path: Option<&OsStr>) -> Result<GrantedProgram, String> {
    let shown = name.to_string_lossy().into_owned();
    let path = locate(name, search_path)?;
    let mut objects = Vec::new();
    if let Some(interpreter) = script_interpreter(&path) {
        if !executable_file(&interpreter) {
            return Err(format!(
                "--allow-exec {shown}: its #! interpreter {} is not executable",
                interpreter.display()
            ));
        }
        let interpreter =
            h_sandbox::canonical(&interpreter).map_err(|error| format!("--allow-exec {shown}: {error}"))?;
        objects.push(interpreter);
    } else {
        objects.push(path.clone());
    }
    let search = h_resolve::Search::host();
    let mut files = Vec::new();
    for object in &objects {
        files.extend(
            h_resolve::elf_closure_with(&search, std::slice::from_ref(object))
                .map_err(|error| format!("--allow-exec {shown}: {error}"))?,
        );
    }
    files.push(path.clone());
    files.sort();
    files.dedup();
    Ok(GrantedProgram { name: shown, path, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_found_on_path_with_its_closure() {
        let program = resolve(OsStr::new("sh"), Some(OsStr::new("/usr/bin:/bin"))).unwrap();
        assert!(program.path.is_absolute());
        assert!(program.files.contains(&program.path));
        assert!(program.files.iter().any(|file| file.to_string_lossy().contains("libc.so")), "{program:?}");
        assert!(program.files.iter().any(|file| file.to_string_lossy().contains("ld-linux")), "{program:?}");
    }

    #[test]
    fn a_missing_program_is_one_clear_error() {
        let error = resolve(OsStr::new("no-such-program-h"), Some(OsStr::new("/usr/bin"))).unwrap_err();
        assert_eq!(error, "--allow-exec no-such-program-h: not found on PATH");
        assert!(resolve(OsStr::new("/etc/passwd"), None).unwrap_err().contains("not an executable file"));
    }
}
