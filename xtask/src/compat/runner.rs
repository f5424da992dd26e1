//! Running suite programs: as whom, how many at a time, with which limits of time, and what
//! their output says (refused calls, processes and sockets seen by strace).

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Who runs the suites. As root, everything (bare interpreter and host alike) runs as the
/// unprivileged user `h-compat`, so both sides have the same uid: hsh and hnode would otherwise
/// switch root to `nobody`, and CPython's tests skip permission checks for root. A user of its
/// own (not the tests' `h-test`) so that what it leaves in /tmp can be cleaned away safely.
#[derive(Clone, Copy, Debug)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

pub const TEST_USER: &str = "h-compat";

/// The PATH of every run that does not set its own.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn id_of(flag: &str, user: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, user]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

/// `None` when the xtask is not root (then everything runs as the caller).
pub fn run_as() -> Result<Option<RunAs>> {
    let own = Command::new("id").arg("-u").output().context("running id -u")?;
    if String::from_utf8_lossy(&own.stdout).trim() != "0" {
        return Ok(None);
    }
    if id_of("-u", TEST_USER).is_none() {
        let status = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER])
            .status()
            .context("running useradd")?;
        if !status.success() {
            bail!("cannot create the unprivileged user {TEST_USER} (useradd: {status})");
        }
    }
    match (id_of("-u", TEST_USER), id_of("-g", TEST_USER)) {
        (Some(uid), Some(gid)) => Ok(Some(RunAs { uid, gid })),
        _ => bail!("cannot look up the user {TEST_USER}"),
    }
}

/// Gives the suites a start like a terminal's: descriptors inherited from whoever started the
/// xtask without close-on-exec are not passed on (bash's tests count descriptors from 10), and
/// SIGINT and SIGQUIT are not ignored (a shell's background job ignores them, and its children
/// would inherit that; bash's trap tests print it).
pub fn clean_inheritance() {
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|entries| entries.flatten().filter_map(|entry| entry.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    for fd in fds.into_iter().filter(|&fd| fd > 2) {
        // SAFETY: setting FD_CLOEXEC on a descriptor number touches no memory; a number that is
        // not open (the directory listing's own, closed since) just fails with EBADF.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    for signal in [libc::SIGINT, libc::SIGQUIT] {
        // SAFETY: restoring the default disposition installs no handler code.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
}

/// Removes what the suite user left at the top of /tmp (tests killed half-way leave fixed names
/// such as /tmp/redir-test-2 behind, and the next run would trip on them). Only as root, where
/// the user is the xtask's own.
pub fn clean_tmp(who: Option<RunAs>) {
    use std::os::unix::fs::MetadataExt;
    let Some(who) = who else { return };
    let Ok(entries) = std::fs::read_dir("/tmp") else { return };
    for entry in entries.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else { continue };
        if meta.uid() != who.uid {
            continue;
        }
        let _ = if meta.is_dir() { std::fs::remove_dir_all(entry.path()) } else { std::fs::remove_file(entry.path()) };
    }
}

/// Creates `dir` (empty) and hands it to the user the suites run as.
pub fn fresh_dir(dir: &Path, who: Option<RunAs>) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    chown(dir, who)
}

/// Copies a directory tree (files and folders; symbolic links as links) and hands it to `who`.
pub fn copy_tree(from: &Path, to: &Path, who: Option<RunAs>) -> Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to).with_context(|| format!("removing {}", to.display()))?;
    }
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().context("running cp -a")?;
    if !status.success() {
        bail!("cp -a {} {} failed: {status}", from.display(), to.display());
    }
    if let Some(who) = who {
        let status = Command::new("chown")
            .args(["-R", &format!("{}:{}", who.uid, who.gid)])
            .arg(to)
            .status()
            .context("running chown")?;
        if !status.success() {
            bail!("chown -R {} failed: {status}", to.display());
        }
    }
    Ok(())
}

pub fn chown(path: &Path, who: Option<RunAs>) -> Result<()> {
    if let Some(who) = who {
        std::os::unix::fs::chown(path, Some(who.uid), Some(who.gid))
            .with_context(|| format!("chown {}", path.display()))?;
    }
    Ok(())
}

