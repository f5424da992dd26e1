//! The case runner behind every host's `tests/cases.rs`.
//!
//! A case is a folder with a `test.toml` and the files it needs. Each case runs in a fresh
//! work directory, in a fresh process, as root and as the unprivileged user `h-test` (created
//! when missing) when the tests run as root, else as the current user. A case in an `attacks`
//! folder must carry a `[control]` run: the same script under the bare interpreter, which must
//! show that the attack works without the sandbox.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// What a run must show.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Exit status (default 0 unless `signal` is given).
    pub exit: Option<i32>,
    /// Name of the signal that must end the process (e.g. "SIGSYS").
    pub signal: Option<String>,
    /// Exact stdout.
    pub stdout: Option<String>,
    #[serde(default)]
    pub stdout_contains: Vec<String>,
    #[serde(default)]
    pub stdout_lacks: Vec<String>,
    #[serde(default)]
    pub stderr_contains: Vec<String>,
    /// Paths (relative to the work directory) that must exist afterwards.
    #[serde(default)]
    pub exists: Vec<String>,
    /// Paths that must not exist afterwards.
    #[serde(default)]
    pub absent: Vec<String>,
}

/// What a case needs from the machine it runs on besides its host: runners that cannot
/// provide it (the NixOS VM tests, the QEMU guest) skip the case and say why. `cargo xtask
/// test` provides everything and runs every case.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Needs {
    /// Programs found on the case's PATH (`/usr/local/bin:/usr/bin:/bin`).
    #[serde(default)]
    pub programs: Vec<String>,
    /// Files that must all exist (absolute paths).
    #[serde(default)]
    pub files: Vec<String>,
    /// Files of which at least one must exist (one per architecture or distribution).
    #[serde(default)]
    pub any_file: Vec<String>,
    /// The landlock ABI the case's expectations rely on (1: filesystem, 4: TCP, 6: scopes).
    pub landlock_abi: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// One sentence: what this case proves.
    pub about: String,
    /// Host options before the script.
    #[serde(default)]
    pub options: Vec<String>,
    /// The script, relative to the case folder.
    #[serde(default = "default_script")]
    pub script: String,
    #[serde(default)]
    pub script_args: Vec<String>,
    pub stdin: Option<String>,
    /// Extra environment of the host process (on top of PATH and HOME).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Files created before the run, relative to the work directory.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Octal modes applied to created files after they are written (e.g. "000").
    #[serde(default)]
    pub file_modes: BTreeMap<String, String>,
    /// Send stdout to a regular file in the work directory (as `> file` does) instead of a pipe.
    #[serde(default)]
    pub stdout_to_file: bool,
    /// Seconds before the run is killed and the case fails.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// Run only as these users: "root", "user" (default both).
    pub users: Option<Vec<String>>,
    #[serde(flatten)]
    pub expect: Expect,
    /// The same script under the bare interpreter, showing the attack works unsandboxed.
    pub control: Option<Expect>,
    /// The same run again with `--kill-on-deny`: what the sandbox shows when the first refused
    /// call ends it (typically death by SIGSYS and the refusal line).
    pub kill_on_deny: Option<Expect>,
    /// What the case needs from the machine (see [`Needs`]).
    #[serde(default)]
    pub needs: Needs,
}

impl Expect {
    /// Replaces each `(name, value)` of `vars` in every expected text.
    fn substitute(&mut self, vars: &[(&str, &str)]) {
        let replace = |text: &mut String| {
            for (name, value) in vars {
                *text = text.replace(name, value);
            }
        };
        self.stdout.iter_mut().for_each(replace);
        for list in [&mut self.stdout_contains, &mut self.stdout_lacks, &mut self.stderr_contains] {
            list.iter_mut().for_each(replace);
        }
    }
}

impl Case {
    /// Reads `test.toml` of `case_dir`, with `vars` substituted in its expectations.
    pub fn load(case_dir: &Path, vars: &[(&str, &str)]) -> Result<Case, String> {
        let path = case_dir.join("test.toml");
        let text = std::fs::read_to_string(&path).map_err(|error| format!("{}: {error}", path.display()))?;
        let mut case: Case = toml::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;
        case.expect.substitute(vars);
        if let Some(control) = case.control.as_mut() {
            control.substitute(vars);
        }
        if let Some(kill_on_deny) = case.kill_on_deny.as_mut() {
            kill_on_deny.substitute(vars);
        }
        Ok(case)
    }
}

fn default_script() -> String {
    "main".to_string()
}

fn default_timeout() -> u64 {
    60
}

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

#[derive(Clone, Copy, Debug)]
struct RunAs {
    label: &'static str,
    uid: u32,
    gid: u32,
}

const TEST_USER: &str = "h-test";

