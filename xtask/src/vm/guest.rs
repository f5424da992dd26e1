//! Inside the guest: `xtask vm-test --guest CONFIG`, run as root by `/init`.
//!
//! It measures the kernel's landlock ABI, checks it against the ABI the matrix expects (on the
//! kernel command line), asserts what each host must enforce and refuse on this kernel, then runs
//! every case of every host with `h-testkit`'s runner (the one `cargo xtask test` uses: caller
//! scripts, terminals, `--kill-on-deny` reruns; not the control runs) as `h-test` and as root, skipping
//! exactly the runs whose `[needs]` this guest does not meet. Everything it finds is reported as
//! JSON lines ([`Message`]). Per kernel it asserts:
//!
//! - the landlock ABI measured here equals the matrix's, and `HOST --version` reports it;
//! - `--print-policy` marks exactly the features of that ABI enforced; ABI < 4 lists TCP as not
//!   enforced (and seccomp allows no socket but AF_UNIX ones); ABI >= 6 lists the signal and
//!   abstract-socket scopes as enforced;
//! - without landlock: the host refuses to run without `--allow-degraded` (exit 1, stderr names
//!   landlock, the script does not run), `--allow-degraded --print-policy` says NOT ENFORCED, and
//!   every case runs with `--allow-degraded`; the host's `degraded_holds` cases must run and pass.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use h_testkit::{execute, landlock_abi, status_problems, Arguments, Machine, Outcome, Run, Runner, User, Verdict};

use super::protocol::{GuestConfig, GuestHost, Message};

/// The case folders of a host.
pub const FOLDERS: &[&str] = &["cases", "attacks"];

/// Prints the protocol lines, counting the runs and timing each from the end of the previous.
struct Reporter {
    runs: usize,
    since: Instant,
}

impl Reporter {
    fn send(&mut self, message: &Message) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}", message.line());
        let _ = stdout.flush();
    }

    fn run(&mut self, host: Option<&str>, run: Run) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.runs += 1;
        self.send(&Message::Run { host: host.map(str::to_string), run, ms });
        self.since = Instant::now();
    }

    fn check(&mut self, host: Option<&str>, name: String, user: &User, problems: Vec<String>) {
        let verdict = if problems.is_empty() {
            Verdict::Passed
        } else {
            Verdict::Failed { about: "a kernel check".to_string(), problems }
        };
        self.run(host, Run { name, user: Some(user.label.clone()), verdict });
    }
}

pub fn main(arguments: &[String]) -> Result<()> {
    let mut reporter = Reporter { runs: 0, since: Instant::now() };
    let result = run(arguments, &mut reporter);
    if let Err(error) = &result {
        reporter.send(&Message::Error { message: format!("{error:#}") });
    }
    reporter.send(&Message::Done { runs: reporter.runs });
    result
}

fn run(arguments: &[String], reporter: &mut Reporter) -> Result<()> {
    let config_path = arguments.first().context("usage: xtask vm-test --guest CONFIG")?;
    let text = std::fs::read_to_string(config_path).with_context(|| format!("reading {config_path}"))?;
    let config: GuestConfig = serde_json::from_str(&text).with_context(|| format!("reading {config_path}"))?;
    let cmdline = std::fs::read_to_string("/proc/cmdline").context("reading /proc/cmdline")?;
    let parameter = |name: &str| cmdline.split_whitespace().find_map(|word| word.strip_prefix(name));
    let expected = parameter("h_vm_abi=").context("no h_vm_abi= on the kernel command line")?;
    let arguments = Arguments { filter: parameter("h_vm_filter=").map(str::to_string), skip: Vec::new() };
    // QEMU runs the guest with software emulation (`-accel tcg`).
    let machine = Machine { emulated: true, ..Machine::measure() };
    let abi = landlock_abi();
    let abi_text = abi.map_or_else(|| "none".to_string(), |abi| abi.to_string());
    reporter.send(&Message::Kernel { release: machine.kernel_release.clone(), abi });
    let user = User::unprivileged(config.uid, config.gid);
    let problems = if abi_text == expected {
        Vec::new()
    } else {
        vec![format!("the kernel reports landlock ABI {abi_text} where {expected} is expected")]
    };
    reporter.check(None, "kernel/landlock-abi".to_string(), &user, problems);

    for host in &config.hosts {
        let enforced = host_checks(host, abi, &user, reporter)?;
        // No control runs: they show an attack works without the sandbox, which does not depend
        // on the kernel, and `cargo xtask test` runs them; under emulation the slowest take
        // minutes (a bare bash burning CPU where the sandbox stops it after two seconds).
        let mut runner = Runner::new(&host.name, &host.binary, None, vec![user.clone(), User::root()])?
            .with_vars(host.vars.clone())
            .with_timeout_factor(config.timeout_factor)
            .skipping_unmet_needs(machine.clone());
        if abi.is_none() {
            runner = runner.with_options(vec!["--allow-degraded".to_string()]);
        }
        let mut verdicts: BTreeMap<String, Vec<Verdict>> = BTreeMap::new();
        runner.run_folders(&host.cases, FOLDERS, &arguments, &mut |run| {
            verdicts.entry(run.name.clone()).or_default().push(run.verdict.clone());
            reporter.run(Some(&host.name), run);
        });
        if abi.is_none() && arguments.filter.is_none() {
            let problems = degraded_problems(host, &verdicts);
            reporter.check(Some(&host.name), format!("{}/kernel/degraded-holds", host.name), &user, problems);
        }
        reporter.send(&Message::Host { host: host.name.clone(), enforced });
    }
    Ok(())
}

