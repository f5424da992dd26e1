//! `--print-policy`: the complete effective policy, as a person reads it.

use std::fmt::Write as _;

use h_sandbox::{LandlockFeatures, Limit, Policy, Resource, RuleAction, RLIMIT_RESOURCES};

use crate::{HostProfile, Options, Started};

pub(crate) fn render(profile: &HostProfile, options: &Options, policy: &Policy, started: &Started) -> String {
    let mut out = String::new();
    let host = profile.name;
    let _ = writeln!(out, "{host} {} policy for {}", env!("CARGO_PKG_VERSION"), started.script_path.display());
    let _ = writeln!(out, "interpreter: {}", (profile.interpreter_version)());
    let _ = writeln!(
        out,
        "order: rlimits -> capabilities -> no_new_privs -> landlock -> seccomp, before the script's first line"
    );

    let _ = writeln!(out, "\nlandlock:");
    match h_sandbox::landlock_abi() {
        Some(abi) => {
            let _ = writeln!(out, "  kernel ABI {abi}; enforced features:");
            for (feature, enforced) in (LandlockFeatures { abi }).describe() {
                let _ = writeln!(out, "    [{}] {feature}", if enforced { "x" } else { " " });
            }
        }
        None if options.allow_degraded => {
            let _ = writeln!(out, "  NOT ENFORCED: the kernel has no landlock and --allow-degraded was given;");
            let _ =
                writeln!(out, "  the filesystem, TCP and scope restrictions below are missing (seccomp still applies)");
        }
        None => {
            let _ = writeln!(
                out,
                "  UNAVAILABLE: the kernel has no landlock; {host} refuses to run without --allow-degraded"
            );
        }
    }
    let abi = h_sandbox::landlock_abi().unwrap_or(0);
    if abi >= 1 {
        let _ = writeln!(out, "  rules (everything else on the filesystem is denied):");
    } else {
        let _ = writeln!(out, "  rules (NOT ENFORCED on this kernel; what landlock would grant):");
    }
    for rule in &policy.fs_rules {
        let _ = writeln!(out, "    {:<13} {}  ({})", rule.access.describe(), rule.path.display(), rule.why);
    }
    if abi >= 4 {
        let _ = writeln!(out, "  network: every TCP bind and connect denied (no port rules)");
    } else {
        let _ = writeln!(out, "  network: TCP not restricted by landlock on this kernel (ABI < 4); seccomp decides");
    }
    if abi >= 6 {
        let _ =
            writeln!(out, "  scopes: no signals to, and no abstract unix sockets of, processes outside the sandbox");
    } else {
        let _ =
            writeln!(out, "  scopes: not enforced on this kernel (ABI < 6); seccomp decides which signals and sockets");
    }

    let program = policy.seccomp;
    let refusal = match policy.on_refusal {
        h_sandbox::OnRefusal::Error => {
            "refuse with EPERM, printing \"{host}: sandbox refused NAME(ARG)\" once per call"
        }
        h_sandbox::OnRefusal::Kill => {
            "refuse, printing \"{host}: sandbox refused NAME(ARG)\", then end the sandbox by SIGSYS (-k)"
        }
    }
    .replace("{host}", host);
    let _ =
        writeln!(out, "\nseccomp ({}, {} instructions; default: {refusal};", program.arch, program.instructions.len());
    let _ = writeln!(out, "  other architectures and x32 calls denied; argument checks compare all 64 bits):");
    for rule in program.rules {
        let action = match rule.action {
            RuleAction::Allow => "allow".to_string(),
            RuleAction::Errno(errno) => format!("errno {errno}"),
            RuleAction::FirstOnly => "allow once".to_string(),
        };
        let condition =
            if rule.conditions.is_empty() { String::new() } else { format!(" if {}", rule.conditions.join(" and ")) };
        let _ = writeln!(out, "  {action} {}{condition}", rule.syscall);
        let _ = writeln!(out, "      # {}", rule.why);
    }

    let _ = writeln!(out, "\nrlimits (soft = hard):");
    for resource in RLIMIT_RESOURCES {
        if resource == Resource::Nproc {
            let _ = writeln!(out, "  {:<11} {:<10} see tasks below", resource.name(), "budget");
            continue;
        }
        let value = match policy.rlimits.iter().find(|(set, _)| *set == resource) {
            Some((_, limit)) => limit.to_string(),
            None => match resource.current() {
                Ok((soft, hard)) => format!("inherited (soft {soft}, hard {hard})"),
                Err(error) => format!("inherited (unreadable: {error})"),
            },
        };
        let _ = writeln!(out, "  {:<11} {value:<10} {}", resource.name(), resource.unit());
    }
    let _ = writeln!(out, "  SIGXFSZ ignored: writing past fsize fails with EFBIG instead of killing {host}");

    let _ = writeln!(
        out,
        "\ncapabilities: effective, permitted, inheritable and ambient emptied (any uid, root included);"
    );
    let _ = writeln!(
        out,
        "  bounding set emptied and securebits locked (NOROOT, NO_SETUID_FIXUP) when run with CAP_SETPCAP"
    );
    match policy.tasks {
        Limit::Infinity => {
            let _ = writeln!(out, "tasks: no budget (--tasks inf): RLIMIT_NPROC as inherited, uid unchanged");
        }
        Limit::Value(tasks) => {
            let _ = writeln!(
                out,
                "tasks: at most {tasks} processes and threads at once in this run, {host} included (RLIMIT_NPROC):"
            );
            let _ = writeln!(
                out,
                "  run by a user: the tasks the user runs at start + {tasks}; racy with the user's other"
            );
            let _ = writeln!(out, "  processes only (if they end meanwhile, the run may grow by as many)");
            let _ = writeln!(
                out,
                "  run by root: a real uid of the run's own ({} + the supervisor's pid), so the limit counts the run",
                h_sandbox::OWN_UID_BASE
            );
            let _ = writeln!(
                out,
                "  alone; effective, saved and filesystem uid stay 0 (files stay root's, without capabilities;"
            );
            let _ = writeln!(
                out,
                "  a kernel that resets the effective uid at an exec under no_new_privs makes it the run's own)"
            );
        }
    }
    let _ = writeln!(out, "no_new_privs: set");
    let _ = writeln!(
        out,
        "supervisor: a parent process answers refused calls, relays stdio and ends every process of the run"
    );
    let _ = writeln!(
        out,
        "  when {host}'s main process ends; it has no capabilities, no filesystem access and its own filter"
    );
    let _ =
        writeln!(out, "file descriptors: only 0, 1 and 2, and those are private stand-ins relayed by the supervisor:");
    let _ = writeln!(out, "  pipes, /dev/null for /dev/null, and one private pseudo-terminal for every terminal");
    let _ =
        writeln!(out, "  (granted as /dev/pts/N and /dev/tty: read, write, ioctl); a new session and process group");
    if policy.environment.is_empty() {
        let _ = writeln!(out, "environment: empty");
    } else {
        let _ = writeln!(out, "environment:");
        for (name, value) in &policy.environment {
            let _ = writeln!(out, "  {}={}", name.to_string_lossy(), value.to_string_lossy());
        }
    }
    let arguments: Vec<String> = started.script_args.iter().map(|arg| arg.to_string_lossy().into_owned()).collect();
    let _ = writeln!(out, "script arguments: {arguments:?}");
    out
}