fn unprivileged_user() -> RunAs {
    let lookup = || -> Option<(u32, u32)> {
        let uid = Command::new("id").args(["-u", TEST_USER]).output().ok()?;
        let gid = Command::new("id").args(["-g", TEST_USER]).output().ok()?;
        if !uid.status.success() {
            return None;
        }
        Some((
            String::from_utf8(uid.stdout).ok()?.trim().parse().ok()?,
            String::from_utf8(gid.stdout).ok()?.trim().parse().ok()?,
        ))
    };
    let (uid, gid) = match lookup() {
        Some(ids) => ids,
        None => {
            let status = Command::new("useradd")
                .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER])
                .status()
                .expect("useradd");
            assert!(status.success(), "cannot create the test user {TEST_USER}");
            lookup().expect("test user after useradd")
        }
    };
    RunAs { label: "user", uid, gid }
}

fn users() -> Vec<RunAs> {
    // SAFETY: geteuid and getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid == 0 {
        vec![RunAs { label: "root", uid: 0, gid: 0 }, unprivileged_user()]
    } else {
        vec![RunAs { label: "user", uid, gid }]
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn chown_tree(path: &Path, who: RunAs) {
    std::os::unix::fs::lchown(path, Some(who.uid), Some(who.gid)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), who);
        }
    }
}

