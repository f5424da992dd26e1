//! Runs hlua's cases and attacks (each in a fresh process, as root and as an unprivileged user),
//! with the control interpreter of its host.toml, and the call that starts a process under the C
//! library it is built with (build.rs).

fn main() {
    h_testkit::main_for(&h_testkit::Suite {
        binary: env!("CARGO_BIN_EXE_hlua"),
        manifest_dir: env!("CARGO_MANIFEST_DIR"),
        build_values: &[("H_SPAWN_FIRST_CALL", env!("H_SPAWN_FIRST_CALL"))],
    });
}
