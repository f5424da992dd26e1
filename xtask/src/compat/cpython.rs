//! CPython 3.11's own `test` package (Debian's libpython3.11-testsuite), module by module, bare
//! (`/usr/bin/python3.11 -I -S`) and under hpython, counted test by test.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

use super::observe;
use super::runner::{self, Finished, Job};
use super::table::{Comparison, Item, Need, Results};
use super::{Context, Host};

const PYTHON: &str = "/usr/bin/python3.11";
const TESTS: &str = "/usr/lib/python3.11/test";
const DRIVER: &str = include_str!("cpython_driver.py");

/// Modules a script is likely to lean on: files, text, numbers, data formats, time, threads.
/// (Debian's 3.11 test package does not ship test_sqlite3; test_dbm stands for file databases.)
pub const MODULES: &[&str] = &[
    "test_asyncio",
    "test_argparse",
    "test_tempfile",
    "test_pathlib",
    "test_glob",
    "test_shutil",
    "test_os",
    "test_logging",
    "test_json",
    "test_re",
    "test_datetime",
    "test_collections",
    "test_itertools",
    "test_functools",
    "test_string",
    "test_textwrap",
    "test_csv",
    "test_decimal",
    "test_fractions",
    "test_statistics",
    "test_random",
    "test_math",
    "test_struct",
    "test_zlib",
    "test_hashlib",
    "test_base64",
    "test_binascii",
    "test_io",
    "test_fileio",
    "test_dbm",
    "test_threading",
    "test_queue",
    "test_zoneinfo",
    "test_unicode",
    "test_enum",
    "test_dataclasses",
    "test_typing",
    "test_contextlib",
    "test_heapq",
    "test_bisect",
    "test_fnmatch",
];

/// What must be on the machine, and the step that provides it.
pub fn check() -> Result<()> {
    if !Path::new(PYTHON).exists() || !Path::new(TESTS).join("test_argparse.py").exists() {
        bail!("CPython's test package is missing: apt-get install python3.11 libpython3.11-testsuite");
    }
    Ok(())
}

pub fn run(ctx: &Context, host: &Host) -> Result<Comparison> {
    check()?;
    let suite_dir = ctx.cache.join("cpython");
    std::fs::create_dir_all(&suite_dir)?;
    let driver = suite_dir.join("cpython_driver.py");
    std::fs::write(&driver, DRIVER)?;
    let driver_arg = driver.display().to_string();
    let work = ctx.cache.join("work").join(&host.name).join("cpython");
    let mut jobs = Vec::new();
    for module in MODULES {
        let timeout = Duration::from_secs(if *module == "test_asyncio" { 2400 } else { 1200 });
        for side in ["bare", "host"] {
            let cwd = work.join(side).join(module);
            runner::fresh_dir(&cwd, ctx.who)?;
            let log = work.join(format!("{side}-{module}.log"));
            let job = if side == "bare" {
                Job::new(PYTHON, &cwd, log, timeout).args(["-I", "-S", &driver_arg, module])
            } else {
                Job::new(&host.binary, &cwd, log, timeout).args(host_options(&cwd)).args(["--", &driver_arg, module])
            };
            jobs.push(job);
        }
    }
    let label = |index: usize| format!("cpython {} {}", MODULES[index / 2], ["bare", &host.name][index % 2]);
    let finished = runner::run_all(&jobs, ctx.workers, ctx.who, &label);
    let mut bare = Results::new();
    let mut hosted = Results::new();
    for (index, module) in MODULES.iter().enumerate() {
        let (Some(bare_run), Some(host_run)) = (finished.get(2 * index), finished.get(2 * index + 1)) else {
            continue;
        };
        let bare_items = parse(module, bare_run, None);
        let mut host_items = parse(module, host_run, Some(&host.name));
        // Tests the host never reached: the host ended (or hung) before them.
        let ended = host_ending(&host.name, host_run);
        for id in bare_items.keys() {
            host_items.entry(id.clone()).or_insert_with(|| Item {
                never_ran: true,
                refused: ended.0.clone(),
                detail: ended.1.clone(),
                ..Item::default()
            });
        }
        bare.extend(bare_items);
        hosted.extend(host_items);
    }
    Ok(Comparison {
        title: "CPython 3.11 `test` package (41 modules, counted per test)".to_string(),
        host: host.name.clone(),
        unit: "tests",
        bare_command: format!("cd WORK/MODULE && {PYTHON} -I -S cpython_driver.py MODULE"),
        host_command: format!("cd WORK/MODULE && {} {} -- cpython_driver.py MODULE", host.name, options_text()),
        bare,
        hosted,
        notes: vec![format!(
            "Modules: {}. Resources as regrtest without `-u` (no network, cpu, largefile). A test \
             \"needs a process\" when it called fork, posix_spawn, system or subprocess in the bare run, \
             \"the network\" when it made an AF_INET/AF_INET6 socket there.",
            MODULES.join(", ")
        )],
    })
}

/// The options a user would give: `-s -t -l`, generous limits, and write access to the module's
/// own work directory (its current directory, where tests create their files).
fn host_options(cwd: &Path) -> Vec<String> {
    let mut options: Vec<String> = super::common_options();
    options.extend(["--allow-write".to_string(), cwd.display().to_string()]);
    options
}

fn options_text() -> String {
    host_options(Path::new("WORK/MODULE")).join(" ")
}

/// How a host run ended, for the tests it never reached: (refused calls, description).
fn host_ending(host: &str, run: &Finished) -> (Vec<String>, String) {
    let refused: Vec<String> = observe::refusals(host, &run.output).into_iter().last().into_iter().collect();
    (refused, format!("host ended ({}) before this test", run.describe()))
}