/// How a run ended.
pub struct Outcome {
    /// `None` when the run timed out (or could not start: then `stderr` says why).
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` with `stdin`, stdout to a pipe or `stdout_file`, killing it after `timeout`.
pub fn execute(mut command: Command, stdin: Option<&str>, stdout_file: Option<&Path>, timeout: Duration) -> Outcome {
    let failed = |why: String| Outcome { status: None, stdout: String::new(), stderr: why };
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    match stdout_file {
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => command.stdout(file),
            Err(error) => return failed(format!("creating {}: {error}", path.display())),
        },
        None => command.stdout(Stdio::piped()),
    };
    command.stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return failed(format!("spawning {command:?}: {error}")),
    };
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let text = text.to_string();
        std::thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        });
    }
    let reader = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buffer = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buffer);
            }
            buffer
        })
    };
    let stdout_reader = reader(child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let stderr_reader = reader(child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(_) => break None,
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = stdout_reader.join().unwrap_or_default();
    if let Some(path) = stdout_file {
        stdout = std::fs::read(path).unwrap_or_default();
    }
    let stderr = stderr_reader.join().unwrap_or_default();
    Outcome {
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// The number of a signal named in a case.
pub fn signal_number(name: &str) -> Option<i32> {
    Some(match name {
        "SIGKILL" => 9,
        "SIGSEGV" => 11,
        "SIGABRT" => 6,
        "SIGPIPE" => 13,
        "SIGXCPU" => 24,
        "SIGXFSZ" => 25,
        "SIGSYS" => 31,
        _ => return None,
    })
}

/// What is wrong with how a run ended, given the expected signal or exit status.
pub fn status_problems(outcome: &Outcome, signal: Option<&str>, exit: Option<i32>) -> Vec<String> {
    let mut problems = Vec::new();
    match (outcome.status, signal) {
        (None, _) => problems.push(format!("timed out or did not start {}", outcome.stderr.trim())),
        (Some(status), Some(signal)) => match signal_number(signal) {
            Some(wanted) if status.signal() == Some(wanted) => {}
            Some(_) => problems.push(format!("expected death by {signal}, got {status}")),
            None => problems.push(format!("unknown signal name {signal}")),
        },
        (Some(status), None) => {
            let wanted = exit.unwrap_or(0);
            if status.code() != Some(wanted) {
                problems.push(format!("expected exit {wanted}, got {status}"));
            }
        }
    }
    problems
}

/// Everything wrong with a run against what a case expects.
pub fn judge(expect: &Expect, outcome: &Outcome, work: &Path) -> Vec<String> {
    let mut problems = status_problems(outcome, expect.signal.as_deref(), expect.exit);
    if let Some(stdout) = &expect.stdout {
        if &outcome.stdout != stdout {
            problems.push(format!("stdout {:?} is not {:?}", outcome.stdout, stdout));
        }
    }
    for needle in &expect.stdout_contains {
        if !outcome.stdout.contains(needle.as_str()) {
            problems.push(format!("stdout lacks {needle:?}"));
        }
    }
    for needle in &expect.stdout_lacks {
        if outcome.stdout.contains(needle.as_str()) {
            problems.push(format!("stdout has {needle:?}"));
        }
    }
    for needle in &expect.stderr_contains {
        if !outcome.stderr.contains(needle.as_str()) {
            problems.push(format!("stderr lacks {needle:?}"));
        }
    }
    for path in &expect.exists {
        if !work.join(path).exists() {
            problems.push(format!("{path} does not exist"));
        }
    }
    for path in &expect.absent {
        if work.join(path).exists() {
            problems.push(format!("{path} exists"));
        }
    }
    if !problems.is_empty() {
        let cut = |text: &str| text.chars().take(600).collect::<String>();
        problems.push(format!("stdout was {:?}", cut(&outcome.stdout)));
        problems.push(format!("stderr was {:?}", cut(&outcome.stderr)));
    }
    problems
}

struct Scratch {
    root: PathBuf,
}

impl Scratch {
    fn new(host: &str) -> Scratch {
        let root = std::env::temp_dir().join(format!("h-cases-{host}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch { root }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn prepare_work(scratch: &Scratch, name: &str, case_dir: &Path, case: &Case, who: RunAs) -> PathBuf {
    let work = scratch.root.join(name);
    let _ = std::fs::remove_dir_all(&work);
    copy_tree(case_dir, &work.join("case"));
    std::fs::create_dir_all(work.join("home")).unwrap();
    for (path, contents) in &case.files {
        let target = work.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, contents).unwrap();
    }
    chown_tree(&work, who);
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (path, mode) in &case.file_modes {
        let mode = u32::from_str_radix(mode, 8).unwrap_or_else(|_| panic!("bad mode {mode}"));
        std::fs::set_permissions(work.join(path), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    work
}

fn substitute(text: &str, work: &Path) -> String {
    text.replace("$WORK", &work.to_string_lossy())
}

fn command_for(
    program: &Path,
    leading: &[&str],
    arguments: Vec<String>,
    case: &Case,
    work: &Path,
    who: RunAs,
) -> Command {
    let mut command = Command::new(program);
    command.args(leading).args(arguments);
    command.current_dir(work.join("case"));
    command.env_clear();
    command.env("PATH", "/usr/local/bin:/usr/bin:/bin");
    command.env("HOME", work.join("home"));
    for (name, value) in &case.env {
        command.env(name, substitute(value, work));
    }
    if who.uid != 0 || who.label == "user" {
        command.uid(who.uid).gid(who.gid);
    }
    // A fresh session: the case cannot reach the terminal of whoever runs the tests.
    command.process_group(0);
    command
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
    let control_program = PathBuf::from(suite.control[0]);
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
                let slug = name.replace('/', "_");
                let timeout = Duration::from_secs(case.timeout);
                if let Some(control) = &case.control {
                    let work = prepare_work(&scratch, &format!("{slug}-{}-control", who.label), &case_dir, &case, who);
                    let mut arguments = vec![case.script.clone()];
                    arguments.extend(case.script_args.iter().map(|arg| substitute(arg, &work)));
                    let command = command_for(&control_program, &suite.control[1..], arguments, &case, &work, who);
                    let stdout_file = case.stdout_to_file.then(|| work.join("stdout.txt"));
                    let outcome = execute(command, case.stdin.as_deref(), stdout_file.as_deref(), timeout);
                    problems.extend(judge(control, &outcome, &work).into_iter().map(|p| format!("control: {p}")));
                }
                let kill_flag = ["--kill-on-deny".to_string()];
                let kill_run = case.kill_on_deny.as_ref().map(|expect| (expect, "-k", &kill_flag[..]));
                for (expect, suffix, extra) in std::iter::once((&case.expect, "", &[][..])).chain(kill_run) {
                    let work = prepare_work(&scratch, &format!("{slug}-{}{suffix}", who.label), &case_dir, &case, who);
                    let mut arguments: Vec<String> = extra.to_vec();
                    arguments.extend(case.options.iter().map(|arg| substitute(arg, &work)));
                    arguments.push(case.script.clone());
                    arguments.extend(case.script_args.iter().map(|arg| substitute(arg, &work)));
                    let command = command_for(&binary, &[], arguments, &case, &work, who);
                    let stdout_file = case.stdout_to_file.then(|| work.join("stdout.txt"));
                    let outcome = execute(command, case.stdin.as_deref(), stdout_file.as_deref(), timeout);
                    let label = if suffix.is_empty() { "" } else { "with --kill-on-deny: " };
                    problems.extend(judge(expect, &outcome, &work).into_iter().map(|p| format!("{label}{p}")));
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

    #[test]
    fn needs_and_build_values_are_read() {
        let dir = std::env::temp_dir().join(format!("h-testkit-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("test.toml"),
            "about = \"x\"\nstdout_contains = [\"$LIBPYTHON\"]\n[needs]\nprograms = [\"ls\"]\nlandlock_abi = 6\n",
        )
        .unwrap();
        let case = Case::load(&dir, &[("$LIBPYTHON", "libpython3.13.so.1.0")]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(case.expect.stdout_contains, ["libpython3.13.so.1.0"]);
        assert_eq!(case.needs.programs, ["ls"]);
        assert_eq!(case.needs.landlock_abi, Some(6));
    }
}
