//! `cargo xtask bench [--breakdown] [HOST...]`: each host against its bare interpreter on the
//! same workloads, in interleaved rounds (each round runs the bare command, the host and any
//! peer once each, one right after the other, under the same clean environment), printed as one
//! table (median times, the median of the round-by-round ratios with its quartiles, and whether
//! it meets the row's goal from the manifest) and written to `target/bench/overhead.md`; where
//! bubblewrap or firejail is installed, the same workload under it too. `--breakdown` builds the
//! hosts with the `timing` feature and prints where the start-up time goes, stage by stage
//! (median of many runs), from the spawn to the caller's wait, with the bare interpreter's whole
//! run beside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use h_testkit::{Manifest, Workload};

/// The rows of the table: each host's workloads from its manifest (`[bench]` of
/// `hosts/HOST/host.toml`), with the bare interpreter it is compared with.
fn rows(root: &Path) -> Result<Vec<(Manifest, Workload)>> {
    let manifests = h_testkit::manifests(root).map_err(anyhow::Error::msg)?;
    Ok(manifests
        .into_iter()
        .flat_map(|manifest| {
            manifest.bench.workloads.clone().into_iter().map(move |workload| (manifest.clone(), workload))
        })
        .collect())
}

const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// One command's times over the interleaved rounds, in milliseconds.
struct Measured {
    times: Vec<f64>,
}

impl Measured {
    fn median(&self) -> f64 {
        median(&self.times)
    }

    /// The spread: the median of the absolute deviations from the median.
    fn spread(&self) -> f64 {
        let middle = self.median();
        median(&self.times.iter().map(|time| (time - middle).abs()).collect::<Vec<_>>())
    }

    /// The median and quartiles of this command's time over `base`'s, round by round: each ratio
    /// compares two runs made one right after the other.
    fn paired_ratio(&self, base: &Measured) -> (f64, f64, f64) {
        let mut ratios: Vec<f64> = self.times.iter().zip(&base.times).map(|(time, bare)| time / bare).collect();
        ratios.sort_by(f64::total_cmp);
        let at = |fraction: f64| ratios[((ratios.len() - 1) as f64 * fraction).round() as usize];
        (at(0.5), at(0.25), at(0.75))
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        length if length % 2 == 1 => sorted[length / 2],
        length => (sorted[length / 2 - 1] + sorted[length / 2]) / 2.0,
    }
}

/// One run of `command` (a program and its arguments) under the clean environment, its stdout a
/// pipe read to the end and thrown away (as a reader of the output would), stderr discarded:
/// the wall time from the spawn to the exit, in milliseconds.
fn time_once(root: &Path, program: &Path, command: &[String]) -> Result<f64> {
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(&command[1..])
        .current_dir(root)
        .env_clear()
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", command.join(" ")))?;
    if let Some(mut output) = child.stdout.take() {
        std::io::copy(&mut output, &mut std::io::sink())?;
    }
    let status = child.wait()?;
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    if !status.success() {
        bail!("{} failed: {status}", command.join(" "));
    }
    Ok(elapsed)
}

/// `name` as a path: itself where it names one, else found in [`PATH`]. Spawned by path, the
/// runs start through `posix_spawn` (the standard library looks a name up in a changed PATH by
/// forking the benchmark itself first, which would add its own, larger fork to every run).
fn program_path(root: &Path, name: &str) -> Result<PathBuf> {
    if name.contains('/') {
        return Ok(root.join(name));
    }
    PATH.split(':')
        .map(|directory| Path::new(directory).join(name))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("{name} is not in {PATH}"))
}

/// Runs `commands` in interleaved rounds: every round runs each command once, one right after
/// the other, starting from a different command each round (so none always follows the same
/// one), after three warm-up rounds. A drift of the machine's speed then reaches every command
/// alike, and each round gives a pair of runs to compare.
fn paired(root: &Path, commands: &[Vec<String>], rounds: u32) -> Result<Vec<Measured>> {
    let mut measured: Vec<Measured> = commands.iter().map(|_| Measured { times: Vec::new() }).collect();
    let programs = commands.iter().map(|command| program_path(root, &command[0])).collect::<Result<Vec<_>>>()?;
    const WARM_UP: u32 = 3;
    for round in 0..WARM_UP + rounds {
        for offset in 0..commands.len() {
            let index = (round as usize + offset) % commands.len();
            let time = time_once(root, &programs[index], &commands[index])?;
            if round >= WARM_UP {
                measured[index].times.push(time);
            }
        }
    }
    Ok(measured)
}

fn installed(program: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {program}")]).output().is_ok_and(|out| out.status.success())
}