/// One program to run: its stdout and stderr both go to `log` (in order, as a terminal would
/// show them), and it is killed with its whole process group after `timeout`.
#[derive(Clone, Debug)]
pub struct Job {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    /// The complete environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub log: PathBuf,
    /// Clean the suite user's leftovers from /tmp first (only for suites run one job at a time).
    pub clean_tmp: bool,
}

impl Job {
    pub fn new(program: impl Into<PathBuf>, cwd: &Path, log: PathBuf, timeout: Duration) -> Job {
        Job {
            program: program.into(),
            args: Vec::new(),
            cwd: cwd.to_path_buf(),
            env: Vec::new(),
            timeout,
            log,
            clean_tmp: false,
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Job {
        self.args.push(arg.into());
        self
    }

    pub fn args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Job {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, name: &str, value: impl Into<String>) -> Job {
        self.env.push((name.to_string(), value.into()));
        self
    }
}

/// How a job ended, and everything it printed.
#[derive(Clone, Debug)]
pub struct Finished {
    /// `None` when it timed out or could not start.
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub output: String,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|status| status.success())
    }

    /// "exit 3", "signal 31", "timed out".
    pub fn describe(&self) -> String {
        match self.status {
            _ if self.timed_out => "timed out".to_string(),
            Some(status) => match (status.code(), status.signal()) {
                (Some(code), _) => format!("exit {code}"),
                (None, Some(signal)) => format!("signal {signal}"),
                _ => format!("{status}"),
            },
            None => "did not start".to_string(),
        }
    }
}

fn execute(job: &Job, who: Option<RunAs>) -> Finished {
    if job.clean_tmp {
        clean_tmp(who);
    }
    let failed = |why: String| Finished { status: None, timed_out: false, output: why };
    let log = match std::fs::File::create(&job.log) {
        Ok(file) => file,
        Err(error) => return failed(format!("creating {}: {error}", job.log.display())),
    };
    let log_err = match log.try_clone() {
        Ok(file) => file,
        Err(error) => return failed(format!("duplicating {}: {error}", job.log.display())),
    };
    let mut command = Command::new(&job.program);
    command
        .args(&job.args)
        .current_dir(&job.cwd)
        .env_clear()
        .envs(job.env.iter().map(|(name, value)| (name, value)))
        .envs(job.env.iter().all(|(name, _)| name != "PATH").then_some(("PATH", DEFAULT_PATH)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0);
    if let Some(who) = who {
        command.uid(who.uid).gid(who.gid);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return failed(format!("starting {}: {error}", job.program.display())),
    };
    let deadline = Instant::now() + job.timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(_) => break None,
        }
        if Instant::now() > deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Whatever the job left behind in its process group (a test's background processes).
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status();
    let output = std::fs::read(&job.log).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default();
    Finished { status, timed_out, output }
}

/// Runs `jobs` on at most `workers` at a time (the machine is shared: at most 2), in order of
/// submission, and returns their results in the same order. `label` names each job in the
/// progress lines printed on stderr.
pub fn run_all(
    jobs: &[Job],
    workers: usize,
    who: Option<RunAs>,
    label: &(dyn Fn(usize) -> String + Sync),
) -> Vec<Finished> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Finished>>> = Mutex::new(vec![None; jobs.len()]);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, 2) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(index) else { break };
                let finished = execute(job, who);
                eprintln!(
                    "  [{:>4}/{}] {:>6.0}s {:<10} {}",
                    index + 1,
                    jobs.len(),
                    started.elapsed().as_secs_f64(),
                    if finished.success() { "ok".to_string() } else { finished.describe() },
                    label(index)
                );
                if let Ok(mut results) = results.lock() {
                    results[index] = Some(finished);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    results
        .into_iter()
        .map(|result| result.unwrap_or(Finished { status: None, timed_out: false, output: String::new() }))
        .collect()
}

/// Removes the build directory's absolute prefix from a path, for shorter tables.
pub fn short_path(path: &Path, root: &Path) -> String {
    path.strip_prefix(root).map(|p| p.display().to_string()).unwrap_or_else(|_| path.display().to_string())
}
