//! Names for the argument values that decide a refusal, so that a report reads
//! `socket(AF_INET6)` rather than `socket(10)`. Values without a name are printed in hex.

const ADDRESS_FAMILIES: &[(u64, &str)] = &[
    (0, "AF_UNSPEC"),
    (1, "AF_UNIX"),
    (2, "AF_INET"),
    (4, "AF_IPX"),
    (5, "AF_APPLETALK"),
    (9, "AF_X25"),
    (10, "AF_INET6"),
    (15, "AF_KEY"),
    (16, "AF_NETLINK"),
    (17, "AF_PACKET"),
    (29, "AF_CAN"),
    (31, "AF_BLUETOOTH"),
    (38, "AF_ALG"),
    (40, "AF_VSOCK"),
    (44, "AF_XDP"),
];

const IOCTLS: &[(u64, &str)] = &[
    (0x5401, "TCGETS"),
    (0x5402, "TCSETS"),
    (0x5403, "TCSETSW"),
    (0x5404, "TCSETSF"),
    (0x540E, "TIOCSCTTY"),
    (0x540F, "TIOCGPGRP"),
    (0x5410, "TIOCSPGRP"),
    (0x5412, "TIOCSTI"),
    (0x5413, "TIOCGWINSZ"),
    (0x5414, "TIOCSWINSZ"),
    (0x541B, "FIONREAD"),
    (0x541C, "TIOCLINUX"),
    (0x5421, "FIONBIO"),
    (0x5422, "TIOCNOTTY"),
    (0x5450, "FIONCLEX"),
    (0x5451, "FIOCLEX"),
    (0x5452, "FIOASYNC"),
    (0x80045430, "TIOCGPTN"),
    (0x5441, "TIOCGPTPEER"),
];

const FCNTL_COMMANDS: &[(u64, &str)] = &[
    (0, "F_DUPFD"),
    (1, "F_GETFD"),
    (2, "F_SETFD"),
    (3, "F_GETFL"),
    (4, "F_SETFL"),
    (5, "F_GETLK"),
    (6, "F_SETLK"),
    (7, "F_SETLKW"),
    (8, "F_SETOWN"),
    (9, "F_GETOWN"),
    (10, "F_SETSIG"),
    (11, "F_GETSIG"),
    (36, "F_OFD_GETLK"),
    (37, "F_OFD_SETLK"),
    (38, "F_OFD_SETLKW"),
    (1024, "F_SETLEASE"),
    (1025, "F_GETLEASE"),
    (1026, "F_NOTIFY"),
    (1030, "F_DUPFD_CLOEXEC"),
    (1031, "F_SETPIPE_SZ"),
    (1032, "F_GETPIPE_SZ"),
    (1033, "F_ADD_SEALS"),
    (1034, "F_GET_SEALS"),
];

const CLOCKS: &[(u64, &str)] = &[
    (0, "CLOCK_REALTIME"),
    (1, "CLOCK_MONOTONIC"),
    (2, "CLOCK_PROCESS_CPUTIME_ID"),
    (3, "CLOCK_THREAD_CPUTIME_ID"),
    (4, "CLOCK_MONOTONIC_RAW"),
    (5, "CLOCK_REALTIME_COARSE"),
    (6, "CLOCK_MONOTONIC_COARSE"),
    (7, "CLOCK_BOOTTIME"),
    (8, "CLOCK_REALTIME_ALARM"),
    (9, "CLOCK_BOOTTIME_ALARM"),
    (11, "CLOCK_TAI"),
];

const SIGNALS: &[(u64, &str)] = &[
    (1, "SIGHUP"),
    (2, "SIGINT"),
    (3, "SIGQUIT"),
    (6, "SIGABRT"),
    (9, "SIGKILL"),
    (10, "SIGUSR1"),
    (12, "SIGUSR2"),
    (13, "SIGPIPE"),
    (14, "SIGALRM"),
    (15, "SIGTERM"),
    (17, "SIGCHLD"),
    (18, "SIGCONT"),
    (19, "SIGSTOP"),
    (31, "SIGSYS"),
];

const PRCTL_OPTIONS: &[(u64, &str)] = &[
    (1, "PR_SET_PDEATHSIG"),
    (4, "PR_SET_DUMPABLE"),
    (15, "PR_SET_NAME"),
    (16, "PR_GET_NAME"),
    (22, "PR_SET_SECCOMP"),
    (36, "PR_SET_CHILD_SUBREAPER"),
    (38, "PR_SET_NO_NEW_PRIVS"),
    (0x59616d61, "PR_SET_PTRACER"),
];

const CLONE_FLAGS: &[(u64, &str)] = &[
    (0x100, "CLONE_VM"),
    (0x200, "CLONE_FS"),
    (0x400, "CLONE_FILES"),
    (0x800, "CLONE_SIGHAND"),
    (0x1000, "CLONE_PIDFD"),
    (0x4000, "CLONE_VFORK"),
    (0x8000, "CLONE_PARENT"),
    (0x10000, "CLONE_THREAD"),
    (0x20000, "CLONE_NEWNS"),
    (0x40000, "CLONE_SYSVSEM"),
    (0x80000, "CLONE_SETTLS"),
    (0x100000, "CLONE_PARENT_SETTID"),
    (0x200000, "CLONE_CHILD_CLEARTID"),
    (0x1000000, "CLONE_CHILD_SETTID"),
    (0x2000000, "CLONE_NEWCGROUP"),
    (0x4000000, "CLONE_NEWUTS"),
    (0x8000000, "CLONE_NEWIPC"),
    (0x10000000, "CLONE_NEWUSER"),
    (0x20000000, "CLONE_NEWPID"),
    (0x40000000, "CLONE_NEWNET"),
];

