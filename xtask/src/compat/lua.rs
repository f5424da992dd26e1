//! Lua 5.4.7's `testes/`: every file of all.lua's list, one at a time as all.lua runs it in user
//! mode (`_soft`, `_port`, `_nomsg`), bare (`lua5.4`) and under hlua.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};

use super::observe;
use super::runner::{self, Job};
use super::source;
use super::table::{Comparison, Item, Need, Results};
use super::{Context, Host};

const LUA: &str = "/usr/bin/lua5.4";
const VERSION: &str = "5.4.7";
const DRIVER: &str = include_str!("lua_driver.lua");
/// all.lua's files, in its order.
pub const FILES: &[&str] = &[
    "main.lua",
    "gc.lua",
    "db.lua",
    "calls.lua",
    "strings.lua",
    "literals.lua",
    "tpack.lua",
    "attrib.lua",
    "gengc.lua",
    "locals.lua",
    "constructs.lua",
    "code.lua",
    "big.lua",
    "cstack.lua",
    "nextvar.lua",
    "pm.lua",
    "utf8.lua",
    "api.lua",
    "events.lua",
    "vararg.lua",
    "closure.lua",
    "coroutine.lua",
    "goto.lua",
    "errors.lua",
    "math.lua",
    "sort.lua",
    "bitwise.lua",
    "verybig.lua",
    "files.lua",
];

/// The unpacked tests, fetched when missing: lua.org's tests tarball, else a local clone of
/// github.com/lua/lua at tag v5.4.7 (its testes/ folder).
fn tests_dir(ctx: &Context) -> Result<PathBuf> {
    let suite_dir = ctx.cache.join("lua");
    let from_tarball = suite_dir.join(format!("lua-{VERSION}-tests"));
    let from_git = suite_dir.join(format!("git-v{VERSION}")).join("testes");
    for dir in [&from_tarball, &from_git] {
        if dir.join("all.lua").exists() {
            return Ok(dir.clone());
        }
    }
    std::fs::create_dir_all(&suite_dir)?;
    let url = format!("https://www.lua.org/tests/lua-{VERSION}-tests.tar.gz");
    let tarball = suite_dir.join(format!("lua-{VERSION}-tests.tar.gz"));
    eprintln!("fetching {url}");
    if source::download(&url, &tarball) {
        source::untar(&tarball, &suite_dir, &[])?;
    } else if let Some(git) = source::local_clone("H_COMPAT_LUA_GIT", &["/work/.mirror/lua+lua/repo"]) {
        eprintln!("not reachable; using the clone at {} (tag v{VERSION})", git.display());
        source::git_archive(&git, &format!("v{VERSION}"), &["testes"], &suite_dir.join(format!("git-v{VERSION}")))?;
    }
    for dir in [from_tarball, from_git] {
        if dir.join("all.lua").exists() {
            return Ok(dir);
        }
    }
    bail!(
        "Lua {VERSION}'s tests are missing: download {url} and unpack it in {} (or set H_COMPAT_LUA_GIT to a \
         clone of github.com/lua/lua that has the tag v{VERSION})",
        suite_dir.display()
    )
}

