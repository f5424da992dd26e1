//! h's sandbox: one policy, one ordered [`apply`].
//!
//! A host builds a [`Policy`] (all data, nothing decided here from the environment) and calls
//! [`apply`] before the script's first line. Every stage fails closed: an error from any stage is
//! returned before the next one starts, and the host must exit without running the script.

pub mod arguments;
mod capabilities;
mod descriptors;
mod environment;
pub mod exec;
mod filesystem;
mod limits;
mod paths;
mod privileges;
pub mod seccomp_program;
mod supervisor;
mod syscall_filter;
pub mod syscall_names;
mod tasks;
mod threads;
pub mod timing;

use std::ffi::OsString;

pub use capabilities::{CapabilitiesError, CapabilityReport};
pub use filesystem::{
    landlock_abi, FsAccess, FsRule, LandlockError, LandlockFeature, LandlockFeatures, LandlockOutcome,
};
pub use limits::{Limit, Resource, RlimitError, RLIMIT_RESOURCES};
pub use paths::canonical;
pub use privileges::NoNewPrivsError;
pub use seccomp_program::{NotificationKind, RuleAction, RuleDescription, SeccompProgram, SockFilter};
pub use supervisor::learning::OBSERVED;
pub use supervisor::network::unmapped;
pub use supervisor::{supervisor_program, OnRefusal, RunBudget, SupervisorError, HANDOFF_FD};
pub use syscall_filter::SeccompError;
pub use tasks::{TaskPlan, TasksError, OWN_UID_BASE};
pub use threads::ThreadsError;

/// Everything the sandbox enforces, decided before [`apply`] runs.
#[derive(Debug)]
pub struct Policy {
    /// The host's name, used in refusal messages (`hlua: sandbox refused execve`).
    pub host: &'static str,
    /// Every resource limit, soft = hard = the value; a resource left out keeps the inherited limit.
    pub rlimits: Vec<(Resource, Limit)>,
    /// The landlock rules; everything else on the filesystem is denied.
    pub fs_rules: Vec<FsRule>,
    /// Run (without the filesystem layer) on a kernel that has no landlock at all.
    pub allow_degraded: bool,
    /// The environment the script sees; nothing else is inherited.
    pub environment: Vec<(OsString, OsString)>,
    /// The generated allow-list for this host and architecture.
    pub seccomp: &'static SeccompProgram,
    /// The most processes and threads the sandbox may have at once (the host included);
    /// `Infinity` leaves RLIMIT_NPROC as inherited.
    pub tasks: Limit,
    /// What a call outside the allow-list gets: an error (default) or the end of the sandbox.
    pub on_refusal: OnRefusal,
    /// What the whole run may use, for hosts whose script creates processes (each process is
    /// bound by its own rlimits; the supervisor sums them): `None` for one-process hosts.
    pub run_budget: Option<RunBudget>,
    /// The TCP endpoints the script may connect to (`--allow-connect`, names resolved by the
    /// host before the sandbox): the supervisor connects the script's socket to these only, and
    /// landlock lets the supervisor reach their ports and nothing else.
    pub connect: Vec<std::net::SocketAddr>,
    /// The names among the `--allow-connect` endpoints, with the addresses the host resolved
    /// them to: the supervisor answers the script's lookups of these (glibc asks nscd, whose
    /// socket the supervisor stands in for) and of no other name.
    pub names: Vec<(String, Vec<std::net::IpAddr>)>,
    /// `--learn`: the supervisor notes what the sandbox refuses and, when the run ends, prints
    /// the options that would grant it. The policy is the same (the host chooses a program that
    /// lets a process be created, so that the program it runs can be named); the supervisor
    /// sees the observed calls first and answers them as the program would.
    pub learn: Option<Learning>,
    /// What stays visible of the command line (`ps`, /proc): the script's name and arguments,
    /// which the script receives anyway. The host's own options are overwritten.
    pub visible_arguments: Vec<OsString>,
}

/// What `--learn` needs to write its report.
#[derive(Clone, Debug, Default)]
pub struct Learning {
    /// The command to repeat with the options learned: the host and its arguments, `--learn`
    /// left out.
    pub command: Vec<OsString>,
    /// The `PATH` the host resolves `--allow-exec NAME` with, so that a program is suggested by
    /// its name when the name finds it.
    pub search_path: Option<OsString>,
    /// The host's CPU limit in seconds (`-r cpu`), to say when the run ended by reaching it.
    pub cpu_seconds: Option<u64>,
    /// Paths the interpreter tries at start and does without (canonical; a `PID` component
    /// stands for any process id): not listed.
    pub probes: Vec<std::path::PathBuf>,
}

/// What [`apply`] achieved, for the host to report.
#[derive(Debug)]
pub struct Applied {
    pub landlock: LandlockOutcome,
    pub capabilities: CapabilityReport,
    pub tasks: TaskPlan,
}