/// What is wrong with the cases that must hold without landlock: each ran, and passed, as
/// every user it names.
fn degraded_problems(host: &GuestHost, verdicts: &BTreeMap<String, Vec<Verdict>>) -> Vec<String> {
    let mut problems = Vec::new();
    for case in &host.degraded_holds {
        let name = format!("{}/{case}", host.name);
        match verdicts.get(&name) {
            None => problems.push(format!("{name} did not run")),
            Some(list) if list.iter().all(|verdict| *verdict == Verdict::Passed) => {}
            Some(list) => problems.push(format!("{name} must hold without landlock: {list:?}")),
        }
    }
    problems
}

/// The short name of what each landlock ABI adds, as `--print-policy` lists it.
fn feature_tag(abi: u32) -> &'static str {
    match abi {
        1 => "fs",
        2 => "refer",
        3 => "truncate",
        4 => "tcp",
        5 => "ioctl-dev",
        6 => "scopes",
        7 => "audit",
        9 => "unix-connect",
        _ => "?",
    }
}

/// `--version` and `--print-policy` against the measured ABI and, without landlock, the refusal;
/// returns what the host reported as enforced.
fn host_checks(host: &GuestHost, abi: Option<u32>, user: &User, reporter: &mut Reporter) -> Result<Vec<String>> {
    let script = host.cases.join("cases/hello/main");
    if !script.is_file() {
        bail!("{} is missing: the kernel checks run it", script.display());
    }
    let quick = |arguments: &[&str]| -> Outcome {
        let mut command = Command::new(&host.binary);
        command.args(arguments).arg(&script).current_dir("/").env_clear().env("PATH", h_testkit::CASE_PATH);
        command.uid(user.uid).gid(user.gid);
        execute(command, None, None, Duration::from_secs(60))
    };
    let mut check =
        |name: &str, problems| reporter.check(Some(&host.name), format!("{}/kernel/{name}", host.name), user, problems);

    let version = {
        let mut command = Command::new(&host.binary);
        command.arg("--version").current_dir("/").env_clear().uid(user.uid).gid(user.gid);
        execute(command, None, None, Duration::from_secs(60))
    };
    let wanted = abi.map_or_else(|| "no landlock".to_string(), |abi| format!("landlock ABI {abi}"));
    let mut problems = status_problems(&version, None, Some(0));
    if !version.stdout.contains(&wanted) {
        problems.push(format!("--version lacks {wanted:?}: {:?}", version.stdout));
    }
    check("version", problems);

    let policy = quick(&["--print-policy"]);
    let mut problems = status_problems(&policy, None, Some(0));
    let tags = match abi {
        None => {
            if !policy.stdout.contains("UNAVAILABLE: the kernel has no landlock") {
                problems.push("--print-policy does not say landlock is unavailable".to_string());
            }
            vec!["landlock unavailable: refused without --allow-degraded".to_string()]
        }
        Some(abi) => enforced_features(abi, &policy.stdout, &mut problems),
    };
    check("print-policy", problems);

    if abi.is_none() {
        let refused = quick(&[]);
        let mut problems = status_problems(&refused, None, Some(1));
        if !refused.stderr.contains("landlock") {
            problems.push(format!("stderr does not name landlock: {:?}", refused.stderr));
        }
        if !refused.stdout.is_empty() {
            problems.push(format!("the script ran: stdout {:?}", refused.stdout));
        }
        check("refuses-without-landlock", problems);
        let degraded = quick(&["--allow-degraded", "--print-policy"]);
        let mut problems = status_problems(&degraded, None, Some(0));
        if !degraded.stdout.contains("NOT ENFORCED") {
            problems.push("--allow-degraded --print-policy does not say landlock is not enforced".to_string());
        }
        check("degraded-policy", problems);
    }
    Ok(tags)
}

/// Whether a rule line of `--print-policy` allows socket(2) for a family other than AF_UNIX (a
/// socketpair, or a unix socket, reaches no network).
fn allows_network_socket(line: &str) -> bool {
    let Some(rest) = line.trim_start().strip_prefix("allow socket") else { return false };
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return false;
    }
    let unix_only = rest
        .trim_start()
        .strip_prefix("if arg0 (domain) is one of AF_UNIX=0x1")
        .is_some_and(|tail| tail.is_empty() || tail.starts_with(" and "));
    !unix_only
}

