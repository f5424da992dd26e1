//! Started with its stdout closed, hsh puts /dev/null there before it opens anything (as Rust's
//! runtime would have, which the hosts start without): the run works, its output goes nowhere,
//! and no descriptor the sandbox opens is taken for the caller's stdout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn a_closed_stdout_becomes_dev_null() {
    let directory = std::env::temp_dir().join(format!("hsh-closed-stdout-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let script = directory.join("main.sh");
    std::fs::write(&script, "echo to-stdout\necho done >&2\n").unwrap();
    // The shell closes descriptor 1, then execs hsh in its place.
    let output = Command::new("/bin/sh")
        .args(["-c", "exec \"$0\" \"$1\" >&-"])
        .arg(env!("CARGO_BIN_EXE_hsh"))
        .arg(&script)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&directory).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(stderr, "done\n");
}
