//! hnode: runs an untrusted Node.js script under h's sandbox. The launcher applies every stage,
//! then replaces itself with the real node found at build time (`node [--max-old-space-size=N] --
//! SCRIPT ARGS...`), which inherits the whole sandbox and the scrubbed environment. node's own
//! threads (V8's platform workers, libuv's threadpool, worker_threads) start after the filter is
//! installed, so every one of them is under it.

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

/// The same with the rules of programs granted by `--allow-exec` (filters/programs.toml).
#[cfg_attr(target_arch = "x86_64", path = "generated/seccomp_programs_x86_64.rs")]
#[cfg_attr(target_arch = "aarch64", path = "generated/seccomp_programs_aarch64.rs")]
#[rustfmt::skip]
mod seccomp_programs;

/// The same with the calls that create and execute a process, for `--learn` (filters/learn.toml).
#[cfg_attr(target_arch = "x86_64", path = "generated/seccomp_learn_x86_64.rs")]
#[cfg_attr(target_arch = "aarch64", path = "generated/seccomp_learn_aarch64.rs")]
#[rustfmt::skip]
mod seccomp_learn;

/// node's path and version, resolved by build.rs.
mod node {
    include!(concat!(env!("OUT_DIR"), "/node.rs"));
}

/// node and its ELF closure, resolved by build.rs (read+execute).
mod resolved {
    include!(concat!(env!("OUT_DIR"), "/runtime_files.rs"));
}

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The memory budget (`-m`): `data`, which every private writable mapping counts (V8's heap,
/// Buffer and ArrayBuffer backing stores, JIT code, thread stacks), shared by all threads; V8's
/// old space gets half of it, so that a heap bomb ends in node's own "heap out of memory".
const MEMORY: u64 = GIB;
/// V8 reserves (PROT_NONE) a large code range and heap cage per isolate, about 500 MiB each, so
/// node needs ~1 GiB of address space to start and every worker adds as much; reservations cost
/// no memory.
const ADDRESS_SPACE_BEYOND_MEMORY: u64 = 16 * GIB;

/// Default limits: what node needs, and zero for everything it does not (memory: see `MEMORY`;
/// processes and threads: see `TASKS`).
const RLIMITS: &[(Resource, Limit)] = &[
    (Resource::Core, Limit::Value(0)),         // no core dumps of the script's memory
    (Resource::Cpu, Limit::Value(60)),         // seconds of CPU, all threads together; -r cpu=inf for long jobs
    (Resource::Fsize, Limit::Value(64 * MIB)), // room for ordinary output redirected to a file
    (Resource::Locks, Limit::Value(0)),
    (Resource::Memlock, Limit::Value(0)),
    (Resource::Msgqueue, Limit::Value(0)),
    (Resource::Nice, Limit::Value(0)),
    // stdio, libuv's epoll, eventfds and pipes, worker ports, open files. Each worker thread takes
    // a few descriptors, so this bounds a worker flood before nproc does.
    (Resource::Nofile, Limit::Value(128)),
    (Resource::Rss, Limit::Value(0)), // not enforced by Linux; zero documents intent
    (Resource::Rtprio, Limit::Value(0)),
    (Resource::Rttime, Limit::Value(0)),
    (Resource::Sigpending, Limit::Value(0)),
    (Resource::Stack, Limit::Value(8 * MIB)),
];

/// The task budget: node's own threads (main, 4 V8 platform workers, 4 libuv threadpool
/// threads, a few helpers: about a dozen) and worker_threads (a few threads each).
const TASKS: u64 = 64;

type Entry = (&'static str, FsAccess, &'static str);

const DEVICES: &[Entry] = &[
    ("/dev/null", FsAccess::ReadWrite, "reading nothing, and discarding output"),
    ("/dev/urandom", FsAccess::Read, "randomness for scripts that read it as a file"),
    ("/proc/sys/kernel/hostname", FsAccess::Read, "os.hostname() (uname already tells it)"),
];

fn interpreter_version() -> String {
    node::NODE_VERSION.to_string()
}

static PROFILE: HostProfile = HostProfile {
    name: "hnode",
    language: "JavaScript (Node.js)",
    interpreter_version,
    rlimits: RLIMITS,
    runtime_files: resolved::RUNTIME_FILES,
    devices: DEVICES,
    seccomp: &seccomp::PROGRAM,
    tasks: TASKS,
    memory: MEMORY,
    runs_programs: false,
    seccomp_with_programs: Some(&seccomp_programs::PROGRAM),
    seccomp_learning: Some(&seccomp_learn::PROGRAM),
    creates_processes: false,
    address_space_beyond_memory: ADDRESS_SPACE_BEYOND_MEMORY,
    refused_variables: REFUSED_VARIABLES,
    probes: &[
        ("/proc/PID/cgroup", "node reads its cgroup to size its heap and thread pool"),
        ("/proc/meminfo", "libuv reads the machine's memory size"),
        ("/proc/PID/maps", "node looks at its own mappings (large pages for its code)"),
        (
            "/etc/resolv.conf",
            "node's resolver (c-ares) reads it when the dns module starts; lookups go through getaddrinfo",
        ),
    ],
};

/// node reads its own flags from NODE_OPTIONS (`--inspect`, `--require`, ...): those are
/// hnode's to decide, so the variable is refused even when named with `--env`.
const REFUSED_VARIABLES: &[(&str, &str)] = &[("NODE_OPTIONS", "node's flags are hnode's to decide")];

h_host::main!(host_main);

/// The host: applies the sandbox, then runs the script; returns the exit status.
fn host_main() -> u8 {
    let node = match Interpreter::locate(Path::new(node::NODE)) {
        Ok(node) => node,
        Err(error) => h_host::fail(PROFILE.name, error),
    };
    let started = h_host::start(&PROFILE);
    let mut arguments: Vec<OsString> = Vec::new();
    // Up to the default budget, the data limit binds before V8's own heap limit, and V8 reports
    // a mapping the limit refuses as "JavaScript heap out of memory" itself. Above it, V8's heap
    // limit follows the budget (half of it), so that the script may use what it was given. Any
    // V8 flag costs every start about 4 ms (node's built-in code cache is keyed on V8's flags,
    // so it is compiled again), hence no flag by default. Weakens nothing either way.
    if let Some(bytes) = started.memory.filter(|&bytes| bytes > MEMORY) {
        let megabytes = (bytes / 2 / MIB).max(64);
        arguments.push(format!("--max-old-space-size={megabytes}").into());
    }
    // No native addons: `require` of a `.node` file and `process.dlopen` fail, so no script (not
    // even a main script named `*.node`) maps native code of its own into node.
    arguments.push("--no-addons".into());
    // `--` ends node's options: a script named like an option is still the script, and the
    // script's arguments are never node's.
    arguments.push("--".into());
    arguments.push(started.script.into_os_string());
    arguments.extend(started.script_args);
    h_sandbox::timing::mark("exec");
    h_sandbox::timing::report();
    let error = node.exec(&arguments);
    h_host::fail(PROFILE.name, error)
}

#[cfg(test)]
mod tests {
    //! The filter's answers to the calls the attacks and node's threads rely on, evaluated on the
    //! generated program.

    use h_sandbox::exec::EXEC_FD;
    use h_sandbox::seccomp_program::bpf;

    use super::seccomp::PROGRAM;

    const ALLOW: u32 = bpf::SECCOMP_RET_ALLOW;

    fn action(name: &str, args: [u64; 6]) -> u32 {
        PROGRAM.action(name, args).unwrap_or_else(|| panic!("no syscall {name}, or a malformed program"))
    }

    fn errno(value: i32) -> u32 {
        bpf::SECCOMP_RET_ERRNO | value as u32
    }

    #[test]
    fn threads_but_no_processes_or_namespaces() {
        let thread = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_SETTLS
            | libc::CLONE_PARENT_SETTID
            | libc::CLONE_CHILD_CLEARTID) as u64;
        assert_eq!(action("clone", [thread, 0, 0, 0, 0, 0]), ALLOW);
        let fork = (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID | libc::SIGCHLD) as u64;
        assert_ne!(action("clone", [fork, 0, 0, 0, 0, 0]), ALLOW);
        assert_ne!(
            action("clone", [(libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD) as u64, 0, 0, 0, 0, 0]),
            ALLOW
        );
        for extra in [libc::CLONE_NEWUSER, libc::CLONE_NEWNS, libc::CLONE_NEWPID, libc::CLONE_NEWNET] {
            assert_ne!(action("clone", [thread | extra as u64, 0, 0, 0, 0, 0]), ALLOW, "{extra:#x}");
        }
        assert_eq!(action("clone3", [0; 6]), errno(libc::ENOSYS));
        assert_eq!(action("io_uring_setup", [0; 6]), errno(libc::ENOSYS));
    }

    #[test]
    fn only_the_launchers_exec() {
        let fd = EXEC_FD as u64;
        let empty_path = libc::AT_EMPTY_PATH as u64;
        // Allowed once: the supervisor lets the launcher's call run and refuses every later one.
        let first_only = bpf::SECCOMP_RET_USER_NOTIF | bpf::NOTIFY_FIRST_ONLY;
        assert_eq!(action("execveat", [fd, 0, 0, 0, empty_path, 0]), first_only);
        assert_eq!(action("execveat", [fd + 1, 0, 0, 0, empty_path, 0]), bpf::SECCOMP_RET_USER_NOTIF);
        assert_ne!(action("execve", [0; 6]), ALLOW);
    }

    #[test]
    fn jit_memory_but_never_anonymous_executable_mmap_or_writable_executable_files() {
        let rwx = (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as u64;
        let rx = (libc::PROT_READ | libc::PROT_EXEC) as u64;
        let anonymous = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
        assert_eq!(action("mprotect", [0, 4096, rwx, 0, 0, 0]), ALLOW);
        assert_ne!(action("mmap", [0, 4096, rwx, anonymous, u64::MAX, 0]), ALLOW);
        assert_ne!(action("mmap", [0, 4096, rx, anonymous, u64::MAX, 0]), ALLOW);
        assert_ne!(action("mmap", [0, 4096, rwx, libc::MAP_PRIVATE as u64, 3, 0]), ALLOW);
        assert_ne!(action("mmap", [0, 4096, rx, libc::MAP_SHARED as u64, 3, 0]), ALLOW);
        assert_eq!(action("mmap", [0, 4096, rx, libc::MAP_PRIVATE as u64, 3, 0]), ALLOW);
    }

    #[test]
    fn no_sockets_no_tiocsti_no_ptrace() {
        assert_ne!(action("socket", [libc::AF_INET as u64, 1, 0, 0, 0, 0]), ALLOW);
        assert_ne!(action("socket", [libc::AF_INET6 as u64, 2, 0, 0, 0, 0]), ALLOW);
        assert_eq!(action("socket", [libc::AF_UNIX as u64, 1, 0, 0, 0, 0]), errno(libc::EACCES));
        assert_ne!(action("socketpair", [libc::AF_UNIX as u64, 1, 0, 0, 0, 0]), ALLOW);
        assert_ne!(action("ioctl", [0, 0x5412, 0, 0, 0, 0]), ALLOW);
        assert_ne!(action("ptrace", [0; 6]), ALLOW);
    }

    #[test]
    fn limits_of_the_own_process_only() {
        // Setting is left to the kernel: soft = hard and no CAP_SYS_RESOURCE, so a raise is EPERM.
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
