//! The supervisor lets the launcher's exec run and refuses every later one (`RuleAction::FirstOnly`),
//! and a refused call fails with EPERM and is reported by name. A fresh process applies a real
//! policy whose program sends `execveat` to the supervisor as first-only and `getppid` as refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use h_sandbox::exec::Interpreter;
use h_sandbox::seccomp_program::bpf::*;
use h_sandbox::{FsAccess, FsRule, Limit, OnRefusal, Policy, RuleAction, RuleDescription, SeccompProgram, SockFilter};

fn instruction(code: u16, jt: u8, jf: u8, k: u32) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

fn program() -> &'static SeccompProgram {
    let audit_arch = if cfg!(target_arch = "x86_64") { AUDIT_ARCH_X86_64 } else { AUDIT_ARCH_AARCH64 };
    let instructions = vec![
        instruction(LD_W_ABS, 0, 0, OFFSET_ARCH),
        instruction(JMP_JEQ_K, 1, 0, audit_arch),
        instruction(RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        instruction(LD_W_ABS, 0, 0, OFFSET_NR),
        instruction(JMP_JEQ_K, 0, 1, libc::SYS_execveat as u32),
        instruction(RET_K, 0, 0, SECCOMP_RET_USER_NOTIF | NOTIFY_FIRST_ONLY),
        instruction(JMP_JEQ_K, 0, 1, libc::SYS_getppid as u32),
        instruction(RET_K, 0, 0, SECCOMP_RET_USER_NOTIF | NOTIFY_REFUSED),
        instruction(RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ];
    let rules = vec![RuleDescription {
        syscall: "execveat",
        action: RuleAction::FirstOnly,
        conditions: &[],
        arguments: &[],
        why: "the test's one exec",
    }];
    let names: &'static [(u32, &'static str)] = Box::leak(
        vec![(libc::SYS_getppid as u32, "getppid"), (libc::SYS_execveat as u32, "execveat")]
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    Box::leak(Box::new(SeccompProgram {
        arch: std::env::consts::ARCH,
        audit_arch,
        instructions: Box::leak(instructions.into_boxed_slice()),
        rules: Box::leak(rules.into_boxed_slice()),
        syscall_names: names,
    }))
}

fn policy() -> Policy {
    Policy {
        host: "exec-once-test",
        rlimits: Vec::new(),
        fs_rules: vec![FsRule { path: "/".into(), access: FsAccess::ReadExecute, why: "the test binary".into() }],
        allow_degraded: true,
        environment: Vec::new(),
        seccomp: program(),
        tasks: Limit::Infinity,
        on_refusal: OnRefusal::Error,
        run_budget: None,
        connect: Vec::new(),
        learn: None,
        names: Vec::new(),
        visible_arguments: Vec::new(),
    }
}

/// Under the sandbox, after the first exec: try a second one.
fn second() -> ! {
    // SAFETY: getppid takes no arguments; the filter refuses it (EPERM), which is the point.
    // Through syscall(), which sets errno (glibc's getppid wrapper assumes it cannot fail).
    let parent = unsafe { libc::syscall(libc::SYS_getppid) };
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    println!("getppid: {parent} errno {errno}");
    let me = Interpreter::locate(&std::env::current_exe().unwrap()).unwrap();
    let error = me.exec(&["--third".into()]);
    println!("second exec failed: {error}");
    std::process::exit(0)
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("--second") => second(),
        Some("--third") => {
            println!("the second exec ran");
            std::process::exit(3)
        }
        _ => {}
    }
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fresh descriptors into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both are fresh and ours.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the test is single-threaded (harness = false), so the child may run anything.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: dup2 onto stdout and stderr of the child.
        unsafe {
            libc::dup2(write_end.as_raw_fd(), 1);
            libc::dup2(write_end.as_raw_fd(), 2);
        }
        drop((read_end, write_end));
        if let Err(error) = h_sandbox::apply(&policy()) {
            println!("apply failed: {error}");
            std::process::exit(1);
        }
        let me = Interpreter::locate(Path::new(&std::env::current_exe().unwrap())).unwrap();
        let error = me.exec(&["--second".into()]);
        println!("first exec failed: {error}");
        std::process::exit(1);
    }
    drop(write_end);
    let mut output = String::new();
    std::fs::File::from(read_end).read_to_string(&mut output).unwrap();
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    println!("{output}");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "status {status}: {output}");
    assert!(output.contains(&format!("getppid: -1 errno {}", libc::EPERM)), "{output}");
    assert!(output.contains("exec-once-test: sandbox refused getppid"), "{output}");
    assert!(output.contains("second exec failed"), "{output}");
    assert!(output.contains("exec-once-test: sandbox refused execveat (only the launcher's first one is allowed)"));
    assert!(!output.contains("the second exec ran"), "{output}");
    println!("exec_once: ok");
}
