//! The mutations: each reintroduces, into a copy of the tree, a defect one check exists for, and
//! that check must then fail.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use super::*;

/// A defect reintroduced into a copy of the tree, and the check that must catch it.
pub(super) struct Mutation {
    what: &'static str,
    file: &'static str,
    from: &'static str,
    to: &'static str,
    check: fn(&Workspace, &Path) -> Result<()>,
    /// Part of the error the check must report.
    expect: &'static str,
}

pub(super) const MUTATIONS: &[Mutation] = &[
    Mutation {
        what: "the overlay adds pkgs.h, which nixpkgs has",
        file: "flake.nix",
        from: "{ hScriptHosts = final.callPackage",
        to: "{ h = final.callPackage",
        check: check_report,
        expect: "shadows nixpkgs' h",
    },
    Mutation {
        what: "formatter = nixfmt (does not walk a tree)",
        file: "flake.nix",
        from: "(pkgsFor system).nixfmt-tree)",
        to: "(pkgsFor system).nixfmt)",
        check: check_report,
        expect: "formatter is \"nixfmt\"",
    },
    Mutation {
        what: "packages.default without a main program",
        file: "nix/packages.nix",
        from: "mainProgram = \"hlua\";",
        to: "",
        check: check_report,
        expect: "packages.default has no meta.mainProgram",
    },
    Mutation {
        what: "no apps.default",
        file: "flake.nix",
        from: "default = app \"hlua\";",
        to: "demo = app \"hlua\";",
        check: check_report,
        expect: "apps.x86_64-linux.default",
    },
    Mutation {
        what: "hosts built without H_STORE_ONLY",
        file: "nix/package.nix",
        from: "H_STORE_ONLY = \"1\";",
        to: "H_STORE_ONLY = \"0\";",
        check: check_report,
        expect: "H_STORE_ONLY is not",
    },
    Mutation {
        what: "the case tests run inside the Nix build",
        file: "nix/package.nix",
        from: "doCheck = false;",
        to: "doCheck = true;",
        check: check_report,
        expect: "doCheck is not false",
    },
    Mutation {
        what: "an argument buildRustPackage is not known to take",
        file: "nix/package.nix",
        from: "doCheck = false;",
        to: "doCheck = false;\n  checkFlags = [ ];",
        check: check_flake,
        expect: "checkFlags not among the arguments",
    },
    Mutation {
        what: "the LTS VM test boots the latest kernel",
        file: "nix/kernels.nix",
        from: "kernelPackages = pkgs.linuxPackages_6_1;",
        to: "kernelPackages = pkgs.linuxPackages_latest;",
        check: check_report,
        expect: "vm-linux-6_1 boots linuxPackages_latest",
    },
    Mutation {
        what: "signal-scope declares no landlock ABI 6 (it would run on 6.1)",
        file: "hosts/hsh/cases/signal-scope/test.toml",
        from: "landlock_abi = 6",
        to: "",
        check: check_sources,
        expect: "hsh/cases/signal-scope",
    },
    Mutation {
        what: "the VM test runs the harness as a plain run (no kernel checks, no skips)",
        file: "nix/vm-test.nix",
        from: "harness --vm --expect-abi",
        to: "harness --expect-abi",
        check: check_report,
        expect: "does not run the harness as a VM run",
    },
    Mutation {
        what: "the LTS VM test accepts any ABI from 2 on",
        file: "nix/kernels.nix",
        from: "abi = \"2\";",
        to: "abi = \"2+\";",
        check: check_report,
        expect: "vm-linux-6_1 expects landlock ABI \"2+\"",
    },
    Mutation {
        what: "an undefined name in a test script (pyflakes)",
        file: "nix/vm-test.nix",
        from: "summary.append(f\"{host}: {counts.group(1)} passed\")",
        to: "sumary.append(f\"{host}: {counts.group(1)} passed\")",
        check: check_lint,
        expect: "pyflakes",
    },
    Mutation {
        what: "a wrongly typed driver call (mypy)",
        file: "nix/vm-test.nix",
        from: "machine.wait_for_unit(\"multi-user.target\")",
        to: "machine.wait_for_unit(\"multi-user.target\", timeout=\"60\")",
        check: check_lint,
        expect: "mypy",
    },
    Mutation {
        what: "hpython's print-policy case expects libpython3.11",
        file: "hosts/hpython/cases/print-policy/test.toml",
        from: "\"$LIBPYTHON\"",
        to: "\"libpython3.11.so.1.0\"",
        check: check_sources,
        expect: "names an interpreter version",
    },
    Mutation {
        what: "hpython's control interpreter is /usr/bin/python3.11",
        file: "hosts/hpython/host.toml",
        from: "control = [\"${H_PYTHON_EXECUTABLE}\"",
        to: "control = [\"/usr/bin/python3.11\"",
        check: check_sources,
        expect: "Debian path",
    },
    Mutation {
        what: "rust-version 1.80",
        file: "Cargo.toml",
        from: "rust-version = \"1.88\"",
        to: "rust-version = \"1.80\"",
        check: check_sources,
        expect: "is older than",
    },
    Mutation {
        what: "the deprecated --update-input",
        file: "flake.nix",
        from: "nix flake update nixpkgs",
        to: "nix flake lock --update-input nixpkgs",
        check: check_sources,
        expect: "deprecated `--update-input`",
    },
    Mutation {
        what: "flake.nix follows another branch than flake.lock",
        file: "flake.nix",
        from: "github:NixOS/nixpkgs/nixos-unstable",
        to: "github:NixOS/nixpkgs/nixos-25.05",
        check: check_lock_file,
        expect: "flake.lock does not match",
    },
    Mutation {
        what: "ci.yaml on an Ubuntu runner without python3.11",
        file: ".github/workflows/ci.yaml",
        from: "      image: debian:12\n",
        to: "      image: ubuntu:24.04\n",
        check: check_workflow_files,
        expect: "outside a Debian 12 container",
    },
    Mutation {
        what: "nix run only after nix flake check",
        file: ".github/workflows/nix.yaml",
        from: "  run:\n    name: nix run",
        to: "  run:\n    needs: flake\n    name: nix run",
        check: check_workflow_files,
        expect: "independently of `nix flake check`",
    },
    Mutation {
        what: "a workflow key GitHub does not know (actionlint)",
        file: ".github/workflows/ci.yaml",
        from: "timeout-minutes: 90",
        to: "timeout-minute: 90",
        check: check_workflow_files,
        expect: "actionlint",
    },
];

