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
//! case runs, on a machine that provides what they need), the QEMU guest of `cargo xtask vm-test`
//! with its own binaries and users, skipping what a case's `[needs]` says the guest lacks.

mod case;
mod machine;
mod outcome;
mod runner;
mod terminal;
mod work;

pub use case::{Case, Expect, Needs, Typed};
pub use machine::{kernel_at_least, landlock_abi, Machine, CASE_PATH};
pub use outcome::{execute, judge, signal_number, status_problems, Outcome};
pub use runner::{Run, Runner, Tally, Verdict};
pub use terminal::execute_on_terminal;
pub use work::{local_users, User, TEST_USER};

/// A host's test suite.
pub struct Suite<'a> {
    pub host: &'a str,
    /// The host binary (`env!("CARGO_BIN_EXE_hlua")`).
    pub binary: &'a str,
    /// The bare interpreter for control runs (`["lua5.4"]`).
    pub control: &'a [&'a str],
    /// The crate directory (`env!("CARGO_MANIFEST_DIR")`).
    pub manifest_dir: &'a str,
    /// Case folders inside it; those named `attacks` require control runs.
    pub folders: &'a [&'a str],
    /// Values known only at build time, substituted in the cases' expectations: e.g.
    /// `("$LIBPYTHON", env!("H_LIBPYTHON"))`, so that no interpreter version is a literal.
    pub vars: &'a [(&'a str, &'a str)],
}

/// The command line of a case harness: an optional filter (a substring of `HOST/FOLDER/NAME`)
/// and any number of `--skip NAME` (exact names, with the reason after a colon:
/// `--skip 'hsh/cases/signal-scope:needs landlock ABI 6'`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Arguments {
    pub filter: Option<String>,
    pub skip: Vec<(String, String)>,
}

impl Arguments {
    pub fn parse(arguments: impl IntoIterator<Item = String>) -> Arguments {
        let mut parsed = Arguments::default();
        let mut iter = arguments.into_iter();
        while let Some(argument) = iter.next() {
            if argument == "--skip" {
                if let Some(value) = iter.next() {
                    let (name, reason) = value.split_once(':').unwrap_or((value.as_str(), "skipped by the runner"));
                    parsed.skip.push((name.to_string(), reason.to_string()));
                }
            } else if !argument.starts_with('-') && parsed.filter.is_none() {
                parsed.filter = Some(argument);
            }
        }
        parsed
    }
}

/// Runs every case of the suite and prints one line per run and a closing count
/// (`N passed, N failed`). Returns the number of failures.
pub fn run_suite(suite: &Suite) -> usize {
    let arguments = Arguments::parse(std::env::args().skip(1));
    let runner = local_users()
        .and_then(|users| {
            let control = suite.control.iter().map(|word| word.to_string()).collect();
            Runner::new(suite.host, std::path::Path::new(suite.binary), Some(control), users)
        })
        .and_then(Runner::with_binary_copy);
    let runner = match runner {
        Ok(runner) => {
            runner.with_vars(suite.vars.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect())
        }
        Err(error) => {
            println!("FAIL {}: cannot set up the runner: {error}", suite.host);
            return 1;
        }
    };
    let mut tally = Tally::default();
    runner.run_folders(std::path::Path::new(suite.manifest_dir), suite.folders, &arguments, &mut |run| {
        println!("{run}");
        tally.add(&run.verdict);
    });
    println!("{tally}");
    tally.failed
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
        );
        assert_eq!(parsed.filter.as_deref(), Some("hsh/cases"));
        assert_eq!(
            parsed.skip,
            vec![
                ("hsh/cases/signal-scope".to_string(), "needs landlock ABI 6".to_string()),
                ("hsh/attacks/x".to_string(), "skipped by the runner".to_string())
            ]
        );
    }
}