/// The kind of socket is the low four bits of socket()'s `type`; the flags above them.
const SOCKET_KINDS: &[(u64, &str)] = &[
    (1, "SOCK_STREAM"),
    (2, "SOCK_DGRAM"),
    (3, "SOCK_RAW"),
    (4, "SOCK_RDM"),
    (5, "SOCK_SEQPACKET"),
    (10, "SOCK_PACKET"),
];
const SOCKET_FLAGS: &[(u64, &str)] = &[(0x800, "SOCK_NONBLOCK"), (0x80000, "SOCK_CLOEXEC")];

const PROTECTIONS: &[(u64, &str)] = &[(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC")];

const MAP_FLAGS: &[(u64, &str)] = &[
    (0x01, "MAP_SHARED"),
    (0x02, "MAP_PRIVATE"),
    (0x10, "MAP_FIXED"),
    (0x20, "MAP_ANONYMOUS"),
    (0x100, "MAP_GROWSDOWN"),
    (0x800, "MAP_DENYWRITE"),
    (0x4000, "MAP_NORESERVE"),
    (0x8000, "MAP_POPULATE"),
    (0x20000, "MAP_STACK"),
    (0x40000, "MAP_HUGETLB"),
    (0x100000, "MAP_FIXED_NOREPLACE"),
];

fn exact(table: &[(u64, &str)], value: u64) -> Option<String> {
    table.iter().find(|&&(known, _)| known == value).map(|&(_, name)| name.to_string())
}

/// `A|B|0x..` for a bit set; the low byte of clone flags is the exit signal.
fn bits(table: &[(u64, &str)], value: u64, low_byte_is_signal: bool) -> String {
    let mut parts = Vec::new();
    let mut rest = value;
    if low_byte_is_signal && value & 0xff != 0 {
        parts.push(exact(SIGNALS, value & 0xff).unwrap_or_else(|| format!("{:#x}", value & 0xff)));
        rest &= !0xff;
    }
    for &(bit, name) in table {
        if rest & bit == bit && bit != 0 {
            parts.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 || parts.is_empty() {
        parts.push(format!("{rest:#x}"));
    }
    parts.join("|")
}

/// `SOCK_DGRAM|SOCK_CLOEXEC` for socket()'s and socketpair()'s `type`.
fn socket_type(value: u64) -> String {
    let kind = exact(SOCKET_KINDS, value & 0xf).unwrap_or_else(|| format!("{:#x}", value & 0xf));
    match value & !0xf {
        0 => kind,
        flags => format!("{kind}|{}", bits(SOCKET_FLAGS, flags, false)),
    }
}

/// The value of argument `name` of `syscall` as the report prints it.
pub(crate) fn describe(syscall: &str, name: &str, value: u64) -> String {
    let named = match (syscall, name) {
        ("clone", "flags") => Some(bits(CLONE_FLAGS, value, true)),
        ("mmap", "flags") => Some(bits(MAP_FLAGS, value, false)),
        ("socket" | "socketpair", "type") => Some(socket_type(value)),
        (_, "prot") => Some(bits(PROTECTIONS, value, false)),
        (_, "domain" | "family") => exact(ADDRESS_FAMILIES, value),
        (_, "request") => exact(IOCTLS, value),
        (_, "cmd") => exact(FCNTL_COMMANDS, value),
        (_, "clock" | "clockid" | "which_clock") => exact(CLOCKS, value),
        (_, "signum" | "signal" | "sig") => exact(SIGNALS, value),
        (_, "option") => exact(PRCTL_OPTIONS, value),
        _ => None,
    };
    named.unwrap_or_else(|| if value < 4096 { value.to_string() } else { format!("{value:#x}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deciding_values_read_as_their_names() {
        assert_eq!(describe("socket", "domain", 10), "AF_INET6");
        assert_eq!(describe("ioctl", "request", 0x5412), "TIOCSTI");
        assert_eq!(describe("fcntl", "cmd", 6), "F_SETLK");
        assert_eq!(describe("mprotect", "prot", 7), "PROT_READ|PROT_WRITE|PROT_EXEC");
        assert_eq!(describe("clone", "flags", 0x0120_0011), "SIGCHLD|CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID");
        assert_eq!(describe("mmap", "flags", 0x22), "MAP_PRIVATE|MAP_ANONYMOUS");
        assert_eq!(describe("clock_gettime", "clockid", 0xffff_ffff_ffff_ffe2), "0xffffffffffffffe2");
        assert_eq!(describe("kill", "pid", 1), "1");
        assert_eq!(describe("socketpair", "type", 0x80002), "SOCK_DGRAM|SOCK_CLOEXEC");
        assert_eq!(describe("socket", "type", 0x80801), "SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC");
        assert_eq!(describe("socket", "type", 0x4_0005), "SOCK_SEQPACKET|0x40000");
    }
}
