//! bash's own `tests/` (Debian's bash source package, the version of the machine's bash): every
//! `run-*` script, bare and under hsh, judged as bash's `run-all` judges it (the script's `diff`
//! against the `.right` file prints nothing and exits 0).
//!
//! The `run-*` harness itself runs outside any sandbox (it needs `diff`, `sed`, `grep`); what it
//! starts as `${THIS_SH} ./NAME.tests` runs under hsh. A bare run's `THIS_SH` goes through strace,
//! so a test that executes anything but bash counts as "needs a process" (an external program).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use super::observe;
use super::runner::{self, Job};
use super::source::{self, AptSource};
use super::table::{Comparison, Item, Need, Results};
use super::{Context, Host};

const BASH: &str = "/usr/bin/bash";
/// Helper programs of bash's tests (`make tests` builds them from support/).
const HELPERS: &[&str] = &["recho", "zecho", "printenv", "xcase"];

/// The tests directory of bash's source in the cache, fetching it when missing.
fn tests_dir(ctx: &Context) -> Result<PathBuf> {
    let version = String::from_utf8(
        std::process::Command::new("dpkg-query").args(["-W", "-f=${source:Version}", "bash"]).output()?.stdout,
    )?;
    let version = version.trim().to_string();
    if version.is_empty() {
        bail!("cannot read the installed bash's source version (dpkg-query -W bash)");
    }
    let suite_dir = ctx.cache.join("bash");
    let tests = suite_dir.join(format!("bash-{}", source::upstream(&version))).join("tests");
    if tests.join("run-all").exists() {
        return Ok(tests);
    }
    let step = format!(
        "bash's tests are missing: with deb-src lines for Debian in apt's sources, run \
         `mkdir -p {dir} && cd {dir} && apt-get source bash={version}`",
        dir = suite_dir.display()
    );
    eprintln!("fetching bash {version} (Debian source package)");
    let apt = AptSource::prepare(&ctx.cache).with_context(|| step.clone())?;
    apt.source("bash", &version, &suite_dir, false).with_context(|| step.clone())?;
    if !tests.join("run-all").exists() {
        bail!("{step}");
    }
    Ok(tests)
}

/// Builds recho, zecho, printenv and xcase (as bash's Makefile does) into `into`.
fn build_helpers(tests: &Path, into: &Path) -> Result<()> {
    std::fs::create_dir_all(into)?;
    let source_root = tests.parent().context("bash source root")?;
    for helper in HELPERS {
        let binary = into.join(helper);
        if binary.exists() {
            continue;
        }
        let status = std::process::Command::new("gcc")
            .args(["-w", "-O1", "-I"])
            .arg(source_root)
            .arg("-I")
            .arg(source_root.join("include"))
            .arg("-o")
            .arg(&binary)
            .arg(source_root.join("support").join(format!("{helper}.c")))
            .status()
            .context("running gcc")?;
        if !status.success() {
            bail!("building bash's test helper {helper} failed: {status}");
        }
    }
    Ok(())
}

