//! Inside the guest: `xtask vm-test --guest CONFIG`, run as root by `/init`.
//!
//! It measures the kernel's landlock ABI, checks it against the ABI the matrix expects (on the
//! kernel command line), runs `h-testkit`'s kernel checks of each host ([`h_testkit::host_checks`],
//! the same the NixOS VM tests run), then every case of every host with `h-testkit`'s runner (the
//! one `cargo xtask test` uses: caller scripts, terminals, `--kill-on-deny` reruns; not the control
//! runs) as `h-test` and as root, skipping exactly the runs whose `[needs]` this guest does not
//! meet; without landlock every run gets `--allow-degraded` and the cases that
//! `holds_without_landlock` must pass. Everything it finds is reported as JSON lines ([`Message`]).

use std::io::Write as _;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use h_testkit::{host_checks, landlock_abi, AbiExpectation, Arguments, Machine, Run, Runner, User, Verdict, FOLDERS};

use super::protocol::{GuestConfig, Message};

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
    let expected: AbiExpectation = parameter("h_vm_abi=")
        .context("no h_vm_abi= on the kernel command line")?
        .parse()
        .map_err(anyhow::Error::msg)?;
    let arguments = Arguments { filter: parameter("h_vm_filter=").map(str::to_string), ..Arguments::default() };
    // QEMU runs the guest with software emulation (`-accel tcg`).
    let machine = Machine { emulated: true, ..Machine::measure() };
    let abi = landlock_abi();
    reporter.send(&Message::Kernel { release: machine.kernel_release.clone(), abi });
    let user = User::unprivileged(config.uid, config.gid);
    reporter.check(None, "kernel/landlock-abi".to_string(), &user, expected.problems(abi));

    for host in &config.hosts {
        let hello = host.cases.join(h_testkit::HELLO);
        if !hello.is_file() {
            bail!("{} is missing: the kernel checks run it", hello.display());
        }
        let (checks, enforced) = host_checks(&host.binary, &hello, abi, &user);
        for (check, problems) in checks {
            reporter.check(Some(&host.name), format!("{}/kernel/{check}", host.name), &user, problems);
        }
        // No control runs: they show an attack works without the sandbox, which does not depend
        // on the kernel, and `cargo xtask test` runs them; under emulation the slowest take
        // minutes (a bare bash burning CPU where the sandbox stops it after two seconds).
        let runner = Runner::new(&host.name, &host.binary, None, vec![user.clone(), User::root()])?
            .with_vars(host.vars.clone())
            .with_timeout_factor(config.timeout_factor)
            .skipping_unmet_needs(machine.clone());
        runner.run_folders(&host.cases, FOLDERS, &arguments, &mut |run| reporter.run(Some(&host.name), run));
        reporter.send(&Message::Host { host: host.name.clone(), enforced });
    }
    Ok(())
}