/// Each mutation on a fresh copy of the tree: the check must fail, for the expected reason.
pub(super) fn mutations(work: &Workspace) -> Result<usize> {
    let tree = work.dir.join("tree");
    let mutant = work.dir.join("mutant");
    for mutation in MUTATIONS {
        copy_dir(&tree, &mutant)?;
        let file = mutant.join(mutation.file);
        let content = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        ensure!(
            content.contains(mutation.from),
            "mutation '{}': {} no longer contains {:?}; update xtask/src/nixcheck/mutations.rs",
            mutation.what,
            mutation.file,
            mutation.from
        );
        std::fs::write(&file, content.replacen(mutation.from, mutation.to, 1))?;
        match (mutation.check)(work, &mutant) {
            Ok(()) => bail!("mutation '{}' was not caught", mutation.what),
            Err(error) => {
                let message = format!("{error:#}");
                ensure!(
                    message.contains(mutation.expect),
                    "mutation '{}' failed for another reason than {:?}: {message}",
                    mutation.what,
                    mutation.expect
                );
                println!("nix-check: caught: {}", mutation.what);
            }
        }
    }
    Ok(MUTATIONS.len())
}

/// Copies the directory `from` to `to` afresh.
pub(super) fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    output_of(Command::new("cp").arg("-a").arg(from).arg(to)).map(drop)
}
