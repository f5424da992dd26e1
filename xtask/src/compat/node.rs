//! A sample of node's `test/parallel` (from the node 20 source: Debian's nodejs source package of
//! the machine's major version, or a local clone at the exact tag), each file bare (`node FILE`,
//! with the file's `// Flags:`) and under hnode. node's harness (`test/common`) is used unpatched.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use super::observe;
use super::runner::{self, Job};
use super::source::{self, AptSource};
use super::table::{Comparison, Item, Need, Results};
use super::{Context, Host};

const NODE: &str = "/usr/bin/node";
/// The families of test/parallel that scripts lean on (files named test-PREFIX-*.js or .mjs).
pub const PREFIXES: &[&str] = &[
    "fs",
    "buffer",
    "path",
    "url",
    "util",
    "string-decoder",
    "querystring",
    "timers",
    "events",
    "event-emitter",
    "stream",
    "assert",
    "zlib",
    "console",
    "readline",
    "os",
];
const MEMBERS: &[&str] = &["*/test/common/*", "*/test/fixtures/*", "*/test/parallel/*"];

fn node_version() -> Result<String> {
    let out = Command::new(NODE).arg("--version").output().context("running node --version")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().trim_start_matches('v').to_string())
}

/// `target/compat/node/node-vVERSION/test`, fetched when missing. Prefers the exact version (a
/// local clone at tag vVERSION), else Debian's source of the same major version.
fn test_dir(ctx: &Context, version: &str) -> Result<PathBuf> {
    let suite_dir = ctx.cache.join("node");
    let major = version.split('.').next().unwrap_or(version).to_string();
    let cached = |dir: &Path| -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.join("test/common/index.js").exists())
            .collect();
        found.sort();
        let exact = found.iter().find(|path| path.ends_with(format!("node-v{version}"))).cloned();
        exact.or_else(|| {
            found.into_iter().rev().find(|path| {
                path.file_name().is_some_and(|name| name.to_string_lossy().starts_with(&format!("node-v{major}.")))
            })
        })
    };
    if let Some(dir) = cached(&suite_dir) {
        return Ok(dir.join("test"));
    }
    if let Some(git) = source::local_clone("H_COMPAT_NODE_GIT", &["/work/.mirror/nodejs+node/repo"]) {
        let into = suite_dir.join(format!("node-v{version}"));
        if source::git_archive(&git, &format!("v{version}"), &["test/common", "test/fixtures", "test/parallel"], &into)
            .is_ok()
        {
            return Ok(into.join("test"));
        }
    }
    let step = format!(
        "node {version}'s tests are missing: unpack test/common, test/fixtures and test/parallel of node's \
         source (tag v{version}, or Debian's nodejs {major}.x source package) into {}/node-vVERSION/",
        suite_dir.display()
    );
    eprintln!("fetching node {major}.x tests (Debian's nodejs source package)");
    let apt = AptSource::prepare(&ctx.cache).with_context(|| step.clone())?;
    let mut versions: Vec<String> = apt
        .versions("nodejs")?
        .into_iter()
        .filter(|v| source::upstream(v).split('.').next() == Some(major.as_str()))
        .collect();
    versions.sort_by_key(|v| source::upstream(v).split('.').map(|n| n.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>());
    let Some(debian) = versions.last() else { bail!("{step} (no nodejs {major}.x source in Debian's indexes)") };
    let download = suite_dir.join("download");
    // The .dsc of a security upload may be missing from the archive; the upstream tarball is enough.
    let _ = apt.source("nodejs", debian, &download, true)?;
    let upstream = source::upstream(debian);
    let tarball = std::fs::read_dir(&download)?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            name.starts_with(&format!("nodejs_{upstream}")) && name.contains(".orig.tar")
        })
        .with_context(|| step.clone())?;
    source::untar(&tarball, &suite_dir, MEMBERS)?;
    cached(&suite_dir).map(|dir| dir.join("test")).with_context(|| step.clone())
}