/// The features `--print-policy` marks enforced, checked against `abi`: each `[x]`/`[ ]` line
/// ends in `(ABI N)` and is marked exactly when `abi >= N`.
fn enforced_features(abi: u32, policy: &str, problems: &mut Vec<String>) -> Vec<String> {
    let mut tags = Vec::new();
    let mut listed = 0;
    for line in policy.lines().map(str::trim) {
        let (marked, rest) = if let Some(rest) = line.strip_prefix("[x] ") {
            (true, rest)
        } else if let Some(rest) = line.strip_prefix("[ ] ") {
            (false, rest)
        } else {
            continue;
        };
        let needs = rest.rsplit_once("(ABI ").and_then(|(_, tail)| tail.strip_suffix(')')).and_then(|n| n.parse().ok());
        let Some(needs) = needs else {
            problems.push(format!("unreadable feature line {line:?}"));
            continue;
        };
        listed += 1;
        if marked != (abi >= needs) {
            problems.push(format!("ABI {abi} but --print-policy says {line:?}"));
        }
        if marked {
            tags.push(feature_tag(needs).to_string());
        }
    }
    if listed == 0 {
        problems.push("--print-policy lists no landlock features".to_string());
    }
    if abi < 4 && !policy.contains("[ ] network: TCP bind and connect") {
        problems.push(format!("ABI {abi} has no TCP rules, but --print-policy does not say so"));
    }
    if abi >= 6 && !policy.contains("[x] scope: abstract unix sockets and signals") {
        problems.push(format!("ABI {abi} has the scopes, but --print-policy does not list them enforced"));
    }
    if abi < 4 {
        // Without landlock's TCP rules the network is closed by seccomp alone.
        if policy.lines().any(allows_network_socket) {
            problems.push(format!("ABI {abi} has no TCP rules, and seccomp allows socket beyond AF_UNIX"));
        }
        tags.push("(no tcp: seccomp allows no network socket)".to_string());
    }
    tags
}

/// The feature lines of `--print-policy` as the hosts print them (a host's `print-policy` case
/// checks the real output), against what each ABI must show.
#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "  landlock ABI 6\n    [x] filesystem (ABI 1)\n    [x] refer (ABI 2)\n    \
                          [x] truncate (ABI 3)\n    [x] network: TCP bind and connect (ABI 4)\n    \
                          [x] ioctl on devices (ABI 5)\n    [x] scope: abstract unix sockets and signals (ABI 6)\n    \
                          [ ] audit (ABI 7)\n";

    #[test]
    fn features_follow_the_abi() {
        let mut problems = Vec::new();
        let tags = enforced_features(6, POLICY, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(tags, ["fs", "refer", "truncate", "tcp", "ioctl-dev", "scopes"]);
        let mut problems = Vec::new();
        enforced_features(7, POLICY, &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let mut problems = Vec::new();
        enforced_features(2, POLICY, &mut problems);
        assert!(problems.len() >= 4, "{problems:?}");
    }

    /// Without landlock's TCP rules seccomp must allow no socket(2) but AF_UNIX ones; a
    /// socketpair is no network.
    #[test]
    fn only_socket_itself_opens_the_network() {
        let abi2 = "  landlock ABI 2\n    [x] filesystem (ABI 1)\n    [x] refer (ABI 2)\n    \
                    [ ] network: TCP bind and connect (ABI 4)\n";
        let socket_problems = |rules: &str| {
            let mut problems = Vec::new();
            enforced_features(2, &format!("{abi2}{rules}"), &mut problems);
            problems.iter().filter(|problem| problem.contains("seccomp allows socket")).count()
        };
        assert_eq!(socket_problems("  allow socketpair if arg0 (domain) is one of AF_UNIX=0x1\n"), 0);
        assert_eq!(socket_problems("  errno 13 socket if arg0 (domain) is one of AF_UNIX=0x1\n"), 0);
        assert_eq!(socket_problems("  allow socket if arg0 (domain) is one of AF_INET=0x2\n"), 1);
        let unix = "  allow socket if arg0 (domain) is one of AF_UNIX=0x1 and arg1 (type) has no bit outside \
                    SOCK_STREAM=0x1|SOCK_CLOEXEC=0x80000\n";
        assert_eq!(socket_problems(unix), 0);
        assert_eq!(socket_problems("  allow socket if arg0 (domain) is one of AF_UNIX=0x1, AF_INET=0x2\n"), 1);
        assert_eq!(socket_problems("  allow socket\n"), 1);
    }

    #[test]
    fn degraded_cases_must_run_and_pass() {
        let host = GuestHost {
            name: "hsh".into(),
            binary: "/bin/hsh".into(),
            cases: "/cases/hsh".into(),
            vars: vec![],
            degraded_holds: vec!["attacks/a".into(), "attacks/b".into(), "attacks/c".into()],
        };
        let mut verdicts = BTreeMap::new();
        verdicts.insert("hsh/attacks/a".to_string(), vec![Verdict::Passed, Verdict::Passed]);
        verdicts.insert("hsh/attacks/b".to_string(), vec![Verdict::Passed, Verdict::Skipped("x".into())]);
        let problems = degraded_problems(&host, &verdicts);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("attacks/b") && problems[1].contains("attacks/c did not run"));
    }
}
