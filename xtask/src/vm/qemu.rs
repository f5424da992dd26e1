//! Booting one kernel under QEMU (software emulation: `-accel tcg`) with the initramfs, keeping
//! its console in a log, and reading the guest's report ([`Message`] lines) into a row of the
//! table.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use h_testkit::{Tally, Verdict};

use super::kernels::{Kernel, KernelImage};
use super::protocol::Message;

/// How long one kernel may take from QEMU's start to its power-off.
const BOOT_TIMEOUT: Duration = Duration::from_secs(2700);

/// The guest's memory: the initramfs is unpacked into it and stays there.
const MEMORY: &str = "6G";

/// One host's counts on one kernel: a line of the table.
#[derive(Debug, Default)]
pub struct HostRow {
    pub host: String,
    pub tally: Tally,
    /// What `HOST --print-policy` marked enforced.
    pub enforced: String,
}

/// One kernel's outcome: a row of the table, one line per host.
pub struct Row {
    pub kernel: Kernel,
    pub release: String,
    /// The landlock ABI the guest measured (`none`), empty before it said.
    pub abi: String,
    /// Every run the guest reported: the hosts' and the kernel's own check.
    pub tally: Tally,
    pub hosts: Vec<HostRow>,
    pub seconds: u64,
    /// Why the kernel failed: failed runs, or what went wrong around them.
    pub failures: Vec<String>,
    /// The guest reported everything it ran.
    pub complete: bool,
    /// The hosts the guest must report, in order.
    pub expected_hosts: Vec<String>,
}

impl Row {
    pub fn ok(&self) -> bool {
        self.complete && self.tally.failed == 0 && self.failures.is_empty()
    }

    pub fn header() -> String {
        format!(
            "{:<6} {:<28} {:<8} {:<7} {:>6} {:>6} {:>7} {:>5}  {}",
            "kernel",
            "release",
            "landlock",
            "host",
            "passed",
            "failed",
            "skipped",
            "time",
            "enforced (HOST --print-policy)"
        )
    }

    pub fn lines(&self) -> Vec<String> {
        let release = if self.release.is_empty() { "(no result)" } else { self.release.as_str() };
        let abi = if self.abi.is_empty() { "?" } else { self.abi.as_str() };
        let missing = HostRow { host: "-".to_string(), ..HostRow::default() };
        let hosts: Vec<&HostRow> = if self.hosts.is_empty() { vec![&missing] } else { self.hosts.iter().collect() };
        hosts
            .iter()
            .map(|host| {
                let ok = self.ok() && host.tally.failed == 0;
                format!(
                    "{:<6} {:<28} {:<8} {:<7} {:>6} {:>6} {:>7} {:>4}s  {}{}",
                    self.kernel.version,
                    release,
                    abi,
                    host.host,
                    host.tally.passed,
                    host.tally.failed,
                    host.tally.skipped,
                    self.seconds,
                    if ok { "" } else { "FAILED; " },
                    host.enforced
                )
            })
            .collect()
    }

    fn new(kernel: Kernel, expected_hosts: &[String]) -> Row {
        Row {
            expected_hosts: expected_hosts.to_vec(),
            kernel,
            release: String::new(),
            abi: String::new(),
            tally: Tally::default(),
            hosts: Vec::new(),
            seconds: 0,
            failures: Vec::new(),
            complete: false,
        }
    }

    fn host(&mut self, name: &str) -> &mut HostRow {
        let index = match self.hosts.iter().position(|host| host.host == name) {
            Some(index) => index,
            None => {
                self.hosts.push(HostRow { host: name.to_string(), ..HostRow::default() });
                self.hosts.len() - 1
            }
        };
        &mut self.hosts[index]
    }

    /// Takes in one protocol message.
    fn read(&mut self, message: Message) {
        match message {
            Message::Kernel { release, abi } => {
                self.release = release;
                self.abi = abi.map_or_else(|| "none".to_string(), |abi| abi.to_string());
            }
            Message::Run { host, run, .. } => {
                self.tally.add(&run.verdict);
                if let Some(host) = host {
                    self.host(&host).tally.add(&run.verdict);
                }
                if matches!(run.verdict, Verdict::Failed { .. }) {
                    self.failures.push(run.to_string());
                }
            }
            Message::Host { host, enforced } => {
                let enforced = if enforced.is_empty() { "nothing".to_string() } else { enforced.join(" ") };
                self.host(&host).enforced = enforced;
            }
            Message::Done { runs } => {
                let received = self.tally.passed + self.tally.failed + self.tally.skipped;
                if runs == received {
                    self.complete = true;
                } else {
                    self.failures.push(format!("the guest reported {runs} runs, the console carried {received}"));
                }
            }
            Message::Error { message } => self.failures.push(format!("runner: {message}")),
        }
    }

