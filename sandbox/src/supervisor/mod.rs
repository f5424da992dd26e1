//! The supervisor: the parent process that owns the edges of a run.
//!
//! [`split`] forks. The child goes on to become the host: a new session and process group, the
//! private stdio of [`stdio`], then every stage of the sandbox; its seccomp program hands every
//! refused call to the supervisor (`SECCOMP_RET_USER_NOTIF`), and it gives the supervisor the
//! notification listener. The parent becomes the supervisor and never returns. It
//!
//! - relays stdin, stdout, stderr and the private terminal (see [`stdio`] and [`relay`]);
//! - answers refused calls: one line per distinct call on stderr, then EPERM for the caller, or
//!   with kill-on-deny the end of the sandbox by SIGSYS (see [`refusals`]);
//! - lets the launcher's one exec run and refuses every later one (`RuleAction::FirstOnly`);
//! - ends the run: when the host's main process ends, or SIGTERM or SIGHUP reaches the
//!   supervisor, every process of the sandbox is killed and reaped before the supervisor exits
//!   with the host's status (see [`children`]); SIGINT and SIGQUIT are passed on first, as a
//!   terminal would, and a second one ends the run.
//!
//! Unlike a SIGSYS handler inside the host, this works when the refused call is made with
//! signals blocked (glibc blocks them around `clone`), after the host has exec'd an interpreter,
//! and in every process the sandbox creates.

mod accounting;
mod arguments;
mod caller;
mod children;
mod emulation;
mod grants;
mod handoff;
mod hardening;
pub(crate) mod learning;
mod names;
pub(crate) mod network;
mod paths;
mod program_pages;
mod refusals;
mod relay;
mod resolver;
mod signals;
pub(crate) mod stdio;
pub(crate) mod sys;
mod terminal;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::seccomp_program::{bpf, NotificationKind, RuleAction, SeccompProgram};
use crate::syscall_filter::SeccompError;
pub use accounting::RunBudget;
use accounting::{Accounting, Spent};
use children::{Children, Ending};
pub(crate) use grants::Grants;
use learning::Learned;
pub(crate) use network::Granted;
pub use refusals::OnRefusal;
use refusals::Reporter;
use relay::Step;
use signals::Signals;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("cannot set up private stdio: {0}")]
    Stdio(io::Error),
    #[error("cannot make the handoff socket: {0}")]
    Pipe(io::Error),
    #[error("cannot become the subreaper of the sandbox: {0}")]
    Subreaper(io::Error),
    #[error("cannot fork the supervisor: {0}")]
    Fork(io::Error),
    #[error("cannot tie the host's life to the supervisor: {0}")]
    DeathSignal(io::Error),
    #[error("cannot install the private stdio in the host: {0}")]
    HostStdio(io::Error),
}

/// What the supervisor needs to know of the policy.
pub(crate) struct Config {
    pub(crate) host: &'static str,
    pub(crate) program: &'static SeccompProgram,
    pub(crate) on_refusal: OnRefusal,
    /// Run by root: the real uid of the sandbox, which the supervisor takes too (to signal it
    /// after an exec, and to count in its task budget).
    pub(crate) own_uid: Option<u32>,
    /// The host's `fsize` limit, applied to what the supervisor writes into the caller's files.
    pub(crate) output_limit: Option<u64>,
    /// What the whole run may use, where the kernel's limits bind each process alone.
    pub(crate) run_budget: Option<RunBudget>,
    /// Where an emulated call may act (the host's landlock grants).
    pub(crate) grants: Grants,
    /// What `--allow-connect` granted: the endpoints the supervisor connects the script's
    /// sockets to, and the names it answers lookups of.
    pub(crate) network: network::Granted,
    /// The launcher entered the run's landlock domain (`filesystem::restrict_run`), which
    /// confines what the supervisor may inspect to the run's own processes.
    pub(crate) in_run_domain: bool,
}

