//! CPython 3.11's own `test` package (Debian's libpython3.11-testsuite), module by module, bare
//! (`/usr/bin/python3.11 -I -S`) and under hpython, counted test by test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};

use super::observe;
use super::runner::{self, Finished, Job};
use super::table::{Comparison, Item, Need, Results};
use super::{Context, Host};

const PYTHON: &str = "/usr/bin/python3.11";
const TESTS: &str = "/usr/lib/python3.11/test";
const DRIVER: &str = include_str!("cpython_driver.py");
/// Runs of one module at most (the first and those taking it up again after a crash or hang).
const ATTEMPTS: usize = 24;
/// The driver's list of tests to skip or run, in the run's work directory (readable under the host).
const SELECT_FILE: &str = "compat-select.txt";
/// Failing tests with no refusal of their own that are run again alone, at most.
const ALONE_AT_MOST: usize = 800;
/// The id unittest's loader gives a submodule it could not import.
const FAILED_IMPORT: &str = "unittest.loader._FailedTest.";
/// The driver's limit per test (`PER_TEST` in cpython_driver.py).
const PER_TEST_SECONDS: u32 = 60;

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
    // One run of the driver: `select` names tests to skip ("--skip") or the only ones to run
    // ("--only"), in a file in the run's own work directory (readable under the host).
    let job = |module: &str, bare: bool, cwd: &Path, log: PathBuf, select: Option<(&str, &[String])>| -> Result<Job> {
        let timeout = Duration::from_secs(if module == "test_asyncio" { 2400 } else { 1200 });
        runner::fresh_dir(cwd, ctx.who)?;
        let mut args = vec![driver_arg.clone(), module.to_string()];
        if let Some((mode, ids)) = select {
            let file = cwd.join(SELECT_FILE);
            std::fs::write(&file, ids.join("\n") + "\n")?;
            runner::chown(&file, ctx.who)?;
            args.extend([mode.to_string(), SELECT_FILE.to_string()]);
        }
        Ok(if bare {
            Job::new(PYTHON, cwd, log, timeout).args(["-I", "-S"]).args(args)
        } else {
            Job::new(&host.binary, cwd, log, timeout).args(host_options(cwd)).arg("--").args(args)
        })
    };
    // Job `index` is MODULES[index / 2], bare (even) or under the host (odd). A run that ended
    // before the module's last test (a crash, the driver's per-test limit, the job's timeout) is
    // started again with the tests already reported skipped, so one hung or crashing test does not
    // count the rest of its module as lost.
    let mut attempts: Vec<Vec<Finished>> = vec![Vec::new(); 2 * MODULES.len()];
    let mut pending: Vec<usize> = (0..attempts.len()).collect();
    for attempt in 0..ATTEMPTS {
        if pending.is_empty() {
            break;
        }
        let mut jobs = Vec::new();
        for &index in &pending {
            let (module, side) = (MODULES[index / 2], ["bare", "host"][index % 2]);
            let log = match attempt {
                0 => work.join(format!("{side}-{module}.log")),
                n => work.join(format!("{side}-{module}.{n}.log")),
            };
            let skip = started(&attempts[index]);
            let select = (!skip.is_empty()).then_some(("--skip", skip.as_slice()));
            jobs.push(job(module, side == "bare", &work.join(side).join(module), log, select)?);
        }
        let label = |at: usize| {
            let index = pending[at];
            let again = if attempt == 0 { String::new() } else { format!(" (run {})", attempt + 1) };
            format!("cpython {} {}{again}", MODULES[index / 2], ["bare", &host.name][index % 2])
        };
        let finished = runner::run_all(&jobs, ctx.workers, ctx.who, &label);
        for (&index, run) in pending.iter().zip(finished) {
            attempts[index].push(run);
        }
        pending.retain(|&index| attempts[index].last().is_some_and(|run| !complete(run) && started_any(run)));
    }
    let mut bare = Results::new();
    let mut hosted = Results::new();
    for (index, module) in MODULES.iter().enumerate() {
        let (bare_runs, host_runs) = (&attempts[2 * index], &attempts[2 * index + 1]);
        let Some(host_last) = host_runs.last() else { continue };
        let bare_items = parse_runs(module, bare_runs, None);
        let mut host_items = parse_runs(module, host_runs, Some(&host.name));
        // Tests the host never reached: in a package whose submodule failed to import under the
        // host (the loader's `_FailedTest`), or after the host's last run ended (or hung).
        let ended = host_ending(&host.name, host_last);
        let failed_imports: Vec<(String, Item)> = host_items
            .iter()
            .filter_map(|(id, item)| Some((id.strip_prefix(FAILED_IMPORT)?.to_string(), item.clone())))
            .collect();
        for id in bare_items.keys() {
            if host_items.contains_key(id) {
                continue;
            }
            let failed = failed_imports.iter().find(|(submodule, _)| id.starts_with(&format!("{submodule}.")));
            let item = match failed {
                Some((submodule, failed)) => Item {
                    detail: format!("not loaded: {}", failed.detail),
                    hint: format!("import of {} failed: {}", submodule.trim_start_matches("test."), failed.hint),
                    ..Item::default()
                },
                None => Item { never_ran: true, refused: ended.0.clone(), detail: ended.1.clone(), ..Item::default() },
            };
            host_items.insert(id.clone(), item);
        }
        bare.extend(bare_items);
        hosted.extend(host_items);
    }
    // A host reports each distinct refused call once per run, so a test failing on a call an
    // earlier test of its module already had refused shows no refusal of its own (or a probe at
    // import time was charged to the first test). Each such test runs again alone under the host,
    // where a refusal reported while it ran is its own and one reported before it started is
    // charged to it as `attribute` says.
    let alone: Vec<(String, &'static str)> = hosted
        .iter()
        .filter(|(id, item)| !item.passed && !item.never_ran && item.refused.is_empty() && !id.ends_with(" (import)"))
        // Neither a test whose submodule did not load nor one that hung (it would hang again).
        .filter(|(_, item)| !item.detail.starts_with("not loaded") && !item.hint.starts_with("hung"))
        .filter(|(id, _)| bare.get(*id).is_some_and(|item| item.passed && item.needs.is_empty()))
        .filter_map(|(id, _)| Some((id.clone(), *MODULES.iter().find(|m| id.starts_with(&format!("test.{m}.")))?)))
        .take(ALONE_AT_MOST)
        .collect();
    let mut jobs = Vec::new();
    for (at, (id, module)) in alone.iter().enumerate() {
        let cwd = work.join("alone").join(at.to_string());
        let log = work.join("alone").join(format!("{at}.log"));
        jobs.push(job(module, false, &cwd, log, Some(("--only", std::slice::from_ref(id))))?);
    }
    let label = |at: usize| format!("cpython {} {} alone", alone[at].0, host.name);
    let finished = runner::run_all(&jobs, ctx.workers, ctx.who, &label);
    for ((id, module), run) in alone.iter().zip(&finished) {
        let items = parse(module, run, Some(&host.name));
        let (Some(item), Some(original)) = (items.get(id), hosted.get_mut(id)) else { continue };
        if item.passed {
            original.hint = "passes alone (fails only after earlier tests of its module)".to_string();
        } else {
            original.refused = item.refused.clone();
            original.hint = item.hint.clone();
            if original.hint.starts_with("EPERM (refused earlier") {
                // Refused before the test started (import, class fixture), not named by its message.
                original.hint = item.hint.replace("refused earlier in the module", "refused before the test");
            }
        }
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

/// The run reached the end of its module.
fn complete(run: &Finished) -> bool {
    run.output.lines().any(|line| line.contains("@@compat\tdone"))
}

/// The run started at least one test (so taking the module up again makes progress).
fn started_any(run: &Finished) -> bool {
    run.output.contains("@@compat\tstart\t")
}

/// Every test the runs so far started (the next run skips them).
fn started(runs: &[Finished]) -> Vec<String> {
    let mut ids: Vec<String> = runs
        .iter()
        .flat_map(|run| run.output.lines())
        .filter_map(|line| line.find("@@compat\tstart\t").map(|at| &line[at..]))
        .filter_map(|line| line.split('\t').nth(2))
        .map(str::to_string)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The items of every run of one module; a later run only adds tests the earlier ones did not reach.
fn parse_runs(module: &str, runs: &[Finished], host: Option<&str>) -> Results {
    let mut items = Results::new();
    for (attempt, run) in runs.iter().enumerate() {
        for (id, item) in parse(module, run, host) {
            if attempt > 0 && id.ends_with(" (import)") {
                continue;
            }
            items.entry(id).or_insert(item);
        }
    }
    items
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
        // hpython answers socket(AF_UNIX) with EACCES, unreported (glibc's nscd probe).
        Some("EACCES (landlock)") if message.contains("socket.py") || message.contains("socket(") => {
            "EACCES from socket(AF_UNIX) (refused without a report)".to_string()
        }
        Some("EPERM") if !reported.is_empty() => {
            format!("EPERM (refused earlier in the module: {})", reported.join(", "))
        }
        Some(errno) => errno.to_string(),
        None => message.split(':').next().unwrap_or("").trim().to_string(),
    }
}

/// The refused calls a failed test is charged with: those reported while it ran; else, for a skip
/// or an EPERM, a refusal reported before it started (a feature probe at import time or in
/// `setUpClass`) that its message names (`skip: Requires functional symlink implementation` →
/// symlink). An unrelated failure after an import-time probe is not charged with the probe.
fn attribute(before: &[String], during: &[String], status: &str, message: &str) -> Vec<String> {
    if !during.is_empty() || status == "pass" {
        return during.to_vec();
    }
    if status != "skip" && super::table::errno_hint(message) != Some("EPERM") {
        return Vec::new();
    }
    let text = message.to_lowercase();
    before.iter().filter(|name| mentions(&text, name)).take(1).cloned().collect()
}

/// Whether a (lower-case) message names the refused call, or what it does.
fn mentions(text: &str, refused: &str) -> bool {
    let base = refused.split('(').next().unwrap_or(refused);
    let words: &[&str] = match base {
        "symlink" | "symlinkat" => &["symlink", "symbolic link"],
        "link" | "linkat" => &["os.link(", "hard link", "hardlink"],
        "chmod" | "fchmod" | "fchmodat" | "lchmod" => &["chmod", "s_isgid", "s_isuid"],
        "chown" | "fchown" | "fchownat" | "lchown" => &["chown"],
        "utimensat" | "utimes" | "utime" => &["utime", "touch("],
        "statfs" => &["statvfs", "statfs", "disk_usage"],
        "alarm" | "setitimer" => &["alarm", "itimer"],
        "pidfd_open" => &["pidfd"],
        name if name.ends_with("xattr") => &["xattr", "extended attribute"],
        _ => &[],
    };
    words.iter().any(|word| text.contains(word)) || text.contains(&format!("{base}("))
}

/// Reads the driver's lines (and, under a host, its refusal lines) into one item per test.
fn parse(module: &str, run: &Finished, host: Option<&str>) -> Results {
    let mut items = Results::new();
    // The test running: its id, the refusals reported since the previous test ended (import,
    // class fixtures), and those reported while it ran.
    let mut current: Option<(String, Vec<String>, Vec<String>)> = None;
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
                Some((_, _, during)) => during.push(name),
                None => pending_refusals.push(name),
            }
            continue;
        }
        let Some(at) = line.find("@@compat\t") else { continue };
        let fields: Vec<&str> = line[at..].split('\t').collect();
        match fields.get(1).copied() {
            Some("start") => {
                let id = fields.get(2).unwrap_or(&"?").to_string();
                current = Some((id, std::mem::take(&mut pending_refusals), Vec::new()));
            }
            Some("needs") => {
                let need = if fields.get(2) == Some(&"network") { Need::Network } else { Need::Process };
                needs.push((fields.get(3).unwrap_or(&"?").to_string(), need));
            }
            Some("end") => {
                let id = fields.get(3).unwrap_or(&"?").to_string();
                let status = fields.get(2).copied().unwrap_or("error");
                let message = fields.get(4).copied().unwrap_or("");
                let refused = match current.take() {
                    Some((started, before, during)) if started == id => attribute(&before, &during, status, message),
                    other => {
                        // A class or module fixture's own line (`setUpClass (...)`).
                        current = other;
                        std::mem::take(&mut pending_refusals)
                    }
                };
                let (detail, hint) = match status {
                    "pass" => (String::new(), String::new()),
                    _ => (format!("{status}: {message}"), hint(message, &refused, &reported)),
                };
                items.insert(id, Item { passed: status == "pass", refused, detail, hint, ..Item::default() });
            }
            _ => {}
        }
    }
    // The test running when the process ended: the driver's time limit (faulthandler prints
    // "Timeout (H:MM:SS)!"), a crash, or the job's own timeout.
    if let Some((id, before, during)) = current {
        let refused = if during.is_empty() { before } else { during };
        let program = host.unwrap_or("python");
        let (detail, hint) = if run.output.lines().any(|line| line.starts_with("Timeout (") && line.ends_with(")!")) {
            (
                format!("{program} hung in this test: no result after {PER_TEST_SECONDS} s (the driver ended the run)"),
                format!("hung (no result in {PER_TEST_SECONDS} s)"),
            )
        } else {
            (format!("{program} ended during this test ({})", run.describe()), format!("ended ({})", run.describe()))
        };
        items.insert(id, Item { refused, detail, hint, ..Item::default() });
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
    fn a_module_taken_up_again_after_a_hang_keeps_both_runs() {
        let first = "@@compat\tstart\tt.A.one\n@@compat\tend\tpass\tt.A.one\t\n\
                     @@compat\tstart\tt.A.two\nhpython: sandbox refused alarm\nTimeout (0:04:00)!\n\
                     Thread 0x1 (most recent call first):\n";
        let second = "@@compat\tstart\tt.A.three\n@@compat\tend\tpass\tt.A.three\t\n@@compat\tdone\n";
        let runs = [finished(first, None), finished(second, None)];
        assert!(!complete(&runs[0]) && started_any(&runs[0]) && complete(&runs[1]));
        assert_eq!(started(&runs[..1]), vec!["t.A.one".to_string(), "t.A.two".to_string()]);
        let items = parse_runs("test_x", &runs, Some("hpython"));
        assert_eq!(items.len(), 3);
        assert!(items["t.A.one"].passed && items["t.A.three"].passed);
        assert_eq!(items["t.A.two"].refused, vec!["alarm".to_string()]);
        assert!(items["t.A.two"].detail.contains("hung in this test"), "{:?}", items["t.A.two"]);
    }

    #[test]
    fn probes_before_a_test_are_charged_only_when_its_message_names_them() {
        let before = vec!["socket(AF_INET6)".to_string(), "chmod".to_string(), "symlink".to_string()];
        let skip = "Requires functional symlink implementation";
        assert_eq!(attribute(&before, &[], "skip", skip), vec!["symlink".to_string()]);
        assert_eq!(attribute(&before, &[], "skip", "Cannot set S_ISGID for dir."), vec!["chmod".to_string()]);
        let unrelated = "KeyError: 'getgrgid(): gid not found: 0' @ test_shutil.py:1532 in t: grp.getgrgid(0)[0]";
        assert!(attribute(&before, &[], "error", unrelated).is_empty());
        let eperm = "PermissionError: [Errno 1] Operation not permitted: 'x' @ t.py:1 in t: os.chmod(p, 0)";
        assert_eq!(attribute(&before, &[], "error", eperm), vec!["chmod".to_string()]);
        assert_eq!(attribute(&before, &["link".to_string()], "error", eperm), vec!["link".to_string()]);
    }

    #[test]
    fn a_host_that_dies_at_import_yields_one_item_with_the_refusal() {
        let items = parse("test_x", &finished("hpython: sandbox denied chmod\n", Some(31)), Some("hpython"));
        let item = &items["test_x (import)"];
        assert_eq!(item.refused, vec!["chmod".to_string()]);
        assert!(!item.passed);
    }
}
