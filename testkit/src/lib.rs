//! The case runner behind every host's `tests/cases.rs`.
//!
//! A case is a folder with a `test.toml` and the files it needs. Each case runs in a fresh
//! work directory, in a fresh process, as root and as the unprivileged user `h-test` (created
//! when missing) when the tests run as root, else as the current user. A case in an `attacks`
//! folder must carry a `[control]` run: the same script under the bare interpreter, which must
//! show that the attack works without the sandbox. A case may run through a caller script
//! (`caller`), on a fresh pseudo-terminal (`terminal`, with keys typed by `send`), and again
//! with `--kill-on-deny` (`[kill_on_deny]`).
//!
//! [`Runner`] is the runner itself: `cargo xtask test` drives it through [`run_suite`] (every
//! case runs, on a machine that provides what they need); a VM run (the harness with `--vm` in
//! the NixOS VM tests, the QEMU guest of `cargo xtask vm-test` with its own binaries and users)
//! skips what a case's `[needs]` says the machine lacks and adds the kernel checks ([`host_checks`]).
//! What the tools know of a host is its manifest, `hosts/HOST/host.toml` ([`Manifest`]).

mod case;
mod kernel;
mod machine;
mod manifest;
mod outcome;
mod runner;
mod terminal;
mod work;

use std::path::Path;

pub use case::{Case, Expect, Needs, Typed};
pub use kernel::{host_checks, AbiExpectation, Check};
pub use machine::{kernel_at_least, landlock_abi, Machine, CASE_PATH};
pub use manifest::{host_dirs, manifests, Bench, CLibrary, Cases, Manifest, Nix, Vm, Workload, MANIFEST_FILE};
pub use outcome::{execute, judge, signal_number, status_problems, Outcome};
pub use runner::{Run, Runner, Tally, Verdict};
pub use terminal::execute_on_terminal;
pub use work::{local_users, User, TEST_USER};

/// The case folders of every host; those named `attacks` require control runs.
pub const FOLDERS: &[&str] = &["cases", "attacks"];

/// The case script every host has, which the kernel checks run (it prints a greeting).
pub const HELLO: &str = "cases/hello/main";

/// A host's test suite, as its `tests/cases.rs` knows it at build time.
pub struct Suite<'a> {
    /// The host binary (`env!("CARGO_BIN_EXE_hlua")`).
    pub binary: &'a str,
    /// The crate directory (`env!("CARGO_MANIFEST_DIR")`), with `host.toml` and the case folders.
    pub manifest_dir: &'a str,
    /// The build script's values the manifest names (`("H_LIBPYTHON", env!("H_LIBPYTHON"))`).
    pub build_values: &'a [(&'a str, &'a str)],
}

/// The command line of a case harness: an optional filter (a substring of `HOST/FOLDER/NAME`),
/// any number of `--skip NAME` (exact names, with the reason after a colon:
/// `--skip 'hsh/cases/signal-scope:needs landlock ABI 6'`), and for a VM run `--vm` (skip what
/// this machine lacks, run the kernel checks) with `--expect-abi none|N|N+`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Arguments {
    pub filter: Option<String>,
    pub skip: Vec<(String, String)>,
    pub vm: bool,
    pub expect_abi: Option<AbiExpectation>,
}

impl Arguments {
    pub fn parse(arguments: impl IntoIterator<Item = String>) -> Result<Arguments, String> {
        let mut parsed = Arguments::default();
        let mut iter = arguments.into_iter();
        while let Some(argument) = iter.next() {
            match argument.as_str() {
                "--skip" => {
                    let value = iter.next().ok_or("--skip needs a case name")?;
                    let (name, reason) = value.split_once(':').unwrap_or((value.as_str(), "skipped by the runner"));
                    parsed.skip.push((name.to_string(), reason.to_string()));
                }
                "--vm" => parsed.vm = true,
                "--expect-abi" => {
                    parsed.expect_abi = Some(iter.next().ok_or("--expect-abi needs none, N or N+")?.parse()?);
                }
                // libtest's own options (cargo test passes some): not ours, ignored.
                _ if argument.starts_with('-') => {}
                _ if parsed.filter.is_none() => parsed.filter = Some(argument),
                _ => return Err(format!("one filter only: {argument:?}")),
            }
        }
        Ok(parsed)
    }
}