impl Config {
    /// Run by root, the supervisor may inspect the sandbox only with CAP_SYS_PTRACE, which it
    /// keeps only where the run's landlock domain confines it.
    fn inspects_as_root(&self) -> bool {
        self.own_uid.is_some() && self.in_run_domain
    }

    /// Whether the supervisor can read the sandbox's memory and descriptors.
    fn can_inspect(&self) -> bool {
        self.own_uid.is_none() || self.inspects_as_root()
    }
}

pub use handoff::HANDOFF_FD;

/// The filter the supervisor installs on itself once it holds the listener (every call it does
/// not allow ends it), for `--print-policy`.
pub fn supervisor_program() -> &'static SeccompProgram {
    hardening::program()
}

/// The host's side of the listener handoff.
pub(crate) struct Handoff {
    end: OwnedFd,
}

impl Handoff {
    /// Sends the listener to the supervisor and closes the host's copy, so the script can never
    /// read (or answer) its own notifications. Nothing waits: the supervisor takes the listener
    /// and hardens itself while the host goes on, and answers no notification before it is
    /// hardened.
    pub(crate) fn give(self, listener: OwnedFd) -> Result<(), SeccompError> {
        handoff::send(self.end, listener).map_err(SeccompError::Handoff)
    }
}

/// Forks. Returns in the child (the future host), with private stdio installed, its side of
/// the handoff and `host_only` (what the host alone keeps: dropped in the supervisor, so that
/// its descriptors close there); the parent becomes the supervisor and never returns.
/// `learning`: `--learn` (the calls of [`learning::OBSERVED`] come first to the supervisor,
/// which answers them as the program would, and reports at the end).
pub(crate) fn split<HostOnly>(
    config: Config,
    plan: stdio::Plan,
    learning: Option<crate::Learning>,
    host_only: HostOnly,
) -> Result<(Handoff, HostOnly), SupervisorError> {
    let (host_end, supervisor_end) = handoff::pair().map_err(SupervisorError::Pipe)?;
    // Before the fork, so that no orphan of the sandbox can ever miss it.
    children::become_subreaper().map_err(SupervisorError::Subreaper)?;
    // SAFETY: getpid has no preconditions.
    let supervisor_pid = unsafe { libc::getpid() };
    // SAFETY: the process is single-threaded (checked by apply), so the child may go on running
    // arbitrary code after fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SupervisorError::Fork(sys::last_error()));
    }
    let stdio::Plan { host, supervisor, .. } = plan;
    if pid == 0 {
        drop((supervisor_end, supervisor));
        // If the supervisor dies, so does the host: it must never run unsupervised.
        // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory of ours.
        let result = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
        if result != 0 {
            return Err(SupervisorError::DeathSignal(sys::last_error()));
        }
        // SAFETY: getppid has no preconditions.
        if unsafe { libc::getppid() } != supervisor_pid {
            return Err(SupervisorError::DeathSignal(io::Error::other("the supervisor is already gone")));
        }
        host.install().map_err(SupervisorError::HostStdio)?;
        let end = handoff::settle(host_end).map_err(SupervisorError::Pipe)?;
        return Ok((Handoff { end }, host_only));
    }
    drop((host_end, host, host_only));
    // The supervisor never preempts the host when it wakes (SCHED_BATCH): the handoff and the
    // relay run beside the host or after it, not in its place, and the relay finds the host's
    // small writes gathered in its pipe rather than waking for each. Best effort: nothing
    // depends on it. The system call itself: musl's sched_setscheduler only answers ENOSYS.
    // SAFETY: an all-zero sched_param (priority 0; musl's extra fields unused) that lives for
    // the call, which only reads it.
    unsafe {
        let param: libc::sched_param = std::mem::zeroed();
        let (this_process, policy) = (0 as libc::c_long, libc::c_long::from(libc::SCHED_BATCH));
        libc::syscall(libc::SYS_sched_setscheduler, this_process, policy, &param);
    }
    let children = Children { host: pid };
    let signals = match Signals::open() {
        Ok(signals) => signals,
        Err(error) => {
            let _ =
                sys::write_all(2, format!("{}: supervisor: cannot watch signals: {error}\n", config.host).as_bytes());
            children.end_all();
            sys::exit_now(1)
        }
    };
    let accounting = match config.run_budget.map(|budget| Accounting::open(budget, pid)) {
        Some(Ok(accounting)) => Some(accounting),
        Some(Err(error)) => {
            let _ =
                sys::write_all(2, format!("{}: supervisor: cannot watch the run: {error}\n", config.host).as_bytes());
            children.end_all();
            sys::exit_now(1)
        }
        None => None,
    };
    let mut relay = supervisor;
    relay.start();
    let learned = learning.map(Learned::new);
    let mut reporter = Reporter::new(config.host);
    reporter.raw_terminal = relay.stderr_is_raw();
    Supervisor {
        config,
        children,
        relay,
        reporter,
        signals,
        listener: None,
        handoff: Some(supervisor_end),
        first_only_used: false,
        interrupts: 0,
        accounting,
        connecting: Vec::new(),
        lookups: Vec::new(),
        learned,
    }
    .run()
}

