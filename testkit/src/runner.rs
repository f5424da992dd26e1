//! The runner: every case of a host's folders, each run in a fresh work directory and a fresh
//! process, as each user, judged against the case's expectations. `cargo xtask test` (through
//! [`crate::run_suite`]) and the QEMU guest of `cargo xtask vm-test` both run cases with it.

use std::fmt;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::case::Case;
use crate::machine::{Machine, CASE_PATH};
use crate::outcome::{execute, judge, Outcome};
use crate::terminal::execute_on_terminal;
use crate::work::{prepare_work, substitute, Scratch, User};
use crate::Arguments;

/// How one run of a case ended (serialisable: the QEMU guest reports runs as JSON lines).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Passed,
    /// The case's `about`, and what went wrong.
    Failed {
        about: String,
        problems: Vec<String>,
    },
    /// Why it did not run.
    Skipped(String),
}

/// One case, run (or not) as one user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// `HOST/FOLDER/NAME`.
    pub name: String,
    /// The user's label; `None` for a verdict on the case as a whole (an attack without control).
    pub user: Option<String>,
    pub verdict: Verdict,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = self.user.as_ref().map(|user| format!(" ({user})")).unwrap_or_default();
        match &self.verdict {
            Verdict::Passed => write!(f, "ok   {}{who}", self.name),
            Verdict::Skipped(reason) => write!(f, "skip {}{who}: {reason}", self.name),
            Verdict::Failed { about, problems } => {
                write!(f, "FAIL {}{who}: {about}", self.name)?;
                problems.iter().try_for_each(|problem| write!(f, "\n       {problem}"))
            }
        }
    }
}

/// Counts of runs, and the closing line of a suite.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Tally {
    pub fn add(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::Passed => self.passed += 1,
            Verdict::Failed { .. } => self.failed += 1,
            Verdict::Skipped(_) => self.skipped += 1,
        }
    }
}

impl fmt::Display for Tally {
    /// `N passed, N failed` (and `, N skipped` when any was).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)?;
        if self.skipped > 0 {
            write!(f, ", {} skipped", self.skipped)?;
        }
        Ok(())
    }
}

