//! `elf_closure_with` on real ELF files: programs and libraries compiled with the system's C
//! compiler, then rearranged with `patchelf` into a store-shaped tree (every package in its own
//! directory, glibc's libraries copied without a RUNPATH, as in /nix/store).
//!
//! Needs `cc` and `patchelf` (`cargo xtask test` installs patchelf).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_names)]

use std::path::{Path, PathBuf};
use std::process::Command;

use h_resolve::{elf_closure_with, ResolveError, Search};

/// A fresh directory under the system's temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("h-resolve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir.canonicalize().unwrap())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|error| panic!("cannot start {command:?}: {error} (install it)"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn patchelf(args: &[&str], file: &Path) {
    run(Command::new("patchelf").args(args).arg(file));
}

/// Compiles `source` (C) into `output`; `shared` makes a library with soname `lib` + file name.
fn compile(dir: &Path, source: &str, output: &Path, args: &[&str]) {
    let file = dir.join(format!("{}.c", output.file_name().unwrap().to_string_lossy()));
    std::fs::write(&file, source).unwrap();
    std::fs::create_dir_all(output.parent().unwrap()).unwrap();
    run(Command::new("cc").arg("-o").arg(output).arg(&file).args(args));
}

/// The system's libc and loader (what `cc` links against).
fn system_glibc() -> (PathBuf, PathBuf) {
    let closure = elf_closure_with(&Search::host(), &[PathBuf::from("/bin/sh")]).unwrap();
    let find = |prefix: &str| {
        closure
            .iter()
            .find(|path| path.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {closure:?}"))
            .clone()
    };
    (find("libc.so"), find("ld-linux"))
}

const LOADER: &str = if cfg!(target_arch = "aarch64") { "ld-linux-aarch64.so.1" } else { "ld-linux-x86-64.so.2" };

/// A store: `glibc` (libc and the loader, copied, no RUNPATH), `foo` (libfoo.so, RUNPATH to
/// glibc) and `prog` (bin/prog: interpreter and RUNPATH in the store).
struct Store {
    scratch: Scratch,
    glibc: PathBuf,
    foo: PathBuf,
    prog: PathBuf,
}

fn store(name: &str) -> Store {
    let scratch = Scratch::new(name);
    let root = scratch.0.join("store");
    let glibc = root.join("aaaa-glibc/lib");
    std::fs::create_dir_all(&glibc).unwrap();
    let (libc, loader) = system_glibc();
    std::fs::copy(&libc, glibc.join("libc.so.6")).unwrap();
    std::fs::copy(&loader, glibc.join(LOADER)).unwrap();
    let foo = root.join("bbbb-foo/lib/libfoo.so");
    compile(
        &scratch.0,
        "#include <unistd.h>\nint foo(void) { return getpid() > 0 ? 42 : 0; }\n",
        &foo,
        &["-shared", "-fPIC", "-Wl,-soname,libfoo.so", "-Wl,--no-as-needed", "-lc"],
    );
    patchelf(&["--set-rpath", glibc.to_str().unwrap()], &foo);
    let prog = root.join("cccc-prog/bin/prog");
    compile(
        &scratch.0,
        "#include <stdio.h>\nint foo(void);\nint main(void) { printf(\"%d\\n\", foo()); return 0; }\n",
        &prog,
        &[&format!("-L{}", foo.parent().unwrap().display()), "-lfoo"],
    );
    patchelf(&["--set-interpreter", glibc.join(LOADER).to_str().unwrap()], &prog);
    patchelf(&["--set-rpath", &format!("{}:{}", foo.parent().unwrap().display(), glibc.display())], &prog);
    Store { scratch, glibc, foo, prog }
}

impl Store {
    fn root(&self) -> PathBuf {
        self.scratch.0.join("store")
    }
}

#[test]
fn store_shaped_program_resolves_inside_the_store() {
    let store = store("inside");
    // It is a real program: the loader runs it from the store alone.
    let output = Command::new(&store.prog).env_clear().output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "42\n", "{output:?}");

    let closure = elf_closure_with(&Search::store(store.root()), std::slice::from_ref(&store.prog)).unwrap();
    let expected = vec![store.glibc.join(LOADER), store.glibc.join("libc.so.6"), store.foo.clone(), store.prog.clone()];
    let mut expected: Vec<PathBuf> = expected.into_iter().map(|path| path.canonicalize().unwrap()).collect();
    expected.sort();
    assert_eq!(closure, expected);
}

#[test]
fn needed_loader_is_the_interpreter_already_loaded() {
    // libc.so.6 needs ld-linux without a RUNPATH: only the loaded interpreter can satisfy it.
    // A library loaded without a program (no interpreter) has no other way to find it.
    let store = store("interp");
    let search = Search::store(store.root());
    let with_program = elf_closure_with(&search, &[store.prog.clone(), store.foo.clone()]).unwrap();
    assert!(with_program.contains(&store.glibc.join(LOADER)), "{with_program:?}");
    let error = elf_closure_with(&search, std::slice::from_ref(&store.foo)).unwrap_err();
    match &error {
        ResolveError::Missing { library, store_only, searched, .. } => {
            assert_eq!(library, LOADER);
            assert!(store_only);
            assert!(searched.is_empty(), "{searched:?}");
        }
        other => panic!("expected Missing, got {other}"),
    }
    assert!(error.to_string().contains("default library directories are not searched"), "{error}");
}