/// A peer sandbox around the bare command, comparable to the host's default policy.
fn peers(root: &Path, bare: &str, script: &str) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    if installed("bwrap") {
        found.push((
            "bubblewrap",
            format!(
                "bwrap --ro-bind /usr /usr --ro-bind /lib /lib --ro-bind /lib64 /lib64 --ro-bind /bin /bin \
                 --ro-bind /etc /etc --ro-bind examples /examples --chdir / --dev /dev --proc /proc \
                 --unshare-all --die-with-parent --new-session {bare} {script}"
            ),
        ));
    }
    if installed("firejail") {
        found.push(("firejail", format!("firejail --quiet --noprofile --net=none {bare} {script}")));
    }
    // A peer that cannot run here (no user namespaces, say) is left out rather than failing the row.
    found.retain(|(_, command)| {
        Command::new("sh")
            .args(["-c", &format!("{command} > /dev/null 2>&1")])
            .current_dir(root)
            .status()
            .is_ok_and(|status| status.success())
    });
    found
}

pub fn run(root: &Path, arguments: &[String]) -> Result<()> {
    let breakdown = arguments.iter().any(|argument| argument == "--breakdown");
    let only: Vec<&String> = arguments.iter().filter(|argument| !argument.starts_with("--")).collect();
    let wanted = |host: &str| only.is_empty() || only.iter().any(|name| *name == host);
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let rows: Vec<(Manifest, Workload)> =
        rows(root)?.into_iter().filter(|(manifest, _)| wanted(&manifest.name)).collect();
    let mut hosts: Vec<&str> = rows.iter().map(|(manifest, _)| manifest.name.as_str()).collect();
    hosts.dedup();
    let manifests: Vec<&Manifest> = hosts
        .iter()
        .filter_map(|host| rows.iter().map(|(manifest, _)| manifest).find(|manifest| manifest.name == *host))
        .collect();
    if breakdown {
        return breakdowns(root, &rows, &manifests);
    }
    crate::hosts::build(root, &manifests, |_| Vec::new(), |_| {})?;
    let mut table = String::from(
        "| host | workload | bare (ms) | host (ms) | host / bare | goal | peers |\n|---|---|---|---|---|---|---|\n",
    );
    let (mut with_goal, mut met) = (0, 0);
    for (manifest, workload) in &rows {
        let (host, bare, script) = (&manifest.name, manifest.bench.bare.join(" "), workload.script.join(" "));
        let (workload, rounds, goal) = (&workload.name, workload.runs, workload.goal);
        let binary = crate::hosts::release_binary(root, manifest);
        let mut commands = vec![format!("{bare} {script}"), format!("{} {script}", binary.display())];
        let peer_rows = peers(root, &bare, &script);
        commands.extend(peer_rows.iter().map(|(_, command)| command.clone()));
        let argvs: Vec<Vec<String>> =
            commands.iter().map(|command| command.split_whitespace().map(str::to_string).collect()).collect();
        eprintln!("bench: {host}: {workload} ({rounds} rounds)");
        let measured = paired(root, &argvs, rounds)?;
        let (ratio, low, high) = measured[1].paired_ratio(&measured[0]);
        let peer_text: Vec<String> = peer_rows
            .iter()
            .enumerate()
            .map(|(index, (name, _))| format!("{name} {:.2}×", measured[index + 2].paired_ratio(&measured[0]).0))
            .collect();
        let goal_text = match goal {
            Some(goal) => {
                with_goal += 1;
                let reached = ratio <= goal;
                met += usize::from(reached);
                format!("≤ {goal:.2}× {}", if reached { "met" } else { "not met" })
            }
            None => "–".to_string(),
        };
        let line = format!(
            "| {host} | {workload} | {:.2} ± {:.2} | {:.2} ± {:.2} | {ratio:.2}× ({low:.2}–{high:.2}) | {goal_text} | {} |\n",
            measured[0].median(),
            measured[0].spread(),
            measured[1].median(),
            measured[1].spread(),
            if peer_text.is_empty() { "–".to_string() } else { peer_text.join(", ") }
        );
        print!("{line}");
        table.push_str(&line);
    }
    table.push_str(&format!(
        "\nGoals met in this run (the median paired ratio at most the goal): {met} of {with_goal}.\n"
    ));
    std::fs::write(out_dir.join("overhead.md"), &table)?;
    println!("\n{table}");
    Ok(())
}

/// One process's marks: (stage, microseconds).
type Marks = Vec<(String, u64)>;

