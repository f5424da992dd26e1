//! The start-up sequence every host shares: parse the command line, check every input, build
//! the policy, print it or apply it. Only a host whose sandbox is fully applied gets past
//! [`start`]; every failure before that is one line on stderr and exit status 1.

pub mod cli;
pub mod endpoints;
mod error;
pub mod json;
pub mod programs;
pub mod report;

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::exit;

use h_sandbox::{FsAccess, FsRule, Limit, OnRefusal, Policy, Resource, SeccompProgram};

pub use cli::{Options, Request};
pub use error::StartError;

/// What a host is, as data: everything its policy is built from.
pub struct HostProfile {
    /// The binary's name (`hlua`).
    pub name: &'static str,
    /// The language, for `--help` (`Lua`).
    pub language: &'static str,
    /// The interpreter and its version, for `--version` (`Lua 5.4.7`).
    pub interpreter_version: fn() -> String,
    /// The default limit of every resource.
    pub rlimits: &'static [(Resource, Limit)],
    /// The interpreter's own files, resolved at build time: (path, access, why).
    pub runtime_files: &'static [(&'static str, FsAccess, &'static str)],
    /// Device files every script of this language may use: (path, access, why).
    pub devices: &'static [(&'static str, FsAccess, &'static str)],
    /// The generated seccomp program for the architecture this binary was built for.
    pub seccomp: &'static SeccompProgram,
    /// The default task budget: processes and threads of the sandbox at once, the host included.
    pub tasks: u64,
    /// The default memory budget (`-m`): RLIMIT_DATA, which counts every private writable
    /// mapping (heap, anonymous memory, thread stacks, JIT code), and the interpreter's own heap
    /// limit where it has one.
    pub memory: u64,
    /// The script may create processes (hsh): each has its own rlimits, so the supervisor also
    /// holds the run as a whole to the CPU and memory budgets.
    pub creates_processes: bool,
    /// Address space allowed beyond the memory budget (RLIMIT_AS = memory + this): reservations
    /// that cost no memory (glibc's per-thread arenas, V8's cages).
    pub address_space_beyond_memory: u64,
    /// The script's processes may execute programs with the host's own program (hsh: bash runs
    /// commands), so `--allow-exec` needs nothing more.
    pub runs_programs: bool,
    /// The host's program with the rules the programs granted by `--allow-exec` need (the
    /// `HOST-programs` filter), for hosts whose own program starts no process.
    pub seccomp_with_programs: Option<&'static SeccompProgram>,
    /// The host's program with the calls that create and execute a process (the `HOST-learn`
    /// filter), for `--learn` on hosts whose own program starts no process.
    pub seccomp_learning: Option<&'static SeccompProgram>,
    /// Variables `--env` may not pass, with the reason (e.g. `NODE_OPTIONS`: node's flags are
    /// the host's to decide). Checked with every other input, before anything is applied.
    pub refused_variables: &'static [(&'static str, &'static str)],
    /// Paths the interpreter tries at start and does without when they are refused: `--learn`
    /// does not list them (`PID` stands for any process id): (path, why).
    pub probes: &'static [(&'static str, &'static str)],
}

/// A host ready to run its script: the sandbox is in force.
pub struct Started {
    /// The script as the user named it (for `arg[0]`, `sys.argv[0]`, ...).
    pub script: PathBuf,
    /// The script's canonical path (what the sandbox granted).
    pub script_path: PathBuf,
    /// The script's canonical directory.
    pub script_dir: PathBuf,
    pub script_args: Vec<OsString>,
    pub allow_script_dir: bool,
    /// The limits set by the sandbox (an interpreter may mirror one, e.g. its heap limit).
    pub rlimits: Vec<(Resource, Limit)>,
    /// The memory budget in bytes, if there is one (the interpreter's heap limit follows it).
    pub memory: Option<u64>,
    /// `--allow-connect`: each endpoint as given, with the addresses it was resolved to.
    pub endpoints: Vec<(String, Vec<std::net::SocketAddr>)>,
}

impl Started {
    /// The limit the sandbox set for `resource`, if it set one.
    pub fn rlimit(&self, resource: Resource) -> Option<Limit> {
        self.rlimits.iter().find(|(set, _)| *set == resource).map(|&(_, limit)| limit)
    }
}