/// The flags a test file asks node for (`// Flags: --expose-internals ...`), as node's runner reads them.
fn flags(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .take(40)
        .filter_map(|line| line.trim().strip_prefix("// Flags:"))
        .flat_map(|flags| flags.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

pub fn run(ctx: &Context, host: &Host) -> Result<Comparison> {
    let version = node_version()?;
    let test = test_dir(ctx, &version)?;
    let suite_version = test.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
    let suite_version = suite_version.unwrap_or_default();
    let parallel = test.join("parallel");
    let mut files: Vec<String> = std::fs::read_dir(&parallel)?
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".js") || name.ends_with(".mjs"))
        .filter(|name| {
            let stem = name.trim_start_matches("test-").trim_end_matches(".mjs").trim_end_matches(".js");
            name.starts_with("test-")
                && PREFIXES.iter().any(|prefix| stem == *prefix || stem.starts_with(&format!("{prefix}-")))
        })
        .collect();
    files.sort();
    let work = ctx.cache.join("work").join(&host.name).join("node");
    runner::fresh_dir(&work, ctx.who)?;
    // node's tools/test.py runs every test from the source root (tests open ./test/fixtures/...).
    let source_root = test.parent().context("node source root")?;
    let mut jobs = Vec::new();
    let mut file_flags = Vec::new();
    for file in &files {
        let path = parallel.join(file);
        let flags = flags(&path);
        for side in ["bare", "host"] {
            let scratch = work.join(side).join(file);
            runner::fresh_dir(&scratch, ctx.who)?;
            let log = work.join(format!("{side}-{file}.log"));
            let job = Job::new(
                if side == "bare" { Path::new("strace") } else { host.binary.as_path() },
                source_root,
                log,
                Duration::from_secs(180),
            );
            let job = if side == "bare" {
                job.args(observe::strace_prefix(&work.join(format!("trace-{file}")), false))
                    .arg(NODE)
                    .args(flags.iter().cloned())
                    .arg(path.display().to_string())
                    .env("NODE_TEST_DIR", scratch.display().to_string())
            } else {
                job.args(host_options(source_root, &scratch)).arg("--").arg(path.display().to_string())
            };
            jobs.push(job);
        }
        file_flags.push(flags);
    }
    let label = |index: usize| format!("node {} {}", files[index / 2], ["bare", &host.name][index % 2]);
    let finished = runner::run_all(&jobs, ctx.workers, ctx.who, &label);
    let mut bare = Results::new();
    let mut hosted = Results::new();
    for (index, file) in files.iter().enumerate() {
        let (Some(bare_run), Some(host_run)) = (finished.get(2 * index), finished.get(2 * index + 1)) else {
            continue;
        };
        let describe = |run: &runner::Finished| {
            let last = run.output.lines().rev().find(|line| line.contains("Error") || line.contains("error"));
            format!("{}: {}", run.describe(), last.unwrap_or("").trim())
        };
        let mut item = Item { passed: bare_run.success(), ..Item::default() };
        if !item.passed {
            item.detail = describe(bare_run);
        }
        let trace = observe::read_trace(&work.join(format!("trace-{file}")), true, &|_| false);
        if !trace.programs.is_empty() {
            item.needs.push(Need::Process);
        }
        if trace.network {
            item.needs.push(Need::Network);
        }
        if file_flags.get(index).is_some_and(|flags| !flags.is_empty()) {
            item.needs.push(Need::NodeFlags);
        }
        bare.insert(file.clone(), item);
        let mut item = Item { passed: host_run.success(), ..Item::default() };
        item.refused = observe::refusals(&host.name, &host_run.output);
        if !item.passed {
            item.detail = describe(host_run);
            if item.refused.is_empty() {
                item.hint = super::table::errno_hint(&host_run.output).unwrap_or("").to_string();
            }
        }
        hosted.insert(file.clone(), item);
    }
    let options =
        host_options(source_root, Path::new("SCRATCH")).join(" ").replace(&source_root.display().to_string(), "SRC");
    Ok(Comparison {
        title: format!("node `test/parallel` sample ({suite_version}, {} files)", files.len()),
        host: host.name.clone(),
        unit: "test files",
        bare_command: "cd SRC && NODE_TEST_DIR=SCRATCH node [// Flags: of the file] SRC/test/parallel/FILE".to_string(),
        host_command: format!("cd SRC && {} {options} -- SRC/test/parallel/FILE", host.name),
        bare,
        hosted,
        notes: vec![format!(
            "Machine's node: v{version}; tests: {suite_version} ({}). Files test-PREFIX-*.js/.mjs for PREFIX in: {}. \
             A file \"needs a process\" / \"the network\" when strace saw its bare run execute a program / make an \
             AF_INET(6) socket; \"needs node flags\" when it has a `// Flags:` line (a host passes none; node's \
             harness then re-executes itself with them).",
            if suite_version.ends_with(&version) {
                "exact match".to_string()
            } else {
                format!("closest available to v{version}")
            },
            PREFIXES.join(", ")
        )],
    })
}

/// `-s -t -l`, the limits, the source root readable (the tests' current directory, as
/// tools/test.py runs them; it holds only test/common, test/fixtures and test/parallel), and the
/// file's scratch directory writable (node's harness puts its tmpdir in NODE_TEST_DIR).
fn host_options(source_root: &Path, scratch: &Path) -> Vec<String> {
    let mut options = super::common_options();
    options.extend(["--allow-read".to_string(), source_root.display().to_string()]);
    options.extend(["--allow-write".to_string(), scratch.display().to_string()]);
    options.extend(["--env".to_string(), format!("NODE_TEST_DIR={}", scratch.display())]);
    options
}
