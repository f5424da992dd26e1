//! The case runner behind every host's `tests/cases.rs`.
//!
//! A case is a folder with a `test.toml` and the files it needs. Each case runs in a fresh
//! work directory, in a fresh process, as root and as the unprivileged user `h-test` (created
//! when missing) when the tests run as root, else as the current user. A case in an `attacks`
//! folder must carry a `[control]` run: the same script under the bare interpreter, which must
//! show that the attack works without the sandbox. A case may run through a caller script
//! (`caller`), on a fresh pseudo-terminal (`terminal`, with keys typed by `send`), and again
//! with `--kill-on-deny` (`[kill_on_deny]`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod case;
mod outcome;
mod terminal;
mod work;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub use case::{kernel_at_least, Case, Expect, Needs, Typed};
pub use outcome::{execute, judge, signal_number, status_problems, Outcome};
pub use terminal::execute_on_terminal;
use work::{prepare_work, substitute, users, RunAs, Scratch};

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

/// How one run of a case starts: the sandbox (the host with `extra` options before the case's),
/// or the control (the bare interpreter).
enum Mode<'a> {
    Sandboxed { extra: &'a [String] },
    Control,
}

struct Runner<'a> {
    suite: &'a Suite<'a>,
    binary: PathBuf,
    scratch: Scratch,
}

impl Runner<'_> {
    /// The program and leading arguments that run the script (`$HOST` of a caller script).
    fn interpreter(&self, mode: &Mode, case: &Case, work: &Path) -> Vec<String> {
        match mode {
            Mode::Sandboxed { extra } => {
                let mut words = vec![self.binary.to_string_lossy().into_owned()];
                words.extend(extra.iter().cloned());
                words.extend(case.options.iter().map(|option| substitute(option, work)));
                words
            }
            Mode::Control => self.suite.control.iter().map(|word| word.to_string()).collect(),
        }
    }

    fn run(&self, mode: Mode, name: &str, case_dir: &Path, case: &Case, who: RunAs) -> (Outcome, PathBuf) {
        let work = prepare_work(&self.scratch, name, case_dir, case, who);
        let interpreter = self.interpreter(&mode, case, &work);
        let mut command = match &case.caller {
            Some(caller) => {
                let mut command = Command::new("bash");
                command.arg(caller).args(case.script_args.iter().map(|arg| substitute(arg, &work)));
                command.env("HOST", interpreter.join(" "));
                command.env("SANDBOXED", if matches!(mode, Mode::Control) { "0" } else { "1" });
                command
            }
            None => {
                let mut command = Command::new(&interpreter[0]);
                command.args(&interpreter[1..]).arg(&case.script);
                command.args(case.script_args.iter().map(|arg| substitute(arg, &work)));
                command
            }
        };
        command.current_dir(work.join("case"));
        command.env("PATH", "/usr/local/bin:/usr/bin:/bin");
        command.env("HOME", work.join("home"));
        command.env("WORK", &work);
        for (variable, value) in &case.env {
            command.env(variable, substitute(value, &work));
        }
        if who.uid != 0 || who.label == "user" {
            command.uid(who.uid).gid(who.gid);
        }
        let timeout = Duration::from_secs(case.timeout);
        let outcome = if case.terminal {
            execute_on_terminal(command, &case.send, timeout)
        } else {
            // A fresh process group: the case cannot reach the terminal of whoever runs the tests.
            command.process_group(0);
            let stdout_file = case.stdout_to_file.then(|| work.join("stdout.txt"));
            execute(command, case.stdin.as_deref(), stdout_file.as_deref(), timeout)
        };
        (outcome, work)
    }
}

/// Runs every case of the suite and prints one line per run and a closing count.
/// Returns the number of failures.
pub fn run_suite(suite: &Suite) -> usize {
    let Arguments { filter, skip } = Arguments::parse(std::env::args().skip(1));
    let scratch = Scratch::new(suite.host);
    let bin_dir = scratch.root.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let binary = bin_dir.join(suite.host);
    std::fs::copy(suite.binary, &binary).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let runner = Runner { suite, binary, scratch };
    let everyone = users();

    let (mut passed, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    for folder in suite.folders {
        let is_attack_folder = *folder == "attacks";
        let folder_path = Path::new(suite.manifest_dir).join(folder);
        let mut cases: Vec<PathBuf> = match std::fs::read_dir(&folder_path) {
            Ok(entries) => entries.map(|entry| entry.unwrap().path()).filter(|path| path.is_dir()).collect(),
            Err(_) => continue,
        };
        cases.sort();
        for case_dir in cases {
            let name = format!("{}/{folder}/{}", suite.host, case_dir.file_name().unwrap().to_string_lossy());
            if filter.as_ref().is_some_and(|filter| !name.contains(filter.as_str())) {
                continue;
            }
            if let Some((_, reason)) = skip.iter().find(|(skipped, _)| *skipped == name) {
                println!("skip {name}: {reason}");
                skipped += 1;
                continue;
            }
            let case = Case::load(&case_dir, suite.vars).unwrap_or_else(|error| panic!("{error}"));
            if is_attack_folder && case.control.is_none() {
                println!("FAIL {name}: an attack case needs a [control] run showing the attack works unsandboxed");
                failed += 1;
                continue;
            }
            for &who in &everyone {
                if case.users.as_ref().is_some_and(|users| !users.iter().any(|user| user == who.label)) {
                    continue;
                }
                let mut problems = Vec::new();
                let slug = format!("{}-{}", name.replace('/', "_"), who.label);
                if let Some(control) = &case.control {
                    let (outcome, work) = runner.run(Mode::Control, &format!("{slug}-control"), &case_dir, &case, who);
                    problems.extend(judge(control, &outcome, &work).into_iter().map(|p| format!("control: {p}")));
                }
                let (outcome, work) = runner.run(Mode::Sandboxed { extra: &[] }, &slug, &case_dir, &case, who);
                problems.extend(judge(&case.expect, &outcome, &work));
                if let Some(expect) = &case.kill_on_deny {
                    let extra = ["--kill-on-deny".to_string()];
                    let (outcome, work) =
                        runner.run(Mode::Sandboxed { extra: &extra }, &format!("{slug}-k"), &case_dir, &case, who);
                    problems.extend(judge(expect, &outcome, &work).into_iter().map(|p| format!("with -k: {p}")));
                }
                if problems.is_empty() {
                    println!("ok   {name} ({})", who.label);
                    passed += 1;
                } else {
                    println!("FAIL {name} ({}): {}", who.label, case.about);
                    for problem in problems {
                        println!("       {problem}");
                    }
                    failed += 1;
                }
            }
        }
    }
    if skipped > 0 {
        println!("{passed} passed, {failed} failed, {skipped} skipped");
    } else {
        println!("{passed} passed, {failed} failed");
    }
    failed
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