/// The tasks the default budget grows by when `--allow-exec` grants programs.
const PROGRAM_TASKS: u64 = 16;

/// Paths every dynamically linked program tries and does without (`--learn` does not list them).
const PROGRAM_PROBES: &[(&str, &str)] =
    &[("/etc/ld.so.cache", "the dynamic loader looks libraries up in its cache, then in the default directories")];

/// The time zone database `-l` grants with `/etc/localtime`.
const ZONEINFO: &str = "/usr/share/zoneinfo";

/// A host's C `main`: `h_host::main!(run)` in a binary marked `#![cfg_attr(not(test),
/// no_main)]`. The host starts from the C library's call of `main`, without Rust's runtime
/// start-up, which costs every run 70–120 µs (`docs/overhead.md`) for what a host does not need
/// (a stack-overflow handler; on glibc it reads `/proc/self/maps`). What the runtime did that h
/// relies on, [`enter`] does.
#[macro_export]
macro_rules! main {
    ($run:path) => {
        // A unit-test build of the host has libtest's own `main` (and keeps `host_main` in use).
        #[cfg(test)]
        const _: fn() -> u8 = $run;
        #[cfg(not(test))]
        #[no_mangle]
        extern "C" fn main(argc: ::std::ffi::c_int, argv: *const *const ::std::ffi::c_char) -> ::std::ffi::c_int {
            // SAFETY: the C library calls `main` with its argument count and vector.
            unsafe { $crate::enter(argc, argv, $run) }
        }
    };
}

/// Records the arguments, makes sure descriptors 0, 1 and 2 are open (on /dev/null where they
/// are not, so that nothing the host opens takes their place) and ignores SIGPIPE (a write to
/// a closed pipe fails with EPIPE, which the host and its supervisor handle), as Rust's runtime
/// does; then runs the host and exits with its status (flushing stdout, as `exit` does).
///
/// # Safety
/// `argc` and `argv` must be what the C library passed to `main`.
pub unsafe fn enter(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char, run: fn() -> u8) -> ! {
    // SAFETY: the caller passes main's own arguments.
    unsafe { h_sandbox::arguments::record(argc, argv) };
    if let Err(error) = open_missing_stdio() {
        let arguments = h_sandbox::arguments::all();
        let program = arguments.first().and_then(|name| Path::new(name).file_name()).unwrap_or_default();
        fail(
            &program.to_string_lossy(),
            format!("cannot open /dev/null in place of a closed standard descriptor: {error}"),
        );
    }
    // SAFETY: SIG_IGN is a valid disposition for SIGPIPE; no handler code is involved.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    exit(i32::from(run()))
}