struct Supervisor {
    config: Config,
    children: Children,
    relay: stdio::SupervisorSide,
    reporter: Reporter,
    signals: Signals,
    listener: Option<OwnedFd>,
    /// The supervisor's end of the handoff socket, until the listener has been handed over.
    handoff: Option<OwnedFd>,
    first_only_used: bool,
    interrupts: u32,
    accounting: Option<Accounting>,
    /// Connects made for callers that wait on them (`--allow-connect`, blocking sockets).
    connecting: Vec<network::PendingConnect>,
    /// Lookups of names the supervisor answers in nscd's place (`--allow-connect NAME:PORT`).
    lookups: Vec<resolver::Lookup>,
    /// `--learn`: what the run was refused so far.
    learned: Option<Learned>,
}

/// What a polled descriptor is for.
#[derive(Clone, Copy)]
enum Source {
    Signals,
    Handoff,
    Listener,
    Pump(usize),
    Connecting(usize),
    Lookup(usize),
}

/// What became of an emulated call.
enum Emulated {
    /// Answered (or to be answered when a connect ends).
    Answered,
    /// Refused, with the reason to show (empty: none).
    Refused(String),
    /// Refused, where an option would grant it (`--learn` has noted the option).
    Grantable(String),
}

/// How long to wait before looking again whether the script has read the keys it was given.
const GATE_RECHECK_MS: u64 = 20;

/// How long the supervisor, holding the listener, waits for the launcher's exec before it
/// hardens itself anyway (the launcher execs within microseconds of the handoff; a launcher that
/// failed closes the listener, which ends the wait at once).
const LAUNCHER_EXEC_WAIT_MS: libc::c_int = 100;

