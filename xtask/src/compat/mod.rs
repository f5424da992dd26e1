//! `cargo xtask compat [HOST[=BINARY]...] [--jobs N]`: third-party test suites run bare and under
//! each host, one table per suite (docs/compat.md). Long; not part of `cargo xtask test`.
//!
//! | host    | suite                                   | bare interpreter           |
//! |---------|-----------------------------------------|----------------------------|
//! | hpython | CPython 3.11 `test` package (Debian)    | `/usr/bin/python3.11 -I -S` |
//! | hsh     | bash 5.2 `tests/` (Debian source)       | `bash`                     |
//! | hnode   | node 20 `test/parallel` (sample)        | `node`                     |
//! | hlua    | Lua 5.4.7 `testes/`                     | `lua5.4`                   |
//!
//! A host named alone is built from this tree (`cargo build --release`); `HOST=BINARY` measures
//! that binary instead. Suites are cached under `target/compat/`; per-item results go to
//! `target/compat/SUITE-HOST.tsv` and all tables to `target/compat/report.md`.

mod bash;
mod cpython;
mod lua;
mod node;
mod observe;
mod runner;
mod source;
mod table;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};

pub use runner::RunAs;

/// A host binary to measure.
pub struct Host {
    pub name: String,
    pub binary: PathBuf,
}

/// What every suite needs to know.
pub struct Context {
    pub root: PathBuf,
    /// `target/compat`
    pub cache: PathBuf,
    /// As root, the unprivileged user every run is made as.
    pub who: Option<RunAs>,
    /// Runs at a time (at most 2: the machine is shared).
    pub workers: usize,
}

const HOSTS: &[&str] = &["hpython", "hsh", "hnode", "hlua"];

/// The options every host run gets, as a user would give them: the script's directory, /tmp and
/// the local time readable (`-s -t -l`), limits that do not get in a test suite's way, and PATH
/// passed on (the bare runs have PATH too: [`runner::DEFAULT_PATH`] unless the suite sets one).
pub fn common_options() -> Vec<String> {
    let mut options: Vec<String> = ["-s", "-t", "-l", "--env", "PATH"].iter().map(|s| s.to_string()).collect();
    for limit in ["cpu=inf", "as=inf", "data=inf", "fsize=inf", "nofile=1024", "nproc=1024"] {
        options.extend(["-r".to_string(), limit.to_string()]);
    }
    options
}

fn usage() -> &'static str {
    "usage: cargo xtask compat [HOST[=BINARY]...] [--jobs N]   (HOST: hpython, hsh, hnode, hlua)"
}

/// The hosts asked for (a name, and a binary when one was given), and the runs at a time.
type Request = (Vec<(String, Option<PathBuf>)>, usize);

fn parse_hosts(root: &Path, arguments: &[String]) -> Result<Request> {
    let mut hosts = Vec::new();
    let mut workers = 2;
    let mut rest = arguments.iter();
    while let Some(argument) = rest.next() {
        if argument == "--jobs" || argument == "-j" {
            let Some(value) = rest.next() else { bail!("{}", usage()) };
            workers = value.parse().with_context(|| format!("--jobs {value}"))?;
            continue;
        }
        let (name, binary) = match argument.split_once('=') {
            Some((name, binary)) => (name, Some(root.join(binary))),
            None => (argument.as_str(), None),
        };
        if !HOSTS.contains(&name) {
            bail!("unknown host {name}; {}", usage());
        }
        hosts.push((name.to_string(), binary));
    }
    if hosts.is_empty() {
        hosts = HOSTS.iter().map(|name| (name.to_string(), None)).collect();
    }
    Ok((hosts, workers.clamp(1, 2)))
}

fn packages_for(host: &str) -> &'static [&'static str] {
    match host {
        "hpython" => &["python3.11", "libpython3.11-dev", "libpython3.11-testsuite"],
        "hsh" => &["bash", "strace", "dpkg-dev", "gcc"],
        "hnode" => &["strace", "xz-utils"],
        "hlua" => &["lua5.4", "strace", "curl"],
        _ => &[],
    }
}

fn shell_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default()
}

pub fn run(root: &Path, arguments: &[String]) -> Result<()> {
    let (hosts, workers) = parse_hosts(root, arguments)?;
    let mut packages: Vec<&str> = hosts.iter().flat_map(|(host, _)| packages_for(host).iter().copied()).collect();
    packages.sort_unstable();
    packages.dedup();
    crate::ensure_packages(&packages)?;
    // The machine is shared with other work: everything from here on runs at nice 15.
    let _ = Command::new("renice").args(["-n", "15", "-p", &std::process::id().to_string()]).output();
    let mut measured = Vec::new();
    for (name, binary) in hosts {
        let binary = match binary {
            Some(binary) => binary,
            None => {
                let manifest = crate::hosts::named(root, &name)?;
                crate::hosts::ensure_targets(std::slice::from_ref(&manifest))?;
                crate::hosts::build(root, &[&manifest], |_| Vec::new(), |_| {})?;
                crate::hosts::release_binary(root, &manifest)
            }
        };
        if !binary.is_file() {
            bail!("{name}: no binary at {}", binary.display());
        }
        measured.push(Host { name, binary });
    }
    runner::clean_inheritance();
    let ctx = Context { root: root.to_path_buf(), cache: root.join("target/compat"), who: runner::run_as()?, workers };
    std::fs::create_dir_all(&ctx.cache)?;
    let mut report = String::new();
    report.push_str(&format!("# cargo xtask compat {}\n\n", arguments.join(" ")));
    report.push_str(&format!(
        "- date: {}\n- machine: {} ({} cores), kernel {}\n- run as: {}\n",
        shell_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        shell_output("sh", &["-c", ". /etc/os-release; echo $PRETTY_NAME"]),
        shell_output("nproc", &[]),
        shell_output("uname", &["-r"]),
        if ctx.who.is_some() {
            format!("root, every run as the user {}", runner::TEST_USER)
        } else {
            "the caller".into()
        },
    ));
    for host in &measured {
        let version = shell_output(&host.binary.display().to_string(), &["-V"]);
        report.push_str(&format!("- {}: `{}` ({version})\n", host.name, runner::short_path(&host.binary, root)));
    }
    report.push('\n');
    let mut failures = Vec::new();
    for host in &measured {
        eprintln!("== {}", host.name);
        runner::clean_tmp(ctx.who);
        let result = match host.name.as_str() {
            "hpython" => cpython::run(&ctx, host),
            "hsh" => bash::run(&ctx, host),
            "hnode" => node::run(&ctx, host),
            _ => lua::run(&ctx, host),
        };
        match result {
            Ok(comparison) => {
                let table = comparison.render();
                println!("{table}");
                report.push_str(&table);
                report.push('\n');
                let details = ctx.cache.join(format!("{}.tsv", host.name));
                std::fs::write(&details, comparison.details())?;
                eprintln!("per-item results: {}", details.display());
            }
            Err(error) => {
                let text = format!("{}: suite not run: {error:#}", host.name);
                eprintln!("{text}");
                report.push_str(&format!("### {}\n\n{text}\n\n", host.name));
                failures.push(text);
            }
        }
    }
    let report_file = ctx.cache.join("report.md");
    std::fs::write(&report_file, &report)?;
    eprintln!("report: {}", report_file.display());
    if !failures.is_empty() {
        bail!("{} suite(s) could not run:\n{}", failures.len(), failures.join("\n"));
    }
    Ok(())
}
