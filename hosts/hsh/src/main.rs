//! hsh: runs an untrusted bash script under h's sandbox. The launcher applies every stage, then
//! replaces itself with the real bash found at build time (`bash --norc --noprofile -p -- SCRIPT
//! ARGS...`), which inherits the whole sandbox and the scrubbed environment.

#![cfg_attr(not(test), no_main)]

use std::ffi::OsString;
use std::path::Path;

use h_host::HostProfile;
use h_sandbox::exec::Interpreter;
use h_sandbox::{FsAccess, Limit, Resource};

#[cfg_attr(target_arch = "x86_64", path = "generated/seccomp_x86_64.rs")]
#[cfg_attr(target_arch = "aarch64", path = "generated/seccomp_aarch64.rs")]
#[rustfmt::skip]
mod seccomp;

/// bash's path and version, resolved by build.rs.
mod bash {
    include!(concat!(env!("OUT_DIR"), "/bash.rs"));
}

/// bash and its ELF closure, resolved by build.rs (read+execute).
mod resolved {
    include!(concat!(env!("OUT_DIR"), "/runtime_files.rs"));
}

const MIB: u64 = 1 << 20;

/// The memory budget (`-m`) of each process of the run: `data` is a per-process limit, so bash
/// and every subshell have their own (see docs/hsh.md: the run as a whole may hold up to the
/// task budget times this).
const MEMORY: u64 = 256 * MIB;
/// bash reserves nothing: the address space is the budget plus room for bash and its libraries.
const ADDRESS_SPACE_BEYOND_MEMORY: u64 = 256 * MIB;

/// Default limits: what a shell script needs, and zero for everything it does not.
/// Every process bash forks inherits them, each on its own (a limit is per process) except
/// `nproc`, which the kernel counts per real user id across the whole machine.
const RLIMITS: &[(Resource, Limit)] = &[
    (Resource::Core, Limit::Value(0)),         // no core dumps of the script's memory
    (Resource::Cpu, Limit::Value(60)),         // seconds of CPU per process; -r cpu=inf for long jobs
    (Resource::Fsize, Limit::Value(64 * MIB)), // room for ordinary output redirected to a file
    (Resource::Locks, Limit::Value(0)),
    (Resource::Memlock, Limit::Value(0)),
    (Resource::Msgqueue, Limit::Value(0)),
    (Resource::Nice, Limit::Value(0)),
    (Resource::Nofile, Limit::Value(64)), // stdio, bash's saved descriptors (10 and up), the script, pipes
    (Resource::Rss, Limit::Value(0)),     // not enforced by Linux; zero documents intent
    (Resource::Rtprio, Limit::Value(0)),
    (Resource::Rttime, Limit::Value(0)),
    (Resource::Sigpending, Limit::Value(0)), // SIGCHLD and kill() are not queued against it
    (Resource::Stack, Limit::Value(8 * MIB)),
];

/// The task budget: bash and its subshells, command substitutions and pipeline stages at once,
/// counted for this run alone (root included): a fork bomb stops here.
const TASKS: u64 = 32;

type Entry = (&'static str, FsAccess, &'static str);

/// Devices every shell script uses.
const DEVICES: &[Entry] = &[
    ("/dev/null", FsAccess::ReadWrite, "reading nothing, and discarding output (>/dev/null, 2>&-)"),
    ("/dev/urandom", FsAccess::Read, "randomness for scripts that read it as a file"),
];

fn interpreter_version() -> String {
    bash::BASH_VERSION.to_string()
}

static PROFILE: HostProfile = HostProfile {
    name: "hsh",
    language: "bash",
    interpreter_version,
    rlimits: RLIMITS,
    runtime_files: resolved::RUNTIME_FILES,
    devices: DEVICES,
    seccomp: &seccomp::PROGRAM,
    refused_variables: &[],
    probes: &[
        ("/dev/tty", "bash opens the controlling terminal where it has one"),
        ("/etc/nsswitch.conf", "bash looks its user up (getpwuid) for ~ and $HOME"),
        ("/etc/passwd", "bash looks its user up (getpwuid) for ~ and $HOME"),
    ],
    tasks: TASKS,
    memory: MEMORY,
    runs_programs: true,
    seccomp_with_programs: None,
    seccomp_learning: None,
    creates_processes: true,
    address_space_beyond_memory: ADDRESS_SPACE_BEYOND_MEMORY,
};

h_host::main!(host_main);

/// The host: applies the sandbox, then runs the script; returns the exit status.
fn host_main() -> u8 {
    let bash = match Interpreter::locate(Path::new(bash::BASH)) {
        Ok(bash) => bash,
        Err(error) => h_host::fail(PROFILE.name, error),
    };
    let started = h_host::start(&PROFILE);
    // `--` ends bash's options: a script named like an option is still the script.
    // -p: bash keeps its effective uid when it differs from the real one (run by root, the
    // sandbox moves only the real uid), and ignores SHELLOPTS, BASHOPTS and functions from the
    // environment.
    let mut arguments: Vec<OsString> = vec!["--norc".into(), "--noprofile".into(), "-p".into(), "--".into()];
    arguments.push(started.script.into_os_string());
    arguments.extend(started.script_args);
    h_sandbox::timing::mark("exec");
    h_sandbox::timing::report();
    let error = bash.exec(&arguments);
    h_host::fail(PROFILE.name, error)
}

#[cfg(test)]
mod tests {
    //! The filter's answers to the calls the attacks rely on, evaluated on the generated program.

    use h_sandbox::exec::EXEC_FD;
    use h_sandbox::seccomp_program::bpf;