#[test]
fn store_mode_never_falls_back_to_the_host() {
    let store = store("fallback");
    // A program of the store that needs a library it has no RUNPATH for.
    let lonely = store.root().join("dddd-lonely/bin/lonely");
    compile(&store.scratch.0, "int main(void) { return 0; }\n", &lonely, &["-Wl,--no-as-needed", "-lm"]);
    patchelf(&["--set-interpreter", store.glibc.join(LOADER).to_str().unwrap()], &lonely);
    patchelf(&["--set-rpath", store.glibc.to_str().unwrap()], &lonely);
    let error = elf_closure_with(&Search::store(store.root()), std::slice::from_ref(&lonely)).unwrap_err();
    assert!(matches!(&error, ResolveError::Missing { library, .. } if library == "libm.so.6"), "{error}");
    // The host's loader finds it in its default directories.
    let host = elf_closure_with(&Search::host(), std::slice::from_ref(&lonely)).unwrap();
    assert!(host.iter().any(|path| path.file_name().is_some_and(|name| name == "libm.so.6")), "{host:?}");
    assert!(host.iter().any(|path| !path.starts_with(store.root())), "{host:?}");

    // A RUNPATH that leads outside the store is refused, naming what needed the file.
    let (system_libc, _) = system_glibc();
    patchelf(&["--set-rpath", system_libc.parent().unwrap().to_str().unwrap()], &lonely);
    let error = elf_closure_with(&Search::store(store.root()), std::slice::from_ref(&lonely)).unwrap_err();
    match &error {
        ResolveError::OutsideStore { needed_by: Some(needed_by), .. } => assert_eq!(needed_by, &lonely),
        other => panic!("expected OutsideStore, got {other}"),
    }
}

#[test]
fn rpath_is_inherited_runpath_is_not() {
    let store = store("rpath");
    let root = store.root();
    // libbar needs libbaz and says nothing about where it is.
    let baz = root.join("eeee-baz/lib/libbaz.so");
    compile(&store.scratch.0, "int baz(void) { return 1; }\n", &baz, &["-shared", "-fPIC", "-Wl,-soname,libbaz.so"]);
    let bar = root.join("ffff-bar/lib/libbar.so");
    compile(
        &store.scratch.0,
        "int baz(void);\nint bar(void) { return baz(); }\n",
        &bar,
        &["-shared", "-fPIC", "-Wl,-soname,libbar.so", &format!("-L{}", baz.parent().unwrap().display()), "-lbaz"],
    );
    patchelf(&["--remove-rpath"], &bar);
    let main = root.join("gggg-main/bin/main");
    compile(
        &store.scratch.0,
        "int bar(void);\nint main(void) { return bar(); }\n",
        &main,
        &[
            &format!("-L{}", bar.parent().unwrap().display()),
            &format!("-Wl,-rpath-link,{}", baz.parent().unwrap().display()),
            "-lbar",
        ],
    );
    patchelf(&["--set-interpreter", store.glibc.join(LOADER).to_str().unwrap()], &main);
    let dirs =
        format!("{}:{}:{}", bar.parent().unwrap().display(), baz.parent().unwrap().display(), store.glibc.display());

    // DT_RPATH of the program serves its libraries' needs too.
    patchelf(&["--force-rpath", "--set-rpath", &dirs], &main);
    let closure = elf_closure_with(&Search::store(&root), std::slice::from_ref(&main)).unwrap();
    assert!(closure.contains(&baz), "{closure:?}");

    // DT_RUNPATH serves only the program's own needs: libbar's libbaz is not found.
    patchelf(&["--remove-rpath"], &main);
    patchelf(&["--set-rpath", &dirs], &main);
    let error = elf_closure_with(&Search::store(&root), std::slice::from_ref(&main)).unwrap_err();
    assert!(matches!(&error, ResolveError::Missing { library, .. } if library == "libbaz.so"), "{error}");

    // $ORIGIN is the directory of the object.
    patchelf(&["--set-rpath", "$ORIGIN/../../eeee-baz/lib"], &bar);
    let closure = elf_closure_with(&Search::store(&root), std::slice::from_ref(&main)).unwrap();
    assert!(closure.contains(&baz), "{closure:?}");
}

#[test]
fn a_file_of_another_machine_is_passed_over() {
    let store = store("machine");
    let root = store.root();
    // A copy of libfoo whose ELF header claims another machine, first on the RUNPATH.
    let foreign = root.join("0000-foreign/lib");
    std::fs::create_dir_all(&foreign).unwrap();
    let mut bytes = std::fs::read(&store.foo).unwrap();
    bytes[18] = bytes[18].wrapping_add(1);
    std::fs::write(foreign.join("libfoo.so"), bytes).unwrap();
    let dirs = format!("{}:{}:{}", foreign.display(), store.foo.parent().unwrap().display(), store.glibc.display());
    patchelf(&["--set-rpath", &dirs], &store.prog);
    let closure = elf_closure_with(&Search::store(&root), std::slice::from_ref(&store.prog)).unwrap();
    assert!(closure.contains(&store.foo), "{closure:?}");
    assert!(!closure.iter().any(|path| path.starts_with(&foreign)), "{closure:?}");
}