/// Opens /dev/null on each of descriptors 0, 1 and 2 that is closed.
fn open_missing_stdio() -> std::io::Result<()> {
    let mut descriptors = [0, 1, 2].map(|fd| libc::pollfd { fd, events: 0, revents: 0 });
    // SAFETY: poll reads and writes the three entries of the array it is given.
    let polled = unsafe { libc::poll(descriptors.as_mut_ptr(), 3, 0) };
    for entry in descriptors {
        let closed = if polled >= 0 {
            entry.revents & libc::POLLNVAL != 0
        } else {
            // SAFETY: F_GETFD only reads the descriptor's flags.
            let flags = unsafe { libc::fcntl(entry.fd, libc::F_GETFD) };
            flags == -1
        };
        if closed {
            // SAFETY: a NUL-terminated path; the lowest free descriptor, this one, is returned.
            let opened = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
            if opened != entry.fd {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Prints `HOST: message` and exits 1: the one way every host reports bad input or a failed stage.
pub fn fail(host: &str, message: impl std::fmt::Display) -> ! {
    let _ = writeln!(std::io::stderr(), "{host}: {message}");
    exit(1)
}

fn canonical_existing(what: &'static str, path: &Path) -> Result<PathBuf, StartError> {
    h_sandbox::canonical(path).map_err(|error| StartError::Path { what, path: path.to_path_buf(), error })
}

/// The limits to set: the profile's defaults (or none with `-R`), the memory budget mapped onto
/// `data` and `as`, then every `-r`, the last one for a resource winning, whatever the order of
/// `-R`, `-m` and `-r` on the command line.
pub fn effective_rlimits(profile: &HostProfile, options: &Options) -> Vec<(Resource, Limit)> {
    let mut limits: Vec<(Resource, Limit)> =
        if options.inherit_rlimits { Vec::new() } else { profile.rlimits.to_vec() };
    let memory = match options.memory {
        Some(memory) => Some(memory),
        None if options.inherit_rlimits => None,
        None => Some(Limit::Value(profile.memory)),
    };
    let set = |limits: &mut Vec<(Resource, Limit)>, resource: Resource, limit: Limit| match limits
        .iter_mut()
        .find(|(existing, _)| *existing == resource)
    {
        Some(entry) => entry.1 = limit,
        None => limits.push((resource, limit)),
    };
    match memory {
        Some(Limit::Value(bytes)) => {
            set(&mut limits, Resource::Data, Limit::Value(bytes));
            set(&mut limits, Resource::As, Limit::Value(bytes.saturating_add(profile.address_space_beyond_memory)));
        }
        Some(Limit::Infinity) => {
            set(&mut limits, Resource::Data, Limit::Infinity);
            set(&mut limits, Resource::As, Limit::Infinity);
        }
        None => {}
    }
    for &(resource, limit) in &options.rlimits {
        set(&mut limits, resource, limit);
    }
    limits
}

/// The whole run's budget: the per-process CPU limit and the memory budget, summed over its
/// processes by the supervisor.
fn run_budget(limits: &[(Resource, Limit)]) -> h_sandbox::RunBudget {
    let value = |wanted: Resource| {
        limits.iter().find_map(|&(resource, limit)| match (resource == wanted, limit) {
            (true, Limit::Value(value)) => Some(value),
            _ => None,
        })
    };
    h_sandbox::RunBudget { cpu_seconds: value(Resource::Cpu), memory_bytes: value(Resource::Data) }
}

fn check_rlimits(limits: &[(Resource, Limit)]) -> Result<(), StartError> {
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    for &(resource, limit) in limits {
        let Ok((_, hard)) = resource.current() else { continue };
        let above = match (limit, hard) {
            (_, Limit::Infinity) => false,
            (Limit::Infinity, Limit::Value(_)) => true,
            (Limit::Value(wanted), Limit::Value(hard)) => wanted > hard,
        };
        if above && !is_root {
            return Err(StartError::Limit { resource: resource.name(), wanted: limit, hard });
        }
    }
    Ok(())
}

fn environment(profile: &HostProfile, options: &Options) -> Result<Vec<(OsString, OsString)>, StartError> {
    let mut variables: Vec<(OsString, OsString)> = Vec::new();
    for (name, value) in &options.env {
        if let Some((refused, why)) = profile.refused_variables.iter().find(|(refused, _)| name.as_os_str() == *refused)
        {
            return Err(StartError::Environment(format!("--env {refused} is refused: {why}")));
        }
        let value = match value {
            Some(value) => value.clone(),
            None => match std::env::var_os(name) {
                Some(value) => value,
                None => {
                    let message = format!("--env {}: the variable is not set", name.to_string_lossy());
                    return Err(StartError::Environment(message));
                }
            },
        };
        variables.retain(|(existing, _)| existing != name);
        variables.push((name.clone(), value));
    }
    Ok(variables)
}

/// Checks every input and builds the policy; the first problem is the error, and nothing has
/// been applied yet.
pub fn build_policy(profile: &HostProfile, options: &Options) -> Result<(Policy, Started), StartError> {
    let host = profile.name;
    let script_path = canonical_existing("cannot access script", &options.script)?;
    match std::fs::File::open(&script_path).and_then(|file| file.metadata()) {
        Ok(metadata) if metadata.is_file() => {}
        Ok(_) => return Err(StartError::Script(format!("script {} is not a regular file", options.script.display()))),
        Err(error) => {
            return Err(StartError::Script(format!("cannot read script {}: {error}", options.script.display())))
        }
    }
    let Some(script_dir) = script_path.parent().map(Path::to_path_buf) else {
        return Err(StartError::Script(format!("script {} has no directory", script_path.display())));
    };

    let mut fs_rules = Vec::new();
    let mut add = |path: PathBuf, access: FsAccess, why: String| fs_rules.push(FsRule { path, access, why });
    if options.allow_script_dir {
        add(script_dir.clone(), FsAccess::Read, "the script's directory (-s)".to_string());
    } else {
        add(script_path.clone(), FsAccess::Read, "the script".to_string());
    }
    for &(path, access, why) in profile.runtime_files.iter().chain(profile.devices) {
        add(canonical_existing("runtime file missing:", Path::new(path))?, access, why.to_string());
    }
    if options.allow_tmp {
        add(canonical_existing("cannot access", Path::new("/tmp"))?, FsAccess::ReadWrite, "-t".to_string());
    }
    if options.allow_localtime {
        add(canonical_existing("cannot access", Path::new("/etc/localtime"))?, FsAccess::Read, "-l".to_string());
        // The zone database too (zoneinfo, Intl, TZ=...), where the system has one.
        if let Ok(zoneinfo) = h_sandbox::canonical(Path::new(ZONEINFO)) {
            add(zoneinfo, FsAccess::Read, "-l: the time zone database".to_string());
        }
    }
    for path in &options.allow_read {
        add(canonical_existing("cannot access --allow-read path", path)?, FsAccess::Read, "--allow-read".to_string());
    }
    for path in &options.allow_write {
        add(
            canonical_existing("cannot access --allow-write path", path)?,
            FsAccess::ReadWrite,
            "--allow-write".to_string(),
        );
    }

    let runs_granted_programs = !options.allow_exec.is_empty();
    let seccomp = match (runs_granted_programs, profile.seccomp_with_programs) {
        (true, Some(with_programs)) => with_programs,
        (true, None) if !profile.runs_programs => {
            return Err(StartError::Programs(format!("--allow-exec: {host} has no filter that starts processes")))
        }
        (false, _) if options.learn && !profile.runs_programs => match profile.seccomp_learning {
            Some(learning) => learning,
            None => return Err(StartError::Programs(format!("--learn: {host} has no filter that starts processes"))),
        },
        _ => profile.seccomp,
    };
    // Processes a learning run may create, as granted programs would be.
    let creates_processes = runs_granted_programs || (options.learn && !profile.runs_programs);
    let search_path = std::env::var_os("PATH");
    for name in &options.allow_exec {
        let program = programs::resolve(name, search_path.as_deref()).map_err(StartError::Programs)?;
        for file in program.files {
            let why = if file == program.path {
                format!("--allow-exec {}", program.name)
            } else {
                format!("--allow-exec {}: its interpreter or a library", program.name)
            };
            add(file, FsAccess::ReadExecute, why);
        }
    }
    let mut resolved_endpoints = Vec::new();
    for endpoint in &options.allow_connect {
        resolved_endpoints.push((endpoint.to_string(), endpoints::resolve(endpoint).map_err(StartError::Endpoints)?));
    }
    let connect = resolved_endpoints.iter().flat_map(|(_, addresses)| addresses.iter().copied()).collect();
    let granted: Vec<_> = resolved_endpoints.iter().map(|(_, addresses)| addresses.clone()).collect();
    let names = endpoints::names(&options.allow_connect, &granted);
    let rlimits = effective_rlimits(profile, options);
    let budget = run_budget(&rlimits);
    check_rlimits(&rlimits)?;
    let policy = Policy {
        host,
        rlimits,
        fs_rules,
        allow_degraded: options.allow_degraded,
        environment: environment(profile, options)?,
        seccomp,
        // Granted programs are processes of the run: room for them unless --tasks says otherwise.
        tasks: options.tasks.unwrap_or(Limit::Value(if creates_processes {
            profile.tasks + PROGRAM_TASKS
        } else {
            profile.tasks
        })),
        on_refusal: if options.kill_on_deny { OnRefusal::Kill } else { OnRefusal::Error },
        run_budget: (profile.creates_processes || creates_processes).then_some(budget),
        connect,
        names,
        learn: options.learn.then(|| learning(profile, options, search_path.clone(), &budget)),
        visible_arguments: std::iter::once(options.script.clone().into_os_string())
            .chain(options.script_args.iter().cloned())
            .collect(),
    };
    if h_sandbox::landlock_abi().is_none() && !options.allow_degraded && options.print_policy.is_none() {
        return Err(StartError::Degraded(
            "landlock: the kernel has no landlock (use --allow-degraded to run without the filesystem layer)",
        ));
    }
    let restricts_tcp = h_sandbox::landlock_abi().is_some_and(|abi| abi >= 4);
    if !options.allow_connect.is_empty() && !restricts_tcp && !options.allow_degraded && options.print_policy.is_none()
    {
        return Err(StartError::Degraded(
            "--allow-connect: landlock on this kernel cannot restrict TCP (ABI 4 needed; use --allow-degraded to rely on seccomp and the supervisor alone)",
        ));
    }
    let started = Started {
        script: options.script.clone(),
        script_path,
        script_dir,
        script_args: options.script_args.clone(),
        allow_script_dir: options.allow_script_dir,
        rlimits: policy.rlimits.clone(),
        memory: policy.rlimits.iter().find_map(|&(resource, limit)| match (resource, limit) {
            (Resource::Data, Limit::Value(bytes)) => Some(bytes),
            _ => None,
        }),
        endpoints: resolved_endpoints,
    };
    Ok((policy, started))
}

/// What `--learn` reports with: the command line to repeat (this one, `--learn` left out of
/// the options), the `PATH` programs are named by, and the CPU limit.
fn learning(
    profile: &HostProfile,
    options: &Options,
    search_path: Option<OsString>,
    budget: &h_sandbox::RunBudget,
) -> h_sandbox::Learning {
    let arguments: Vec<OsString> = h_sandbox::arguments::all();
    // Everything before the script and its arguments is the host's name and its options.
    let options_end = arguments.len().saturating_sub(options.script_args.len() + 1);
    let command = arguments
        .iter()
        .enumerate()
        .filter(|&(index, argument)| !(index > 0 && index < options_end && argument == "--learn"))
        .map(|(_, argument)| argument.clone())
        .collect();
    // A probe is compared as the supervisor names what it finds: canonical, where it resolves.
    let probes = profile
        .probes
        .iter()
        .chain(PROGRAM_PROBES)
        .map(|&(path, _)| h_sandbox::canonical(Path::new(path)).unwrap_or_else(|_| PathBuf::from(path)))
        .collect();
    h_sandbox::Learning { command, search_path, cpu_seconds: budget.cpu_seconds, probes }
}

/// `--version`: host, interpreter, and the running kernel's landlock ABI.
pub fn version(profile: &HostProfile) -> String {
    let landlock = match h_sandbox::landlock_abi() {
        Some(abi) => format!("landlock ABI {abi}"),
        None => "no landlock".to_string(),
    };
    format!(
        "{} {} ({}; kernel: {landlock}; seccomp program for {})",
        profile.name,
        env!("CARGO_PKG_VERSION"),
        (profile.interpreter_version)(),
        profile.seccomp.arch
    )
}

/// Parses the command line and applies the sandbox; returns only when the script may run. Every
/// error of every stage ends here: one line and exit status 1.
pub fn start(profile: &HostProfile) -> Started {
    h_sandbox::timing::mark("main");
    match prepare(profile) {
        Ok(started) => started,
        Err(error) => fail(profile.name, error),
    }
}

fn prepare(profile: &HostProfile) -> Result<Started, StartError> {
    let request =
        cli::parse(h_sandbox::arguments::all().into_iter().skip(1)).map_err(|error| StartError::Usage(error.0))?;
    let options = match request {
        Request::Help => {
            print!("{}", cli::help(profile.name, profile.language));
            exit(0)
        }
        Request::Version => {
            println!("{}", version(profile));
            exit(0)
        }
        Request::Run(options) => *options,
    };
    let (policy, started) = build_policy(profile, &options)?;
    h_sandbox::timing::mark("policy");
    if let Some(format) = options.print_policy {
        let report = report::PolicyReport::new(profile, &options, &policy, &started);
        match format {
            cli::PolicyFormat::Text => print!("{}", report.text()),
            cli::PolicyFormat::Json => print!("{}", report.json().render()),
        }
        let _ = std::io::stdout().flush();
        exit(0)
    }
    h_sandbox::apply(&policy)?;
    Ok(started)
}
