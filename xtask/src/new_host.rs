//! A new host is its own files: its crate with `host.toml`, its filter and its cases. The test
//! here adds a sixth host to a copy of the repository, editing no existing file, and asks every
//! registry of the build whether it knows the host: the workspace, the filter compiler, the
//! case harness's manifests, `cargo xtask bench` and `vm-test`, and the Nix flake's host list.
//! `docs/adding-a-host.md` walks through the same files.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn output(command: &mut Command) -> String {
        let output = command.output().unwrap_or_else(|error| panic!("{command:?}: {error}"));
        assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The repository's committed files, copied to `to`.
    fn copy_repository(root: &Path, to: &Path) {
        let listing = output(Command::new("git").arg("-C").arg(root).args(["ls-files", "-z"]));
        for file in listing.split('\0').filter(|file| !file.is_empty()) {
            let from = root.join(file);
            if !from.is_file() {
                continue;
            }
            let target = to.join(file);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(&from, &target).unwrap();
        }
    }

    /// Copies `from` to `to` (a tree), replacing `old` by `new` in every file's text.
    fn copy_renamed(from: &Path, to: &Path, old: &str, new: &str) {
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                std::fs::create_dir_all(&target).unwrap();
                copy_renamed(&path, &target, old, new);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                match String::from_utf8(bytes.clone()) {
                    Ok(text) => std::fs::write(&target, text.replace(old, new)).unwrap(),
                    Err(_) => std::fs::write(&target, bytes).unwrap(),
                }
            }
        }
    }

    /// Every file of `dir`, with its content.
    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(next) = stack.pop() {
            for entry in std::fs::read_dir(&next).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.push((path.clone(), std::fs::read(&path).unwrap()));
                }
            }
        }
        files.sort();
        files
    }

    #[test]
    fn a_new_host_needs_no_existing_file_edited() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let copy = std::env::temp_dir().join(format!("h-new-host-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&copy);
        copy_repository(root, &copy);
        let before = snapshot(&copy);

        // The sixth host: hsh's crate, manifest, filter and cases under a new name.
        let crate_dir = copy.join("hosts/hecho");
        std::fs::create_dir_all(&crate_dir).unwrap();
        copy_renamed(&copy.join("hosts/hsh"), &crate_dir, "hsh", "hecho");
        std::fs::copy(copy.join("filters/hsh.toml"), copy.join("filters/hecho.toml")).unwrap();

        let after = snapshot(&copy);
        let edited: Vec<&PathBuf> = before
            .iter()
            .filter(|(path, content)| after.iter().any(|(other, new)| other == path && new != content))
            .map(|(path, _)| path)
            .collect();
        assert!(edited.is_empty(), "adding a host edited {edited:?}");

        let manifests = h_testkit::manifests(&copy).unwrap();
        assert!(manifests.iter().any(|manifest| manifest.name == "hecho"), "testkit's manifests");
        let programs = h_filter::codegen::programs(&copy);
        assert!(programs.iter().any(|(policy, dir)| policy == "hecho" && dir == "hosts/hecho"), "{programs:?}");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let metadata = output(
            Command::new(cargo)
                .args(["metadata", "--offline", "--no-deps", "--format-version", "1", "--manifest-path"])
                .arg(copy.join("Cargo.toml")),
        );
        assert!(metadata.contains("\"name\":\"hecho\""), "the workspace has no member hecho");
        if Command::new("nix-instantiate").arg("--version").output().is_ok_and(|output| output.status.success()) {
            let hosts = output(
                Command::new("nix-instantiate")
                    .args(["--readonly-mode", "--eval", "--strict", "--json", "-E"])
                    .arg(format!("(import {}/nix/names.nix).hosts", copy.display())),
            );
            assert!(hosts.contains("\"hecho\""), "the flake's hosts: {hosts}");
        } else {
            eprintln!("nix-instantiate is not installed: the flake's host list was not asked");
        }
        std::fs::remove_dir_all(&copy).unwrap();
    }
}