    /// Reads the guest's whole console.
    pub fn read_console(&mut self, console: &str) {
        let mut exit = None;
        for line in console.lines() {
            if let Some(message) = Message::parse(line) {
                match message {
                    Ok(message) => self.read(message),
                    Err(error) => self.failures.push(format!("unreadable report line: {error}")),
                }
            } else if let Some(rest) = line.strip_prefix("H-VM-EXIT ") {
                exit = Some(rest.trim().to_string());
            } else if line.contains("Kernel panic") {
                self.failures.push(line.trim().to_string());
            }
        }
        let expected = self.kernel.abi.map_or_else(|| "none".to_string(), |abi| abi.to_string());
        if self.complete && self.abi != expected {
            self.failures.push(format!("landlock ABI {} where the matrix expects {expected}", self.abi));
        }
        let reported: Vec<&str> = self.hosts.iter().map(|host| host.host.as_str()).collect();
        let wanted: Vec<&str> = self.expected_hosts.iter().map(String::as_str).collect();
        if self.complete && reported != wanted {
            self.failures.push(format!("the guest reported hosts {reported:?}, not {wanted:?}"));
        }
        match exit.as_deref() {
            Some("0") => {}
            Some(code) => self.failures.push(format!("the runner exited with {code}")),
            None => self.failures.push("the guest's /init did not finish".to_string()),
        }
    }
}

/// Boots `kernel` with `initramfs`, keeping the console in `log`, and reads its report.
pub fn boot(
    kernel: Kernel,
    image: &KernelImage,
    initramfs: &Path,
    filter: Option<&str>,
    hosts: &[String],
    log: &Path,
) -> Row {
    let started = Instant::now();
    let mut row = Row::new(kernel, hosts);
    match boot_and_read(kernel, image, initramfs, filter, log) {
        Ok(console) => row.read_console(&console),
        Err(error) => row.failures.push(format!("{error:#}")),
    }
    row.seconds = started.elapsed().as_secs();
    if !row.complete && row.failures.is_empty() {
        row.failures.push(format!("the guest's report is incomplete (see {})", log.display()));
    }
    row
}

fn boot_and_read(
    kernel: Kernel,
    image: &KernelImage,
    initramfs: &Path,
    filter: Option<&str>,
    log: &Path,
) -> Result<String> {
    let expected = kernel.abi.map_or_else(|| "none".to_string(), |abi| abi.to_string());
    let mut append = format!(
        "console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init h_vm_kernel={} h_vm_abi={expected}",
        kernel.version
    );
    if let Some(filter) = filter {
        append.push_str(&format!(" h_vm_filter={filter}"));
    }
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(["-accel", "tcg", "-M", "pc", "-nodefaults", "-nographic", "-serial", "stdio"])
        .args(["-m", MEMORY, "-smp", "1", "-no-reboot"])
        .arg("-kernel")
        .arg(&image.vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", &append])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().with_context(|| format!("starting {command:?}"))?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let stderr = child.stderr.take().context("qemu stderr")?;
    let mut log_file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let _ = writeln!(log_file, "$ {command:?}\n# {}", image.package);
    let log_file = Mutex::new(log_file);
    let console = Mutex::new(String::new());
    let finished = std::thread::scope(|scope| -> Result<bool> {
        let console = &console;
        let log_file = &log_file;
        scope.spawn(move || {
            for line in BufReader::new(stdout).split(b'\n').map_while(std::result::Result::ok) {
                let line = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
                if let Ok(mut file) = log_file.lock() {
                    let _ = writeln!(file, "{line}");
                }
                if let Ok(mut console) = console.lock() {
                    console.push_str(&line);
                    console.push('\n');
                }
            }
        });
        scope.spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            if let Ok(mut file) = log_file.lock() {
                for line in text.lines() {
                    let _ = writeln!(file, "qemu: {line}");
                }
            }
        });
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("qemu exited with {status} (see {})", log.display());
                }
                return Ok(true);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })?;
    let console = console.into_inner().map_err(|_| anyhow::anyhow!("console reader panicked"))?;
    if !finished {
        bail!("the guest did not power off within {}s (see {})", BOOT_TIMEOUT.as_secs(), log.display());
    }
    Ok(console)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::kernels::KERNELS;
    use h_testkit::Run;

    #[test]
    fn a_console_becomes_a_row() {
        let mut lines = vec![
            "[    1.0] some kernel line".to_string(),
            Message::Kernel { release: "5.10.0-32-cloud-amd64".into(), abi: None }.line(),
        ];
        let hosts = ["hlua", "hsh"].map(String::from);
        for host in &hosts {
            let run = Run { name: format!("{host}/cases/hello"), user: Some("user".into()), verdict: Verdict::Passed };
            lines.push(Message::Run { host: Some(host.clone()), run, ms: 1 }.line());
            lines.push(Message::Host { host: host.clone(), enforced: vec![] }.line());
        }
        lines.push(Message::Done { runs: hosts.len() }.line());
        lines.push("H-VM-EXIT 0".into());
        let mut row = Row::new(KERNELS[0], &hosts);
        row.read_console(&lines.join("\n"));
        assert!(row.ok(), "{:?}", row.failures);
        assert_eq!(row.lines().len(), hosts.len());
        let mut other = Row::new(KERNELS[0], &["hlua".to_string()]);
        other.read_console(&lines.join("\n"));
        assert!(!other.ok(), "a host the guest was not to run");
        let mut lost = Row::new(KERNELS[0], &hosts);
        lost.read_console(
            &lines.iter().filter(|line| !line.contains("hsh/cases")).cloned().collect::<Vec<_>>().join("\n"),
        );
        assert!(!lost.ok());
        let mut wrong = Row::new(KERNELS[1], &hosts);
        wrong.read_console(&lines.join("\n"));
        assert!(!wrong.ok(), "6.1 must report ABI 2");
    }
}
