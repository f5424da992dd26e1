//! Running one command and judging how it ended.

use std::io::{Read as _, Write as _};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::case::Expect;

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