/// How one run of a case starts: the sandbox (the host with `extra` options before the case's),
/// or the control (the bare interpreter).
enum Mode<'a> {
    Sandboxed { extra: &'a [String] },
    Control(&'a [String]),
}

/// Runs a host's cases. See [`Runner::new`] and the `with_*` settings.
pub struct Runner {
    host: String,
    binary: PathBuf,
    control: Option<Vec<String>>,
    users: Vec<User>,
    vars: Vec<(String, String)>,
    options: Vec<String>,
    timeout_factor: u64,
    machine: Option<Machine>,
    scratch: Scratch,
}

impl Runner {
    /// A runner of `host`'s cases with the host `binary`, the bare interpreter `control` for the
    /// control runs of attacks (`None`: attacks run without them), as each of `users`.
    pub fn new(host: &str, binary: &Path, control: Option<Vec<String>>, users: Vec<User>) -> io::Result<Runner> {
        Ok(Runner {
            host: host.to_string(),
            binary: binary.to_path_buf(),
            control,
            users,
            vars: Vec::new(),
            options: Vec::new(),
            timeout_factor: 1,
            machine: None,
            scratch: Scratch::new(host)?,
        })
    }

    /// Values substituted in the cases' expectations (`("$LIBPYTHON", "libpython3.11.a")`).
    pub fn with_vars(mut self, vars: Vec<(String, String)>) -> Runner {
        self.vars = vars;
        self
    }

    /// Host options before every case's own, added to those the runner already gives.
    pub fn with_options(mut self, options: Vec<String>) -> Runner {
        self.options.extend(options);
        self
    }

    /// Every case's timeout multiplied (for an emulated machine).
    pub fn with_timeout_factor(mut self, factor: u64) -> Runner {
        self.timeout_factor = factor.max(1);
        self
    }

    /// Skip each run whose needs (`[needs]`, and what a caller script or terminal needs) this
    /// machine does not meet, saying why. Without it every case runs. On a machine without
    /// landlock every run gets `--allow-degraded`, and a case that `holds_without_landlock`
    /// fails instead of being skipped.
    pub fn skipping_unmet_needs(mut self, machine: Machine) -> Runner {
        if machine.landlock_abi.is_none() {
            self.options.push("--allow-degraded".to_string());
        }
        self.machine = Some(machine);
        self
    }

    /// Runs a copy of the binary in the runner's scratch directory (readable and executable by
    /// every user, wherever the build put the original).
    pub fn with_binary_copy(mut self) -> io::Result<Runner> {
        let bin_dir = self.scratch.root.join("bin");
        std::fs::create_dir_all(&bin_dir)?;
        let copy = bin_dir.join(&self.host);
        std::fs::copy(&self.binary, &copy)
            .map_err(|error| io::Error::new(error.kind(), format!("copying {}: {error}", self.binary.display())))?;
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))?;
        self.binary = copy;
        Ok(self)
    }

    /// Runs every case in `folders` of `dir` (a host's crate directory) that `arguments` selects,
    /// handing each run to `report` as it ends. A folder named `attacks` requires control runs.
    pub fn run_folders(&self, dir: &Path, folders: &[&str], arguments: &Arguments, report: &mut dyn FnMut(Run)) {
        for folder in folders {
            let Ok(entries) = std::fs::read_dir(dir.join(folder)) else { continue };
            let mut cases: Vec<PathBuf> =
                entries.filter_map(|entry| entry.ok().map(|entry| entry.path())).filter(|path| path.is_dir()).collect();
            cases.sort();
            for case_dir in cases {
                let case_name =
                    case_dir.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
                let name = format!("{}/{folder}/{case_name}", self.host);
                if arguments.filter.as_ref().is_some_and(|filter| !name.contains(filter.as_str())) {
                    continue;
                }
                if let Some((_, reason)) = arguments.skip.iter().find(|(skipped, _)| *skipped == name) {
                    report(Run { name, user: None, verdict: Verdict::Skipped(reason.clone()) });
                    continue;
                }
                self.run_case(&name, &case_dir, *folder == "attacks", report);
            }
        }
    }

    /// Runs one case (`name` is `HOST/FOLDER/NAME`) as each user it names.
    pub fn run_case(&self, name: &str, case_dir: &Path, attack: bool, report: &mut dyn FnMut(Run)) {
        let whole = |problem: String| Run {
            name: name.to_string(),
            user: None,
            verdict: Verdict::Failed { about: "the case cannot run".to_string(), problems: vec![problem] },
        };
        let case = match Case::load(case_dir, &self.vars) {
            Ok(case) => case,
            Err(error) => return report(whole(error)),
        };
        if attack && case.control.is_none() {
            return report(whole(
                "an attack case needs a [control] run showing the attack works unsandboxed".to_string(),
            ));
        }
        let unmet = self.machine.as_ref().and_then(|machine| {
            let reason = case.needs().unmet(machine)?;
            Some(if case.holds_without_landlock && machine.landlock_abi.is_none() { Err(reason) } else { Ok(reason) })
        });
        for who in &self.users {
            if case.users.as_ref().is_some_and(|users| !users.contains(&who.label)) {
                continue;
            }
            let verdict = match &unmet {
                Some(Ok(reason)) => Verdict::Skipped(reason.clone()),
                Some(Err(reason)) => Verdict::Failed {
                    about: case.about.clone(),
                    problems: vec![format!("it must hold without landlock, but cannot run here: {reason}")],
                },
                None => self.judge_case(name, case_dir, &case, who),
            };
            report(Run { name: name.to_string(), user: Some(who.label.clone()), verdict });
        }
    }

    /// The control run (when the case has one and the runner a control interpreter), the
    /// sandboxed run, and the `--kill-on-deny` run (when the case has one), judged together.
    fn judge_case(&self, name: &str, case_dir: &Path, case: &Case, who: &User) -> Verdict {
        let mut problems = Vec::new();
        let slug = format!("{}-{}", name.replace('/', "_"), who.label);
        let mut run = |mode: Mode, slug: &str, expect: &crate::Expect, prefix: &str| match self
            .run(mode, slug, case_dir, case, who)
        {
            Ok((outcome, work)) => {
                problems.extend(judge(expect, &outcome, &work).into_iter().map(|problem| format!("{prefix}{problem}")))
            }
            Err(error) => problems.push(format!("{prefix}preparing the work directory: {error}")),
        };
        if let (Some(expect), Some(control)) = (&case.control, &self.control) {
            run(Mode::Control(control), &format!("{slug}-control"), expect, "control: ");
        }
        run(Mode::Sandboxed { extra: &self.options }, &slug, &case.expect, "");
        if let Some(expect) = &case.kill_on_deny {
            let mut extra = self.options.clone();
            extra.push("--kill-on-deny".to_string());
            run(Mode::Sandboxed { extra: &extra }, &format!("{slug}-k"), expect, "with -k: ");
        }
        if problems.is_empty() {
            Verdict::Passed
        } else {
            Verdict::Failed { about: case.about.clone(), problems }
        }
    }

    /// The program and leading arguments that run the script (`$HOST` of a caller script).
    fn interpreter(&self, mode: &Mode, case: &Case, work: &Path) -> Vec<String> {
        match mode {
            Mode::Sandboxed { extra } => {
                let mut words = vec![self.binary.to_string_lossy().into_owned()];
                words.extend(extra.iter().cloned());
                words.extend(case.options.iter().map(|option| substitute(option, work)));
                words
            }
            Mode::Control(control) => control.to_vec(),
        }
    }

    fn run(&self, mode: Mode, slug: &str, case_dir: &Path, case: &Case, who: &User) -> io::Result<(Outcome, PathBuf)> {
        let work = prepare_work(&self.scratch, slug, case_dir, case, who)?;
        let interpreter = self.interpreter(&mode, case, &work);
        let mut command = match &case.caller {
            Some(caller) => {
                let mut command = Command::new("bash");
                command.arg(caller).args(case.script_args.iter().map(|arg| substitute(arg, &work)));
                command.env("HOST", interpreter.join(" "));
                command.env("SANDBOXED", if matches!(mode, Mode::Control(_)) { "0" } else { "1" });
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
        command.env("PATH", CASE_PATH);
        command.env("HOME", work.join("home"));
        command.env("WORK", &work);
        command.env("HELPERS", self.scratch.helpers());
        for (variable, value) in &case.env {
            command.env(variable, substitute(value, &work));
        }
        if who.uid != 0 || who.label == "user" {
            command.uid(who.uid).gid(who.gid);
        }
        let timeout = Duration::from_secs(case.timeout.saturating_mul(self.timeout_factor));
        let outcome = if case.terminal {
            execute_on_terminal(command, &case.typed_ahead, &case.send, timeout)
        } else {
            // A fresh process group: the case cannot reach the terminal of whoever runs the tests.
            command.process_group(0);
            let stdout_file = case.stdout_to_file.then(|| work.join("stdout.txt"));
            execute(command, case.stdin.as_deref(), stdout_file.as_deref(), timeout)
        };
        Ok((outcome, work))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_print_as_before() {
        let run =
            |user: Option<&str>, verdict| Run { name: "hsh/cases/x".into(), user: user.map(String::from), verdict };
        assert_eq!(run(Some("root"), Verdict::Passed).to_string(), "ok   hsh/cases/x (root)");
        assert_eq!(run(None, Verdict::Skipped("why".into())).to_string(), "skip hsh/cases/x: why");
        let failed = Verdict::Failed { about: "it".into(), problems: vec!["a".into(), "b".into()] };
        assert_eq!(run(Some("user"), failed).to_string(), "FAIL hsh/cases/x (user): it\n       a\n       b");
        let mut tally = Tally::default();
        tally.add(&Verdict::Passed);
        assert_eq!(tally.to_string(), "1 passed, 0 failed");
        tally.add(&Verdict::Skipped(String::new()));
        assert_eq!(tally.to_string(), "1 passed, 0 failed, 1 skipped");
    }

    /// A whole case through the runner: `sh` standing in for a host, as the current user.
    #[test]
    fn a_case_runs_and_is_judged() {
        let dir = std::env::temp_dir().join(format!("h-testkit-runner-{}", std::process::id()));
        let case = dir.join("cases/echo");
        std::fs::create_dir_all(&case).unwrap();
        std::fs::write(case.join("main"), "echo hello \"$1\"\n").unwrap();
        std::fs::write(
            case.join("test.toml"),
            "about = \"echoes\"\nscript_args = [\"$WORK\"]\nstdout_contains = [\"hello /\"]\n",
        )
        .unwrap();
        let attack = dir.join("attacks/nocontrol");
        std::fs::create_dir_all(&attack).unwrap();
        std::fs::write(attack.join("test.toml"), "about = \"x\"\n").unwrap();
        // SAFETY: no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let me = if uid == 0 { User::root() } else { User::unprivileged(uid, gid) };
        let runner = Runner::new("sh-test", Path::new("/bin/sh"), None, vec![me]).unwrap();
        let mut runs = Vec::new();
        runner.run_folders(&dir, &["cases", "attacks"], &Arguments::default(), &mut |run| runs.push(run));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert_eq!(runs[0].verdict, Verdict::Passed, "{}", runs[0]);
        assert!(matches!(runs[1].verdict, Verdict::Failed { .. }) && runs[1].user.is_none(), "{}", runs[1]);
    }

    /// Without landlock, a case that must hold there fails instead of being skipped, and every
    /// run gets `--allow-degraded`; with landlock the same unmet need is a skip.
    #[test]
    fn a_case_that_holds_without_landlock_is_never_skipped_there() {
        let dir = std::env::temp_dir().join(format!("h-testkit-degraded-{}", std::process::id()));
        let case = dir.join("attacks/needs");
        std::fs::create_dir_all(&case).unwrap();
        std::fs::write(
            case.join("test.toml"),
            "about = \"x\"\nholds_without_landlock = true\n[control]\n[needs]\nprograms = [\"no-such-program-h\"]\n",
        )
        .unwrap();
        // SAFETY: no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let me = if uid == 0 { User::root() } else { User::unprivileged(uid, gid) };
        let verdicts = |abi: Option<u32>| {
            let machine = Machine { landlock_abi: abi, ..Machine::measure() };
            let runner = Runner::new("sh-degraded", Path::new("/bin/sh"), None, vec![me.clone()])
                .unwrap()
                .skipping_unmet_needs(machine);
            assert_eq!(runner.options.is_empty(), abi.is_some(), "{:?}", runner.options);
            let mut runs = Vec::new();
            runner.run_folders(&dir, &["attacks"], &Arguments::default(), &mut |run| runs.push(run.verdict));
            runs
        };
        let without = verdicts(None);
        let with = verdicts(Some(6));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(&without[..], [Verdict::Failed { problems, .. }] if problems[0].contains("without landlock")));
        assert!(matches!(&with[..], [Verdict::Skipped(reason)] if reason.contains("no-such-program-h")));
    }
}