fn lua_version(program: &Path) -> String {
    let out = std::process::Command::new(program).arg("-v").output();
    out.map(|out| String::from_utf8_lossy(&out.stdout).split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn run(ctx: &Context, host: &Host) -> Result<Comparison> {
    if !Path::new(LUA).exists() {
        bail!("the bare interpreter is missing: apt-get install lua5.4");
    }
    let tests = tests_dir(ctx)?;
    let work = ctx.cache.join("work").join(&host.name).join("lua");
    runner::fresh_dir(&work, ctx.who)?;
    let copies = [work.join("bare").join("testes"), work.join("host").join("testes")];
    let mut jobs = Vec::new();
    for (side, copy) in ["bare", "host"].iter().zip(&copies) {
        runner::copy_tree(&tests, copy, ctx.who)?;
        let driver = copy.join("lua_driver.lua");
        std::fs::write(&driver, DRIVER)?;
        runner::chown(&driver, ctx.who)?;
        for file in FILES {
            let log = work.join(format!("{side}-{file}.log"));
            let job = if *side == "bare" {
                Job::new("/usr/bin/strace", copy, log, Duration::from_secs(600))
                    .args(observe::strace_prefix(&work.join(format!("trace-{file}")), false))
                    .args([LUA, "lua_driver.lua", file])
            } else {
                Job::new(&host.binary, copy, log, Duration::from_secs(600)).args(host_options(copy)).args([
                    "--",
                    &driver.display().to_string(),
                    file,
                ])
            };
            jobs.push(job);
        }
    }
    let label =
        |index: usize| format!("lua {} {}", FILES[index % FILES.len()], ["bare", &host.name][index / FILES.len()]);
    let finished = runner::run_all(&jobs, ctx.workers, ctx.who, &label);
    let mut bare = Results::new();
    let mut hosted = Results::new();
    for (index, run) in finished.iter().enumerate() {
        let file = FILES[index % FILES.len()];
        let is_bare = index < FILES.len();
        let marker = format!("@@compat\tend\tpass\t{file}");
        let mut item = Item { passed: run.success() && run.output.contains(&marker), ..Item::default() };
        if !item.passed {
            let message = error_message(&run.output);
            item.detail = format!("{}: {message}", run.describe());
            item.hint = message.split_once(": ").map_or(message.as_str(), |(_, text)| text).to_string();
        }
        if is_bare {
            let trace = observe::read_trace(&work.join(format!("trace-{file}")), true, &|_| false);
            if !trace.programs.is_empty() {
                item.needs.push(Need::Process);
            }
            if trace.network {
                item.needs.push(Need::Network);
            }
            bare.insert(file.to_string(), item);
        } else {
            item.refused = observe::refusals(&host.name, &run.output);
            hosted.insert(file.to_string(), item);
        }
    }
    Ok(Comparison {
        title: format!("Lua {VERSION} `testes/` ({} files of all.lua)", FILES.len()),
        host: host.name.clone(),
        unit: "test files",
        bare_command: format!("cd testes && {LUA} lua_driver.lua FILE"),
        host_command: format!(
            "cd testes && {} {} -- lua_driver.lua FILE",
            host.name,
            host_options(Path::new("TESTES")).join(" ")
        ),
        bare,
        hosted,
        notes: vec![format!(
            "Bare interpreter: {} (Debian's lua5.4); {}'s embedded Lua is its own (mlua's vendored one). \
             lua_driver.lua sets all.lua's user-test globals (_soft, _port, _nomsg: no long, memory-hungry or \
             shell-dependent tests; main.lua, the test of the stand-alone lua program, returns at once under _port) \
             and runs the file with loadfile. Tests from {}.",
            lua_version(Path::new(LUA)),
            host.name,
            runner::short_path(&tests, &ctx.root)
        )],
    })
}

/// The error Lua reported (the interpreter's own line, else the line before the traceback),
/// without the program's name: `calls.lua:6: module 'debug' not found:`.
fn error_message(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let own = lines.iter().find(|line| line.starts_with("hlua: ") || line.starts_with(&format!("{LUA}: ")));
    let before_traceback = lines
        .iter()
        .rposition(|line| line.starts_with("stack traceback:"))
        .and_then(|at| at.checked_sub(1).and_then(|at| lines.get(at)));
    let last = lines.iter().rev().find(|line| !line.trim().is_empty());
    let line = own.or(before_traceback).or(last).map_or("", |line| line.trim());
    for prefix in ["hlua: runtime error: ", "hlua: syntax error: ", "hlua: ", &format!("{LUA}: ")] {
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
    line.to_string()
}

/// `-s -t -l`, the limits, and write access to the (copied) test directory, where a few files are
/// written next to the tests.
fn host_options(copy: &Path) -> Vec<String> {
    let mut options = super::common_options();
    options.extend(["--allow-write".to_string(), copy.display().to_string()]);
    options
}