/// The host's and the supervisor's marks of one run.
fn parse_marks(stderr: &str) -> Option<(Marks, Marks)> {
    let mut processes: BTreeMap<String, Marks> = BTreeMap::new();
    for line in stderr.lines().filter_map(|line| line.strip_prefix("h-timing ")) {
        let (pid, rest) = line.split_once(' ')?;
        let (stage, at) = rest.rsplit_once(' ')?;
        processes.entry(pid.to_string()).or_default().push((stage.to_string(), at.parse().ok()?));
    }
    let has = |marks: &Marks, wanted: &str| marks.iter().any(|(stage, _)| stage == wanted);
    let host = processes.values().find(|marks| has(marks, "fork"))?.clone();
    let supervisor = processes.values().find(|marks| has(marks, "supervisor: host ended"))?.clone();
    Some((host, supervisor))
}

/// CLOCK_MONOTONIC in microseconds, the clock of the hosts' timing marks.
fn monotonic_micros() -> u64 {
    // SAFETY: an all-zero timespec is valid storage; clock_gettime fills it.
    let mut time: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: CLOCK_MONOTONIC and a writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut time) };
    time.tv_sec as u64 * 1_000_000 + time.tv_nsec as u64 / 1000
}

/// Builds the hosts with start-up timestamps and prints the median time of each stage, from the
/// spawn (the caller's clock, the same monotonic clock as the marks) to the caller's wait, and
/// the bare interpreter's whole run beside it.
fn breakdowns(root: &Path, rows: &[(Manifest, Workload)], manifests: &[&Manifest]) -> Result<()> {
    let target = root.join("target/timing");
    let timing = |host: &str| vec!["--features".to_string(), format!("{host}/timing")];
    crate::hosts::build(root, manifests, timing, |build| _ = build.env("CARGO_TARGET_DIR", &target))?;
    const RUNS: usize = 200;
    for manifest in manifests {
        let host = &manifest.name;
        let hello = rows.iter().find(|(row, workload)| row.name == *host && workload.name == "hello");
        let Some((_, workload)) = hello else { continue };
        let script = &workload.script[0];
        let binary = crate::hosts::binary_in(&target, manifest);
        let mut stages: Vec<(String, Vec<u64>)> = Vec::new();
        let mut record = |stage: String, micros: u64| match stages.iter_mut().find(|(known, _)| *known == stage) {
            Some((_, values)) => values.push(micros),
            None => stages.push((stage, vec![micros])),
        };
        // The bare interpreter runs once after each run of the host, so that both see the same
        // machine (its speed drifts within minutes).
        let bare = program_path(root, &manifest.bench.bare[0])?;
        let mut bare_command = manifest.bench.bare.clone();
        bare_command.extend(workload.script.iter().cloned());
        let bare_stage = "the bare interpreter, spawn to wait".to_string();
        for _ in 0..RUNS {
            let spawned = monotonic_micros();
            let output = Command::new(&binary)
                .arg(script)
                .current_dir(root)
                .env_clear()
                .env("PATH", PATH)
                .output()
                .with_context(|| format!("running {}", binary.display()))?;
            let waited = monotonic_micros();
            let Some((host_marks, supervisor_marks)) = parse_marks(&String::from_utf8_lossy(&output.stderr)) else {
                bail!("{host}: the timing build printed no marks");
            };
            let first = host_marks.first().map_or(0, |(_, at)| *at);
            record("before main (exec, the loader, the C library)".to_string(), first.saturating_sub(spawned));
            for pair in host_marks.windows(2) {
                record(format!("host: {}", pair[1].0), pair[1].1.saturating_sub(pair[0].1));
            }
            let host_end = host_marks.last().map_or(0, |(_, at)| *at);
            let mut previous = host_end;
            for (stage, at) in &supervisor_marks {
                if !stage.starts_with("supervisor: host ended")
                    && !stage.starts_with("supervisor: run")
                    && !stage.starts_with("supervisor: output")
                {
                    continue;
                }
                record(stage.clone(), at.saturating_sub(previous));
                previous = *at;
            }
            record("total from main to the supervisor's exit".to_string(), previous.saturating_sub(first));
            record("after it (the supervisor's exit, the caller's wait)".to_string(), waited.saturating_sub(previous));
            record("total from the spawn to the caller's wait".to_string(), waited.saturating_sub(spawned));
            let bare_millis = time_once(root, &bare, &bare_command)?;
            record(bare_stage.clone(), (bare_millis * 1000.0) as u64);
        }
        println!("\n{host}: median µs per stage over {RUNS} runs of {script} (cargo xtask bench --breakdown)");
        println!("  (the bare interpreter: {}, once after each run)", bare_command.join(" "));
        println!(
            "  (each stage: from the previous mark; \"supervisor: host ended\" is measured from the host's last mark)"
        );
        for (stage, mut values) in stages {
            values.sort_unstable();
            println!("  {stage:<52} {:>6}", values[values.len() / 2]);
        }
    }
    Ok(())
}