/// The runner of a suite: its manifest's host and control, the build values, and a copy of the
/// binary every user can run.
fn suite_runner(suite: &Suite, manifest: &Manifest) -> Result<Runner, String> {
    let control = manifest.control(suite.build_values)?;
    let vars = manifest.case_vars(suite.build_values)?;
    let users = local_users().map_err(|error| format!("cannot set up the users: {error}"))?;
    let runner = Runner::new(&manifest.name, Path::new(suite.binary), Some(control), users)
        .and_then(Runner::with_binary_copy)
        .map_err(|error| format!("cannot set up the runner: {error}"))?;
    Ok(runner.with_vars(vars))
}

/// Runs every case of the suite and prints one line per run and a closing count
/// (`N passed, N failed`). Returns the number of failures.
pub fn run_suite(suite: &Suite) -> usize {
    let crate_dir = Path::new(suite.manifest_dir);
    let setup = Arguments::parse(std::env::args().skip(1))
        .and_then(|arguments| Manifest::load(crate_dir).map(|manifest| (arguments, manifest)))
        .and_then(|(arguments, manifest)| suite_runner(suite, &manifest).map(|runner| (arguments, manifest, runner)));
    let (arguments, manifest, mut runner) = match setup {
        Ok(setup) => setup,
        Err(error) => {
            println!("FAIL {}: {error}", suite.manifest_dir);
            return 1;
        }
    };
    let mut tally = Tally::default();
    let mut report = |run: Run| {
        println!("{run}");
        tally.add(&run.verdict);
    };
    if arguments.vm {
        let machine = Machine::measure();
        kernel_runs(&manifest.name, Path::new(suite.binary), &crate_dir.join(HELLO), &arguments, &machine, &mut report);
        runner = runner.skipping_unmet_needs(machine);
    }
    runner.run_folders(crate_dir, FOLDERS, &arguments, &mut report);
    println!("{tally}");
    tally.failed
}

/// The kernel checks of a VM run, as the current user, reported as runs `HOST/kernel/CHECK`.
fn kernel_runs(
    host: &str,
    binary: &Path,
    script: &Path,
    arguments: &Arguments,
    machine: &Machine,
    report: &mut dyn FnMut(Run),
) {
    // SAFETY: no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let user = if uid == 0 { User::root() } else { User::unprivileged(uid, gid) };
    let mut checks: Vec<Check> = Vec::new();
    if let Some(expected) = arguments.expect_abi {
        checks.push(("landlock-abi".to_string(), expected.problems(machine.landlock_abi)));
    }
    checks.extend(host_checks(binary, script, machine.landlock_abi, &user).0);
    for (check, problems) in checks {
        let verdict = if problems.is_empty() {
            Verdict::Passed
        } else {
            Verdict::Failed { about: "a kernel check".to_string(), problems }
        };
        report(Run { name: format!("{host}/kernel/{check}"), user: Some(user.label.clone()), verdict });
    }
}

/// The `main` of a host's `tests/cases.rs`.
pub fn main_for(suite: &Suite) {
    let failures = run_suite(suite);
    std::process::exit(if failures == 0 { 0 } else { 1 });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_take_a_filter_and_skips() {
        let parsed = Arguments::parse(
            ["--skip", "hsh/cases/signal-scope:needs landlock ABI 6", "hsh/cases", "--skip", "hsh/attacks/x"]
                .map(String::from),
        )
        .unwrap();
        assert_eq!(parsed.filter.as_deref(), Some("hsh/cases"));
        assert_eq!(
            parsed.skip,
            vec![
                ("hsh/cases/signal-scope".to_string(), "needs landlock ABI 6".to_string()),
                ("hsh/attacks/x".to_string(), "skipped by the runner".to_string())
            ]
        );
        let vm = Arguments::parse(["--vm", "--expect-abi", "6+"].map(String::from)).unwrap();
        assert!(vm.vm && vm.expect_abi == Some(AbiExpectation::AtLeast(6)));
        assert!(Arguments::parse(["--expect-abi", "x"].map(String::from)).is_err());
        assert!(Arguments::parse(["a", "b"].map(String::from)).is_err());
    }
}
