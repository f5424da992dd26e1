//! Runs hsh's cases and attacks (each in a fresh process, as root and as an unprivileged user).

fn main() {
    h_testkit::main_for(&h_testkit::Suite {
        host: "hsh",
        binary: env!("CARGO_BIN_EXE_hsh"),
        control: &["bash", "--norc", "--noprofile"],
        manifest_dir: env!("CARGO_MANIFEST_DIR"),
        folders: &["cases", "attacks"],
        vars: &[],
    });
}
