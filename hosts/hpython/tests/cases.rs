//! Runs hpython's cases and attacks (each in a fresh process, as root and as an unprivileged user).
//! Control runs use the bare interpreter hpython is built against (its path comes from the
//! build script), isolated and without site; `$LIBPYTHON` in a case is that interpreter's
//! libpython file name.

fn main() {
    h_testkit::main_for(&h_testkit::Suite {
        host: "hpython",
        binary: env!("CARGO_BIN_EXE_hpython"),
        control: &[env!("H_PYTHON_EXECUTABLE"), "-I", "-S"],
        manifest_dir: env!("CARGO_MANIFEST_DIR"),
        folders: &["cases", "attacks"],
        vars: &[("$LIBPYTHON", env!("H_LIBPYTHON"))],
    });
}
