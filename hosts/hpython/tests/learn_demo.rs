//! The `--learn` demo (`examples/learn/demo.sh`) runs as its README says: the script fails
//! under hpython, the learning rounds find the log, `grep` and the collector, and the command
//! line the last round printed sends the summary. Run in a fresh process, with the hpython this
//! test was built with.

use std::process::Command;

#[test]
fn the_learn_demo_ends_with_the_summary_sent() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/learn/demo.sh");
    let output =
        Command::new("sh").arg(demo).env("HPYTHON", env!("CARGO_BIN_EXE_hpython")).output().expect("sh runs the demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}\n{stdout}\n{stderr}", output.status);
    let expected = [
        "summary failed: [Errno 13] Permission denied: 'app.log'",
        "hpython:   --allow-read ",
        "hpython:   --allow-exec grep",
        "hpython:   --allow-connect localhost:",
        "hpython: learned: nothing was refused",
        "sent: 2 errors in 4 lines",
    ];
    let mut rest = stdout.as_ref();
    for line in expected {
        let found = rest.find(line).unwrap_or_else(|| panic!("{line:?} missing or out of order in:\n{stdout}"));
        rest = &rest[found + line.len()..];
    }
    assert!(stderr.contains("collector received: app.log: 2 errors in 4 lines"), "{stderr}");
}