impl Supervisor {
    fn run(mut self) -> ! {
        // The host may have ended before the signalfd existed.
        if let Some(ending) = self.children.collect() {
            self.finish(ending);
        }
        loop {
            let mut polls: Vec<libc::pollfd> = Vec::new();
            let mut sources: Vec<Source> = Vec::new();
            let mut add = |fd: RawFd, events: libc::c_short, source: Source| {
                polls.push(libc::pollfd { fd, events, revents: 0 });
                sources.push(source);
            };
            add(self.signals.raw(), libc::POLLIN, Source::Signals);
            if let Some(end) = &self.handoff {
                add(end.as_raw_fd(), libc::POLLIN, Source::Handoff);
            }
            if let Some(listener) = &self.listener {
                add(listener.as_raw_fd(), libc::POLLIN, Source::Listener);
            }
            for (index, pending) in self.connecting.iter().enumerate() {
                add(pending.raw(), libc::POLLOUT, Source::Connecting(index));
            }
            for (index, lookup) in self.lookups.iter().enumerate() {
                add(lookup.raw(), libc::POLLIN, Source::Lookup(index));
            }
            let mut gated = false;
            for (index, pump) in self.relay.pumps.iter().enumerate() {
                gated |= pump.is_gated();
                if let Some((fd, events)) = pump.interest() {
                    add(fd, events, Source::Pump(index));
                }
            }
            let mut wait = gated.then(|| std::time::Duration::from_millis(GATE_RECHECK_MS));
            if let Some(accounting) = &self.accounting {
                let next = accounting.timeout();
                wait = Some(wait.map_or(next, |gate| gate.min(next)));
            }
            let timeout = wait.map(|wait| libc::timespec {
                // 64 bits on the 64-bit targets, with glibc and musl (whose `time_t` the libc
                // crate marks deprecated, so it is not named here).
                tv_sec: wait.as_secs().try_into().unwrap_or(i64::MAX),
                tv_nsec: libc::c_long::from(wait.subsec_nanos() as i32),
            });
            let timeout_pointer = timeout.as_ref().map_or(std::ptr::null(), |timeout| timeout as *const libc::timespec);
            // SAFETY: the pollfds are ours; the timeout is null or points at a live timespec.
            let ready = unsafe {
                libc::ppoll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, timeout_pointer, std::ptr::null())
            };
            if let Some(spent) = self.accounting.as_mut().and_then(Accounting::check) {
                self.spent(spent);
            }
            if ready < 0 {
                continue;
            }
            let mut connected = Vec::new();
            let mut asked = Vec::new();
            for (poll, source) in polls.iter().zip(sources) {
                if poll.revents == 0 {
                    continue;
                }
                match source {
                    Source::Connecting(index) => connected.push(index),
                    Source::Lookup(index) => asked.push(index),
                    Source::Signals => self.on_signals(),
                    Source::Handoff => self.take_listener(),
                    Source::Listener if poll.revents & libc::POLLIN != 0 => self.on_notification(),
                    // POLLHUP: no process is left under the filter; SIGCHLD follows.
                    Source::Listener => self.listener = None,
                    Source::Pump(index) => {
                        if let Some(pump) = self.relay.pumps.get_mut(index) {
                            if pump.run() == Step::Stopped {
                                if let Some(problem) = pump.take_problem() {
                                    self.reporter.line(&problem);
                                }
                            }
                        }
                    }
                }
            }
            self.answer_connected(&connected);
            self.answer_lookups(&asked);
        }
    }

    /// Reads the lookups whose ends are readable (`indexes` into `lookups`, ascending), answers
    /// the whole requests, and names each name that is not granted.
    fn answer_lookups(&mut self, indexes: &[usize]) {
        for &index in indexes.iter().rev() {
            let Some(lookup) = self.lookups.get_mut(index) else { continue };
            match lookup.on_readable(&self.config.network.names, self.learned.as_mut()) {
                resolver::Step::Waiting => {}
                resolver::Step::Over(refused) => {
                    self.lookups.swap_remove(index);
                    if let Some(name) = refused {
                        let what = format!("the lookup of {name:?}: not a granted name (--allow-connect NAME:PORT)");
                        self.name_refusal(&what, false);
                    }
                }
            }
        }
    }

    /// Prints `sandbox refused WHAT` after what the script wrote so far, once per distinct
    /// refusal (`always`: again, for the refusal that ends the run).
    fn name_refusal(&mut self, what: &str, always: bool) {
        if self.reporter.is_new(what) || always {
            self.relay.flush_ready();
            self.reporter.line(&format!("sandbox refused {what}"));
        }
    }

    /// Answers the callers whose connects have ended (`indexes` into `connecting`, ascending).
    fn answer_connected(&mut self, indexes: &[usize]) {
        for &index in indexes.iter().rev() {
            let pending = self.connecting.swap_remove(index);
            if let Some(listener) = self.listener.as_ref().map(AsRawFd::as_raw_fd) {
                let _ = refusals::answer_with(listener, pending.id, pending.outcome());
            }
        }
    }

    fn on_signals(&mut self) {
        while let Some(signal) = self.signals.next() {
            match signal {
                libc::SIGCHLD => {
                    if let Some(ending) = self.children.collect() {
                        self.finish(ending);
                    }
                }
                libc::SIGINT | libc::SIGQUIT => {
                    self.interrupts += 1;
                    if self.interrupts == 1 {
                        self.children.forward(signal);
                    } else {
                        self.terminate(signal);
                    }
                }
                libc::SIGTERM | libc::SIGHUP => self.terminate(signal),
                libc::SIGWINCH => self.relay.copy_window_size(),
                _ => {}
            }
        }
    }

    /// The run has used its whole CPU or memory budget: it ends as a process past RLIMIT_CPU
    /// would (SIGXCPU), or as the kernel ends a process out of memory (SIGKILL).
    fn spent(&mut self, spent: Spent) -> ! {
        self.relay.flush_ready();
        match spent {
            Spent::Cpu(seconds) => {
                if let Some(learned) = self.learned.as_mut() {
                    learned.reached(format!("-r cpu={}: the run's CPU budget ({seconds} s) was spent", seconds * 2));
                }
                self.reporter.line(&format!("the run's CPU budget ({seconds} s, all its processes together) is spent"));
                self.terminate(libc::SIGXCPU)
            }
            Spent::Memory(bytes) => {
                if let Some(learned) = self.learned.as_mut() {
                    learned.reached(format!(
                        "-m {}M: the run's memory budget ({} MiB) was exceeded",
                        (bytes >> 20) * 2,
                        bytes >> 20
                    ));
                }
                self.reporter.line(&format!(
                    "the run's memory budget ({} MiB, all its processes together) is exceeded",
                    bytes >> 20
                ));
                self.terminate(libc::SIGKILL)
            }
        }
    }

    /// The host sent its listener: keep it, and harden before anything else is read.
    fn take_listener(&mut self) {
        let Some(end) = self.handoff.take() else { return };
        crate::timing::mark("supervisor: listener received");
        let listener = match handoff::receive(&end) {
            Ok(Some(listener)) => listener,
            // The host failed before installing its filter; it has said why, and will exit.
            Ok(None) | Err(_) => return,
        };
        // The launcher's exec is answered first, with an ordinary wake-up: the interpreter then
        // starts on its own CPU while the supervisor hardens on this one.
        let held = self.let_the_launcher_exec(listener.as_raw_fd());
        refusals::prefer_synchronous_wake_ups(listener.as_raw_fd());
        // Nothing the script controls (no notification from its code, no relayed byte) is read
        // before this function has returned, and it returns hardened or not at all.
        if let Err(error) =
            hardening::harden(self.config.own_uid, self.config.output_limit, self.config.inspects_as_root())
        {
            self.reporter.line(&format!("cannot harden the supervisor: {error}"));
            self.children.end_all();
            self.relay.restore_terminal();
            sys::exit_now(1);
        }
        crate::timing::mark("supervisor: hardened");
        let raw = listener.as_raw_fd();
        self.listener = Some(listener);
        if let Some(notification) = held {
            self.answer(raw, notification);
        }
    }

    /// hsh's and hnode's launcher execs its interpreter right after the handoff, and that exec
    /// is notified (`RuleAction::FirstOnly`). It is let run before the supervisor hardens itself,
    /// which then overlaps the interpreter's start instead of delaying it (about 0.3 ms of every
    /// run on a machine with costly system calls: docs/overhead.md). Safe because nothing of the
    /// script has run yet: the host is the launcher's one thread, on the launcher's own code,
    /// until this exec succeeds. Only that notification is answered here: the first one, if it
    /// comes within `LAUNCHER_EXEC_WAIT_MS`, is of the FirstOnly kind and from the host's main
    /// thread; any other first notification is returned unanswered, to be answered once the
    /// supervisor is hardened, and the script's own calls come after the exec.
    fn let_the_launcher_exec(&mut self, listener: RawFd) -> Option<libc::seccomp_notif> {
        let launcher_execs = self.config.program.rules.iter().any(|rule| rule.action == RuleAction::FirstOnly);
        if !launcher_execs || self.first_only_used || self.learned.is_some() {
            return None;
        }
        let mut poll = libc::pollfd { fd: listener, events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd of ours, for the call.
        let ready = unsafe { libc::poll(&mut poll, 1, LAUNCHER_EXEC_WAIT_MS) };
        if ready != 1 || poll.revents & libc::POLLIN == 0 {
            return None; // the launcher failed before its exec (POLLHUP), or is slow: the loop answers
        }
        let notification = refusals::receive(listener)?;
        let data = notification.data;
        let from_launcher = i64::from(notification.pid) == i64::from(self.children.host);
        if from_launcher
            && self.config.program.notification_kind(data.nr, data.arch, data.args) == NotificationKind::FirstOnly
        {
            self.first_only_used = true;
            let _ = refusals::answer(listener, notification.id, true);
            crate::timing::mark("supervisor: launcher's exec let run");
            return None;
        }
        Some(notification)
    }

    fn on_notification(&mut self) {
        let Some(listener) = self.listener.as_ref().map(AsRawFd::as_raw_fd) else { return };
        let Some(notification) = refusals::receive(listener) else { return };
        self.answer(listener, notification);
    }

    /// Answers one notification received on `listener`.
    fn answer(&mut self, listener: RawFd, notification: libc::seccomp_notif) {
        let data = notification.data;
        if self.learned.is_some() && self.observe(listener, &notification) {
            return;
        }
        let kind = self.config.program.notification_kind(data.nr, data.arch, data.args);
        if kind == NotificationKind::FirstOnly && !self.first_only_used {
            self.first_only_used = true;
            let _ = refusals::answer(listener, notification.id, true);
            return;
        }
        let mut what = refusals::describe(self.config.program, &data);
        if kind == NotificationKind::FirstOnly {
            what.push_str(" (only the launcher's first one is allowed)");
        }
        let mut grantable = false;
        if kind == NotificationKind::Emulated {
            let notified =
                caller::Notified { listener, id: notification.id, tid: notification.pid, host: self.children.host };
            match self.emulate(notified, &data) {
                Emulated::Answered => return,
                Emulated::Refused(reason) if !reason.is_empty() => {
                    what.push_str(": ");
                    what.push_str(&reason);
                }
                Emulated::Refused(_) => {}
                Emulated::Grantable(reason) => {
                    grantable = true;
                    what.push_str(": ");
                    what.push_str(&reason);
                }
            }
        }
        let kill = self.config.on_refusal == OnRefusal::Kill;
        if let Some(learned) = self.learned.as_mut().filter(|_| !grantable) {
            learned.refused_call(&what);
        }
        self.name_refusal(&what, kill);
        if kill {
            self.terminate(libc::SIGSYS);
        }
        let _ = refusals::answer(listener, notification.id, false);
    }

    /// Makes an emulated call for its caller (or lets it run, or starts a connect the caller
    /// waits on), or says why not.
    fn emulate(&mut self, notified: caller::Notified, data: &libc::seccomp_data) -> Emulated {
        let answer = |result| {
            let _ = refusals::answer_with(notified.listener, notified.id, result);
            Emulated::Answered
        };
        let can_inspect = self.config.can_inspect();
        let granted = &self.config.network;
        let outcome = match self.config.program.syscall_name(data.nr as u32) {
            Some("socket") => network::socket(granted, data.args),
            Some("connect") => network::connect(granted, can_inspect, notified, data.args, self.lookups.len()),
            _ => {
                return match emulation::emulate(self.config.program, &self.config.grants, can_inspect, notified, data) {
                    emulation::Answer::Made(result) => answer(result),
                    emulation::Answer::Refused(reason) => Emulated::Refused(reason.to_string()),
                    emulation::Answer::Unreachable => Emulated::Refused(String::new()),
                }
            }
        };
        match outcome {
            network::Outcome::Continue => {
                let _ = refusals::answer(notified.listener, notified.id, true);
                Emulated::Answered
            }
            network::Outcome::Made(result) => answer(result),
            network::Outcome::Pending(pending) => {
                self.connecting.push(pending);
                Emulated::Answered
            }
            network::Outcome::Lookup(lookup) => {
                self.lookups.push(lookup);
                answer(Ok(0))
            }
            network::Outcome::Refused(reason) => Emulated::Refused(reason),
            network::Outcome::NotGranted(wanted) => {
                if let Some(learned) = self.learned.as_mut() {
                    learned.endpoint(wanted);
                }
                Emulated::Grantable(format!("{wanted} is not a granted endpoint (--allow-connect)"))
            }
            network::Outcome::Unreachable => Emulated::Refused(String::new()),
        }
    }

    /// `--learn`: a call of [`learning::OBSERVED`] (the prefix of the host's program hands
    /// them over whatever the program says). Notes what its path needs, then answers as the
    /// program does: runs it (landlock decides), or fails it with the program's errno. Returns
    /// false for a call the program hands to the supervisor itself (refused, emulated), which
    /// goes on as any notification.
    fn observe(&mut self, listener: RawFd, notification: &libc::seccomp_notif) -> bool {
        let data = notification.data;
        let native = data.arch == self.config.program.audit_arch
            && !(data.arch == bpf::AUDIT_ARCH_X86_64 && data.nr as u32 & bpf::X32_SYSCALL_BIT != 0);
        let Some(call) = self.config.program.syscall_name(data.nr as u32).filter(|_| native) else { return false };
        if !learning::OBSERVED.contains(&call) {
            return false;
        }
        let decided = self.config.program.decide(data.nr, data.arch, data.args);
        let answer = match decided {
            Some(bpf::SECCOMP_RET_ALLOW) => None,
            Some(action) if action & bpf::ACTION_MASK == bpf::SECCOMP_RET_ERRNO => Some((action & 0xffff) as i32),
            _ => return false,
        };
        let notified =
            caller::Notified { listener, id: notification.id, tid: notification.pid, host: self.children.host };
        if let Some(learned) = self.learned.as_mut() {
            // Without landlock nothing refuses a path (and run by root the supervisor could
            // not inspect the caller anyway).
            if !self.config.in_run_domain {
                learned.without_landlock();
            } else if let Ok(caller) = caller::Caller::open(notified) {
                learned.observe(&self.config.grants, &caller, call, data.args);
            }
        }
        let _ = match answer {
            None => refusals::answer(listener, notification.id, true),
            Some(errno) => refusals::answer_with(listener, notification.id, Err(errno)),
        };
        true
    }

    /// `--learn`: prints what the run was refused, after everything the script wrote.
    fn print_learned(&mut self, ending: Ending) {
        let Some(learned) = self.learned.as_mut() else { return };
        if ending == Ending::Killed(libc::SIGKILL) {
            learned.killed(sys::reaped_cpu_micros());
        }
        // After the relay has finished, the caller's terminal is back in its own mode.
        self.reporter.raw_terminal = false;
        for line in learned.report(ending == Ending::Exited(0)) {
            self.reporter.line(&line);
        }
    }

    /// The host's main process has ended: end every other process, deliver the last output,
    /// and exit as the host did.
    fn finish(&mut self, ending: Ending) -> ! {
        crate::timing::mark("supervisor: host ended");
        self.children.end_all();
        crate::timing::mark("supervisor: run reaped");
        self.relay.finish();
        crate::timing::mark("supervisor: output drained");
        self.print_learned(ending);
        crate::timing::report();
        ending.imitate()
    }

    /// The run is cut short (SIGTERM, SIGHUP, a second SIGINT, kill-on-deny): end every process
    /// of the sandbox, deliver what it wrote, and end by `signal`.
    fn terminate(&mut self, signal: libc::c_int) -> ! {
        self.children.end_all();
        self.relay.finish();
        self.print_learned(Ending::Killed(signal));
        signals::die_by(signal)
    }
}