/// Groups a failure without a refusal of its own: an errno (EPERM after an earlier refusal of the
/// same run names those), else the exception's class.
fn hint(message: &str, refused: &[String], reported: &[String]) -> String {
    if !refused.is_empty() {
        return String::new();
    }
    match super::table::errno_hint(message) {
        Some("EPERM") if !reported.is_empty() => {
            format!("EPERM (refused earlier in the module: {})", reported.join(", "))
        }
        Some(errno) => errno.to_string(),
        None => message.split(':').next().unwrap_or("").trim().to_string(),
    }
}

/// Reads the driver's lines (and, under a host, its refusal lines) into one item per test.
fn parse(module: &str, run: &Finished, host: Option<&str>) -> Results {
    let mut items = Results::new();
    let mut current: Option<(String, Vec<String>)> = None;
    let mut needs: Vec<(String, Need)> = Vec::new();
    let mut pending_refusals: Vec<String> = Vec::new();
    // Each refused call is reported once per run: later tests hitting it show no line of their own.
    let mut reported: Vec<String> = Vec::new();
    for line in run.output.lines() {
        if let Some(name) = host.and_then(|host| observe::refusal(host, line)) {
            if !reported.contains(&name) {
                reported.push(name.clone());
            }
            match current.as_mut() {
                Some((_, refused)) => refused.push(name),
                None => pending_refusals.push(name),
            }
            continue;
        }
        let Some(at) = line.find("@@compat\t") else { continue };
        let fields: Vec<&str> = line[at..].split('\t').collect();
        match fields.get(1).copied() {
            Some("start") => {
                current = Some((fields.get(2).unwrap_or(&"?").to_string(), std::mem::take(&mut pending_refusals)));
            }
            Some("needs") => {
                let need = if fields.get(2) == Some(&"network") { Need::Network } else { Need::Process };
                needs.push((fields.get(3).unwrap_or(&"?").to_string(), need));
            }
            Some("end") => {
                let id = fields.get(3).unwrap_or(&"?").to_string();
                let status = fields.get(2).copied().unwrap_or("error");
                let refused = match current.take() {
                    Some((started, refused)) if started == id => refused,
                    other => {
                        current = other;
                        std::mem::take(&mut pending_refusals)
                    }
                };
                let message = fields.get(4).copied().unwrap_or("");
                let (detail, hint) = match status {
                    "pass" => (String::new(), String::new()),
                    _ => (format!("{status}: {message}"), hint(message, &refused, &reported)),
                };
                items.insert(id, Item { passed: status == "pass", refused, detail, hint, ..Item::default() });
            }
            _ => {}
        }
    }
    // The test running when the process ended.
    if let Some((id, refused)) = current {
        let detail = format!("{} ended during this test ({})", host.unwrap_or("python"), run.describe());
        items.insert(id, Item { refused, detail, ..Item::default() });
    }
    if items.is_empty() {
        let refused = host.map(|host| observe::refusals(host, &run.output)).unwrap_or_default();
        let detail = format!("no test ran ({}): {}", run.describe(), super::table::clip(run.output.trim(), 200));
        items.insert(format!("{module} (import)"), Item { refused, detail, ..Item::default() });
    }
    for (id, need) in needs {
        let id = if id == "(module)" { format!("{module} (import)") } else { id };
        if let Some(item) = items.get_mut(&id) {
            if !item.needs.contains(&need) {
                item.needs.push(need);
                item.needs.sort();
            }
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::ExitStatus;

    fn finished(output: &str, signal: Option<i32>) -> Finished {
        use std::os::unix::process::ExitStatusExt;
        let status = ExitStatus::from_raw(signal.unwrap_or(0));
        Finished { status: Some(status), timed_out: false, output: output.to_string() }
    }

    #[test]
    fn refusals_are_attributed_to_the_test_that_was_running() {
        let output = "@@compat\tstart\tt.A.one\n@@compat\tneeds\tprocess\tt.A.one\n\
                      @@compat\tend\tpass\tt.A.one\t\n@@compat\tstart\tt.A.two\n\
                      hpython: sandbox refused symlink(...)\n\
                      @@compat\tend\terror\tt.A.two\tPermissionError: [Errno 1] Operation not permitted\n\
                      @@compat\tstart\tt.A.three\n\
                      @@compat\tend\tfail\tt.A.three\tPermissionError: [Errno 1] Operation not permitted\n\
                      @@compat\tstart\tt.A.four\nhpython: sandbox denied clone3\n";
        let items = parse("test_x", &finished(output, Some(31)), Some("hpython"));
        assert!(items["t.A.one"].passed);
        assert_eq!(items["t.A.one"].needs, vec![Need::Process]);
        assert_eq!(items["t.A.two"].refused, vec!["symlink(...)".to_string()]);
        assert!(items["t.A.three"].refused.is_empty());
        assert_eq!(items["t.A.three"].hint, "EPERM (refused earlier in the module: symlink(...))");
        assert_eq!(items["t.A.four"].refused, vec!["clone3".to_string()]);
        assert!(!items["t.A.four"].passed);
    }

    #[test]
    fn a_host_that_dies_at_import_yields_one_item_with_the_refusal() {
        let items = parse("test_x", &finished("hpython: sandbox denied chmod\n", Some(31)), Some("hpython"));
        let item = &items["test_x (import)"];
        assert_eq!(item.refused, vec!["chmod".to_string()]);
        assert!(!item.passed);
    }
}
