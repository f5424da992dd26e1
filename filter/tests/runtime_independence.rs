//! The compiler stays out of the runtime: no crate the hosts ship (h-sandbox, hosts/*) depends,
//! as a normal or build dependency at any depth, on h-filter or on what only the compiler needs
//! (serde, toml, the syscalls tables). Asked of `cargo tree -e normal,build`, one shipped crate at
//! a time, as each is built (`cargo metadata`'s resolve would also list optional dependencies
//! that a weak feature like `serde_core?/std` names but nothing enables).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Crate names no runtime crate may pull in.
fn compiler_only(name: &str) -> bool {
    name == "h-filter" || name.starts_with("serde") || name.starts_with("toml") || name == "syscalls"
}

fn cargo(root: &Path) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    command.current_dir(root).arg("--offline");
    command
}

/// The command's standard output, or what went wrong.
fn stdout_of(command: &mut Command) -> Result<String, String> {
    let output = command.output().map_err(|error| format!("{command:?}: {error}"))?;
    if !output.status.success() {
        return Err(format!("{command:?}: {}", String::from_utf8_lossy(&output.stderr)));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn runtime_crates_do_not_depend_on_the_compiler() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root");
    let metadata = stdout_of(cargo(root).args(["metadata", "--no-deps", "--format-version", "1"])).unwrap();
    let metadata: Value = serde_json::from_str(&metadata).expect("cargo metadata's JSON");
    let shipped_dirs = [root.join("sandbox"), root.join("hosts")];
    let runtime: Vec<String> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|package| {
            let manifest = Path::new(package["manifest_path"].as_str().unwrap_or_default());
            shipped_dirs.iter().any(|dir| manifest.starts_with(dir))
        })
        .filter_map(|package| package["name"].as_str().map(str::to_string))
        .collect();
    let mut expected = vec!["h-sandbox".to_string(), "h-host".to_string()];
    for entry in std::fs::read_dir(root.join("hosts")).expect("hosts/") {
        let dir = entry.expect("an entry of hosts/").path();
        if dir.join("host.toml").is_file() {
            expected.push(dir.file_name().expect("a name").to_string_lossy().into_owned());
        }
    }
    assert!(expected.len() > 2, "no host crate with a host.toml");
    for expected in &expected {
        assert!(runtime.iter().any(|name| name == expected), "{expected} is not among the runtime crates {runtime:?}");
    }
    for package in &runtime {
        let tree = stdout_of(
            cargo(root)
                .args(["tree", "-e", "normal,build", "--target", "all", "--prefix", "none"])
                .args(["--format", "{p}", "-p", package]),
        )
        .unwrap();
        let mut forbidden: Vec<&str> =
            tree.lines().filter_map(|line| line.split_whitespace().next()).filter(|name| compiler_only(name)).collect();
        forbidden.dedup();
        assert!(forbidden.is_empty(), "{package} depends on {forbidden:?}");
        assert!(tree.lines().count() > 1, "{package}: cargo tree listed nothing");
    }
}
