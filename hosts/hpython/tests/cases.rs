//! Runs hpython's cases and attacks (each in a fresh process, as root and as an unprivileged user).
//! Control runs use the bare interpreter hpython is built against, isolated and without site.

fn main() {
    h_testkit::main_for(&h_testkit::Suite {
        host: "hpython",
        binary: env!("CARGO_BIN_EXE_hpython"),
        control: &["/usr/bin/python3.11", "-I", "-S"],
        manifest_dir: env!("CARGO_MANIFEST_DIR"),
        folders: &["cases", "attacks"],
    });
}
