//! Runs hlua's cases and attacks (each in a fresh process, as root and as an unprivileged user).

fn main() {
    h_testkit::main_for(&h_testkit::Suite {
        host: "hlua",
        binary: env!("CARGO_BIN_EXE_hlua"),
        control: &["lua5.4"],
        manifest_dir: env!("CARGO_MANIFEST_DIR"),
        folders: &["cases", "attacks"],
        vars: &[],
    });
}