/// A stage that could not be applied. The script must not run.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the host is not single-threaded: {0}")]
    Threads(#[from] ThreadsError),
    #[error("cannot close inherited file descriptors: {0}")]
    Descriptors(std::io::Error),
    #[error("cannot overwrite the original environment in memory: {0}")]
    Environment(std::io::Error),
    #[error("supervisor: {0}")]
    Supervisor(#[from] SupervisorError),
    #[error("rlimits: {0}")]
    Rlimit(#[from] RlimitError),
    #[error("task budget: {0}")]
    Tasks(#[from] TasksError),
    #[error("capabilities: {0}")]
    Capabilities(#[from] CapabilitiesError),
    #[error("no_new_privs: {0}")]
    NoNewPrivs(#[from] NoNewPrivsError),
    #[error("landlock: {0}")]
    Landlock(#[from] LandlockError),
    #[error("seccomp: {0}")]
    Seccomp(#[from] SeccompError),
}

/// Applies `policy` to the calling process, in this order:
///
/// 0. Check that the process has one thread: landlock restricts only the calling thread.
///    Close every inherited descriptor above stderr, replace the environment and overwrite the
///    original environment strings in memory. Make the private stand-ins for stdio, set
///    `no_new_privs` and enter the run's outer landlock domain (the host's rules, which the
///    supervisor keeps and the host's own domain nests in), then fork the supervisor (see
///    `supervisor`), which owns the caller's descriptors, answers refused and emulated calls
///    and ends the run; the parent never returns from here, the child (a new session with
///    private stdio) goes on.
/// 1. rlimits, first, while the host still may lower them all (`SIGXFSZ` is ignored so that a
///    file-size limit surfaces as `EFBIG` rather than a kill).
/// 2. Capabilities: emptied (bounding set too where permitted), so root is no stronger than anyone;
///    run by root, the sandbox takes a real uid of its own so that its task budget binds (`tasks`).
/// 3. `no_new_privs`: no exec can gain privileges again; landlock and seccomp require it unprivileged.
/// 4. Landlock: filesystem, TCP and scopes, as much as the kernel knows; none at all is an error
///    unless `allow_degraded`.
/// 5. Seccomp, last, because every earlier stage makes syscalls the allow-list forbids; its
///    notification listener goes to the supervisor, which hardens itself before the script can run.
pub fn apply(policy: &Policy) -> Result<Applied, SandboxError> {
    timing::mark("apply");
    threads::ensure_single_threaded()?;
    descriptors::close_inherited().map_err(SandboxError::Descriptors)?;
    let original = environment::original_areas(arguments::all().len());
    environment::replace(&policy.environment);
    environment::scrub_original(&original, &policy.visible_arguments).map_err(SandboxError::Environment)?;
    timing::mark("environment");
    // SAFETY: getpid has no preconditions; this process becomes the supervisor and keeps its pid.
    let tasks = tasks::plan(policy.tasks, unsafe { libc::getpid() })?;
    let mut rlimits = policy.rlimits.clone();
    rlimits.retain(|&(resource, _)| resource != Resource::Nproc);
    if let Some(nproc) = tasks.nproc {
        rlimits.push((Resource::Nproc, Limit::Value(nproc)));
    }
    timing::mark("tasks");
    let stdio = supervisor::stdio::Plan::create().map_err(SupervisorError::Stdio)?;
    timing::mark("stdio");
    let mut fs_rules = policy.fs_rules.clone();
    if let Some(path) = &stdio.terminal_path {
        let why = "the private terminal that stands in for the caller's".to_string();
        fs_rules.push(FsRule { path: path.clone(), access: FsAccess::Terminal, why: why.clone() });
        fs_rules.push(FsRule { path: "/dev/tty".into(), access: FsAccess::Terminal, why });
    }
    let output_limit = policy.rlimits.iter().find_map(|&(resource, limit)| match (resource, limit) {
        (Resource::Fsize, Limit::Value(bytes)) => Some(bytes),
        _ => None,
    });
    // Every rule's path opened once, before anything is restricted: the host's ruleset (filled
    // now, entered after the fork) and the run's domain are made from the same descriptors,
    // which are closed before the fork.
    let opened = filesystem::open_rules(&fs_rules)?;
    let grants = supervisor::Grants::new(&opened);
    let host_ruleset = filesystem::host_ruleset(&opened, policy.allow_degraded)?;
    // The supervisor's domain, which the host's nests in (so the supervisor can inspect it);
    // landlock needs no_new_privs of an unprivileged caller, and nothing here execs before it.
    // /proc: the run's CPU and memory (the budgets), and run by root the callers' credentials.
    privileges::set_no_new_privs()?;
    let in_run_domain =
        filesystem::restrict_run(&opened, policy.run_budget.is_some() || tasks.own_uid.is_some(), &policy.connect)?;
    drop(opened);
    let config = supervisor::Config {
        host: policy.host,
        program: policy.seccomp,
        on_refusal: policy.on_refusal,
        own_uid: tasks.own_uid,
        output_limit,
        run_budget: policy.run_budget,
        grants,
        network: supervisor::Granted {
            endpoints: policy.connect.clone(),
            names: policy.names.clone(),
            learning: policy.learn.is_some(),
        },
        in_run_domain,
    };
    timing::mark("run domain");
    let (handoff, host_ruleset) = supervisor::split(config, stdio, policy.learn.clone(), host_ruleset)?;
    timing::mark("fork");
    limits::apply(&rlimits)?;
    timing::mark("rlimits");
    let capabilities = capabilities::drop_all(tasks.own_uid)?;
    timing::mark("capabilities");
    privileges::set_no_new_privs()?;
    let landlock = filesystem::enter(host_ruleset)?;
    timing::mark("landlock");
    let observed;
    let instructions = match &policy.learn {
        Some(_) => {
            observed = policy.seccomp.observing(supervisor::learning::OBSERVED);
            observed.as_slice()
        }
        None => policy.seccomp.instructions,
    };
    let listener = syscall_filter::install(policy.seccomp, instructions, syscall_filter::Listener::Create)?
        .ok_or(SeccompError::Install(std::io::Error::other("no listener returned")))?;
    timing::mark("seccomp");
    handoff.give(listener)?;
    timing::mark("handoff");
    Ok(Applied { landlock, capabilities, tasks })
}