fn write_script(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Lines of `diff` output (a change command such as `3c3` or `12,14d11`).
fn is_diff_command(line: &str) -> bool {
    let line = line.trim_end();
    let Some(at) = line.find(['a', 'c', 'd']) else { return false };
    let numbers = |part: &str| {
        !part.is_empty() && part.split(',').all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    };
    numbers(&line[..at]) && numbers(&line[at + 1..])
}

pub fn run(ctx: &Context, host: &Host) -> Result<Comparison> {
    let tests = tests_dir(ctx)?;
    let suite_dir = ctx.cache.join("bash");
    let helpers = suite_dir.join("helpers");
    build_helpers(&tests, &helpers)?;
    let mut names: Vec<String> = std::fs::read_dir(&tests)?
        .filter_map(|entry| entry.ok().map(|entry| entry.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.starts_with("run-") && !["run-all", "run-minimal", "run-gprof"].contains(&name.as_str()))
        .filter(|name| !name.ends_with(".orig") && !name.ends_with('~'))
        .collect();
    names.sort();
    let work = ctx.cache.join("work").join(&host.name).join("bash");
    runner::fresh_dir(&work, ctx.who)?;
    let mut host_options = super::common_options();
    let copies = [work.join("bare").join("tests"), work.join("host").join("tests")];
    // TMPDIR of each side: beside the copy, not in /tmp (the suite user's /tmp is cleaned per test).
    let tmpdirs = [work.join("bare").join("tmp"), work.join("host").join("tmp")];
    host_options.extend(["--allow-write".to_string(), copies[1].display().to_string()]);
    host_options.extend(["--allow-write".to_string(), tmpdirs[1].display().to_string()]);
    let strace = observe::strace_prefix(Path::new("$COMPAT_TRACE"), true)
        .join(" ")
        .replace("$COMPAT_TRACE", "\"$COMPAT_TRACE\"");
    let bare_sh = work.join("this-sh-bare");
    write_script(
        &bare_sh,
        &format!(
            "#!/bin/sh\n# THIS_SH of the bare run: bash, traced, with the environment hsh gives its script\n\
             exec env -i PATH=\"$PATH\" THIS_SH={BASH} TMPDIR=\"$TMPDIR\" strace {strace} {BASH} \"$@\"\n"
        ),
    )?;
    let host_sh = work.join("this-sh-host");
    write_script(
        &host_sh,
        &format!(
            "#!/bin/sh\n# THIS_SH of the host run\nexec {} {} --env THIS_SH={BASH} \
             --env TMPDIR=\"$TMPDIR\" -- \"$@\"\n",
            host.binary.display(),
            host_options.join(" ")
        ),
    )?;
    let mut jobs = Vec::new();
    for ((side, copy), tmp) in ["bare", "host"].iter().zip(&copies).zip(&tmpdirs) {
        runner::copy_tree(&tests, copy, ctx.who)?;
        runner::fresh_dir(tmp, ctx.who)?;
        for name in &names {
            let trace = work.join(format!("trace-{name}"));
            let _ = std::fs::remove_file(&trace);
            let path = format!(".:{}:/usr/local/bin:/usr/bin:/bin", helpers.display());
            let this_sh = if *side == "bare" { &bare_sh } else { &host_sh };
            jobs.push(
                Job::new("/bin/sh", copy, work.join(format!("{side}-{name}.log")), Duration::from_secs(600))
                    .arg(name.as_str())
                    .env("PATH", path)
                    .env("THIS_SH", this_sh.display().to_string())
                    .env("TMPDIR", tmp.display().to_string())
                    .env("BASH_TSTOUT", format!("{}/bashtst-{name}", tmp.display()))
                    .env("COMPAT_TRACE", trace.display().to_string()),
            );
            if let Some(job) = jobs.last_mut() {
                job.clean_tmp = true;
            }
        }
    }
    // One at a time, as run-all does: many tests use fixed names under /tmp.
    let label =
        |index: usize| format!("bash {} {}", names[index % names.len()], ["bare", &host.name][index / names.len()]);
    let finished = runner::run_all(&jobs, 1, ctx.who, &label);
    let mut bare = Results::new();
    let mut hosted = Results::new();
    for (index, run) in finished.iter().enumerate() {
        let name = &names[index % names.len()];
        let is_bare = index < names.len();
        let differs = run.output.lines().any(is_diff_command);
        let mut item = Item { passed: run.success() && !differs, ..Item::default() };
        if !item.passed {
            let first = run.output.lines().find(|line| line.starts_with("< ") || line.starts_with("> "));
            item.detail = format!("{}: {}", run.describe(), first.unwrap_or_else(|| run.output.trim()));
        }
        let id = name.trim_start_matches("run-").to_string();
        if is_bare {
            let trace = observe::read_trace(&work.join(format!("trace-{name}")), false, &|program| {
                program == BASH || program.ends_with("/bash")
            });
            if !trace.programs.is_empty() {
                item.needs.push(Need::Process);
                let programs: Vec<&str> = trace.programs.iter().map(|p| p.rsplit('/').next().unwrap_or(p)).collect();
                item.detail = format!("runs {}", programs.join(", "));
            }
            if trace.network {
                item.needs.push(Need::Network);
            }
            bare.insert(id, item);
        } else {
            item.refused = observe::refusals(&host.name, &run.output);
            if !item.passed && item.refused.is_empty() {
                item.hint = if run.output.contains(&format!("{}: no script given", host.name)) {
                    "script on standard input (a host runs a file)".to_string()
                } else {
                    super::table::errno_hint(&item.detail).unwrap_or("").to_string()
                };
            }
            hosted.insert(id, item);
        }
    }
    Ok(Comparison {
        title: format!(
            "bash {} `tests/` (run-* scripts)",
            tests
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().trim_start_matches("bash-").to_string())
                .unwrap_or_default()
        ),
        host: host.name.clone(),
        unit: "test scripts",
        bare_command: format!("cd tests && THIS_SH='{BASH}' PATH=.:HELPERS:$PATH sh run-NAME"),
        host_command: format!(
            "cd tests && THIS_SH='{} {} --env THIS_SH={BASH} --env TMPDIR --' sh run-NAME",
            host.name,
            host_options
                .join(" ")
                .replace(&copies[1].display().to_string(), "TESTS")
                .replace(&tmpdirs[1].display().to_string(), "TMPDIR")
        ),
        bare,
        hosted,
        notes: vec![format!(
            "A test \"needs a process\" when its bare run executed anything but bash (strace on THIS_SH): \
             bash's helpers recho/zecho/printenv/xcase (built from support/ as `make tests` does), cat, rm, … \
             Under hsh those are refused by design. Source: Debian's bash source package, tests in {}.",
            runner::short_path(&tests, &ctx.root)
        )],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_commands_are_recognised() {
        assert!(is_diff_command("3c3"));
        assert!(is_diff_command("12,14d11"));
        assert!(is_diff_command("0a1,2"));
        assert!(!is_diff_command("abc"));
        assert!(!is_diff_command("warning: all of these tests will fail if arrays have not"));
        assert!(!is_diff_command("c3"));
    }
}