    use super::seccomp::PROGRAM;

    const ALLOW: u32 = bpf::SECCOMP_RET_ALLOW;

    fn action(name: &str, args: [u64; 6]) -> u32 {
        PROGRAM.action(name, args).unwrap_or_else(|| panic!("no syscall {name}, or a malformed program"))
    }

    #[test]
    fn tiocsti_and_tioclinux_are_denied() {
        const TIOCSTI: u64 = 0x5412;
        const TIOCLINUX: u64 = 0x541C;
        const TCGETS: u64 = 0x5401;
        assert_eq!(action("ioctl", [0, TCGETS, 0, 0, 0, 0]), ALLOW);
        assert_ne!(action("ioctl", [0, TIOCSTI, 0, 0, 0, 0]), ALLOW);
        assert_ne!(action("ioctl", [0, TIOCLINUX, 0, 0, 0, 0]), ALLOW);
        assert_ne!(action("ioctl", [0, TIOCSTI | 1 << 32, 0, 0, 0, 0]), ALLOW);
    }

    #[test]
    fn only_the_launchers_execveat_is_allowed() {
        let fd = EXEC_FD as u64;
        let empty_path = libc::AT_EMPTY_PATH as u64;
        // Allowed once: the supervisor lets the launcher's call run and refuses every later one.
        let first_only = bpf::SECCOMP_RET_USER_NOTIF | bpf::NOTIFY_FIRST_ONLY;
        assert_eq!(action("execveat", [fd, 0, 0, 0, empty_path, 0]), first_only);
        assert_eq!(action("execveat", [fd + 1, 0, 0, 0, empty_path, 0]), bpf::SECCOMP_RET_USER_NOTIF);
        assert_ne!(action("execveat", [libc::AT_FDCWD as u64, 0, 0, 0, 0, 0]), ALLOW);
        assert_ne!(action("execveat", [fd, 0, 0, 0, 0, 0]), ALLOW);
    }

    #[test]
    fn fork_is_allowed_but_not_threads_or_namespaces() {
        let fork = (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID | libc::SIGCHLD) as u64;
        assert_eq!(action("clone", [fork, 0, 0, 0, 0, 0]), ALLOW);
        for extra in [libc::CLONE_VM, libc::CLONE_THREAD, libc::CLONE_NEWUSER, libc::CLONE_NEWNS, libc::CLONE_NEWPID] {
            assert_ne!(action("clone", [fork | extra as u64, 0, 0, 0, 0, 0]), ALLOW, "{extra:#x}");
        }
        assert_eq!(action("clone3", [0; 6]), bpf::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
    }

    #[test]
    fn no_socket_no_ptrace_no_io_uring_no_executable_anonymous_memory() {
        assert_ne!(action("socket", [libc::AF_INET as u64, 1, 0, 0, 0, 0]), ALLOW);
        assert_ne!(action("socket", [libc::AF_INET6 as u64, 1, 0, 0, 0, 0]), ALLOW);
        assert_eq!(
            action("socket", [libc::AF_UNIX as u64, 1, 0, 0, 0, 0]),
            bpf::SECCOMP_RET_ERRNO | libc::EACCES as u32
        );
        assert_ne!(action("ptrace", [0; 6]), ALLOW);
        assert_ne!(action("io_uring_setup", [0; 6]), ALLOW);
        let rwx = (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as u64;
        let rx = (libc::PROT_READ | libc::PROT_EXEC) as u64;
        let anonymous = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
        assert_ne!(action("mmap", [0, 4096, rwx, libc::MAP_PRIVATE as u64, 3, 0]), ALLOW);
        assert_ne!(action("mmap", [0, 4096, rx, anonymous, u64::MAX, 0]), ALLOW);
        assert_eq!(action("mmap", [0, 4096, rx, libc::MAP_PRIVATE as u64, 3, 0]), ALLOW);
        assert_ne!(action("mprotect", [0, 4096, rx, 0, 0, 0]), ALLOW);
    }

    #[test]
    fn limits_of_the_own_process_only() {
        assert_eq!(action("prlimit64", [0, libc::RLIMIT_NOFILE as u64, 0, 0x1000, 0, 0]), ALLOW);
        // Setting is left to the kernel: soft = hard and no CAP_SYS_RESOURCE, so only lowering works.
        assert_eq!(action("prlimit64", [0, libc::RLIMIT_NOFILE as u64, 0x1000, 0, 0, 0]), ALLOW);
        assert_ne!(action("prlimit64", [1, libc::RLIMIT_NOFILE as u64, 0, 0x1000, 0, 0]), ALLOW);
    }

    #[test]
    fn no_process_leaves_the_runs_session_and_no_foreign_cpu_clock() {
        for call in ["setsid", "setpgid", "setpgrp"] {
            if PROGRAM.syscall_names.iter().any(|&(_, name)| name == call) {
                assert_eq!(action(call, [0; 6]), bpf::SECCOMP_RET_USER_NOTIF, "{call}");
            }
        }
        const OTHER_PROCESS_SCHED_CLOCK: u64 = (((!1i64) << 3) | 2) as u64;
        assert_eq!(action("clock_gettime", [libc::CLOCK_MONOTONIC as u64, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(action("clock_gettime", [OTHER_PROCESS_SCHED_CLOCK, 0, 0, 0, 0, 0]), bpf::SECCOMP_RET_USER_NOTIF);
        assert_eq!(
            action("clock_gettime", [OTHER_PROCESS_SCHED_CLOCK & 0xffff_ffff, 0, 0, 0, 0, 0]),
            bpf::SECCOMP_RET_USER_NOTIF
        );
    }
}
