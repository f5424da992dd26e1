//! Runs hsh's cases and attacks (each in a fresh process, as root and as an unprivileged user),
//! with the control interpreter of its host.toml.

fn main() {
    h_testkit::main_for(&h_testkit::Suite {
        binary: env!("CARGO_BIN_EXE_hsh"),
        manifest_dir: env!("CARGO_MANIFEST_DIR"),
        build_values: &[],
    });
}
