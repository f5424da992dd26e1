//! Runs hpython's cases and attacks (each in a fresh process, as root and as an unprivileged
//! user), with the control interpreter of its host.toml: the interpreter hpython is built against,
//! whose path and libpython file name the build script gives.

fn main() {
    h_testkit::main_for(&h_testkit::Suite {
        binary: env!("CARGO_BIN_EXE_hpython"),
        manifest_dir: env!("CARGO_MANIFEST_DIR"),
        build_values: &[("H_PYTHON_EXECUTABLE", env!("H_PYTHON_EXECUTABLE")), ("H_LIBPYTHON", env!("H_LIBPYTHON"))],
    });
}
