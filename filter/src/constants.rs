//! The named constants a filter may use in argument conditions, per architecture.
//! Values are the kernel's UAPI; where x86_64 and aarch64 differ, both are listed.

use crate::Arch;

/// A name a filter uses that is not in the table.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown constant {0} (add it to filter/src/constants.rs)")]
pub struct UnknownConstant(pub String);

/// (name, x86_64 value, aarch64 value)
const CONSTANTS: &[(&str, u64, u64)] = &[
    // ioctl requests (asm-generic/ioctls.h; identical on both architectures)
    ("TCGETS", 0x5401, 0x5401),
    ("TCSETS", 0x5402, 0x5402),
    ("TCSETSW", 0x5403, 0x5403),
    ("TCSETSF", 0x5404, 0x5404),
    ("TIOCSTI", 0x5412, 0x5412),
    ("TIOCGPGRP", 0x540F, 0x540F),
    ("TIOCSPGRP", 0x5410, 0x5410),
    ("TIOCGWINSZ", 0x5413, 0x5413),
    ("TIOCSWINSZ", 0x5414, 0x5414),
    ("TIOCSCTTY", 0x540E, 0x540E),
    ("TIOCGPTN", 0x8004_5430, 0x8004_5430),
    ("TIOCLINUX", 0x541C, 0x541C),
    ("FIONREAD", 0x541B, 0x541B),
    ("FIONBIO", 0x5421, 0x5421),
    ("FIOCLEX", 0x5451, 0x5451),
    ("FIONCLEX", 0x5450, 0x5450),
    // seccomp user notification ioctls (_IOWR('!', 0, struct seccomp_notif) and friends)
    ("SECCOMP_IOCTL_NOTIF_RECV", 0xc050_2100, 0xc050_2100),
    ("SECCOMP_IOCTL_NOTIF_SEND", 0xc018_2101, 0xc018_2101),
    ("SECCOMP_IOCTL_NOTIF_ID_VALID", 0x4008_2102, 0x4008_2102),
    ("SECCOMP_IOCTL_NOTIF_ADDFD", 0x4018_2103, 0x4018_2103),
    // pidfd_open's flag for a thread that does not lead its group (Linux 6.9): O_EXCL
    ("PIDFD_THREAD", 0o200, 0o200),
    // clocks (uapi/linux/time.h); the process's own CPU clocks are MAKE_PROCESS_CPUCLOCK(0, n)
    // and MAKE_THREAD_CPUCLOCK(0, n), negative ints: glibc passes them zero-extended (the kernel
    // reads 32 bits), other callers may sign-extend them; both name the same clock
    ("CLOCK_REALTIME", 0, 0),
    ("CLOCK_MONOTONIC", 1, 1),
    ("CLOCK_PROCESS_CPUTIME_ID", 2, 2),
    ("CLOCK_THREAD_CPUTIME_ID", 3, 3),
    ("CLOCK_MONOTONIC_RAW", 4, 4),
    ("CLOCK_REALTIME_COARSE", 5, 5),
    ("CLOCK_MONOTONIC_COARSE", 6, 6),
    ("CLOCK_BOOTTIME", 7, 7),
    ("CLOCK_REALTIME_ALARM", 8, 8),
    ("CLOCK_BOOTTIME_ALARM", 9, 9),
    ("CLOCK_TAI", 11, 11),
    ("CPUCLOCK_OWN_PROCESS_PROF", -8i32 as u32 as u64, -8i32 as u32 as u64),
    ("CPUCLOCK_OWN_PROCESS_PROF_SIGN_EXTENDED", (-8i64) as u64, (-8i64) as u64),
    ("CPUCLOCK_OWN_PROCESS_VIRT", -7i32 as u32 as u64, -7i32 as u32 as u64),
    ("CPUCLOCK_OWN_PROCESS_VIRT_SIGN_EXTENDED", (-7i64) as u64, (-7i64) as u64),
    ("CPUCLOCK_OWN_PROCESS_SCHED", -6i32 as u32 as u64, -6i32 as u32 as u64),
    ("CPUCLOCK_OWN_PROCESS_SCHED_SIGN_EXTENDED", (-6i64) as u64, (-6i64) as u64),
    ("CPUCLOCK_OWN_THREAD_PROF", -4i32 as u32 as u64, -4i32 as u32 as u64),
    ("CPUCLOCK_OWN_THREAD_PROF_SIGN_EXTENDED", (-4i64) as u64, (-4i64) as u64),
    ("CPUCLOCK_OWN_THREAD_VIRT", -3i32 as u32 as u64, -3i32 as u32 as u64),
    ("CPUCLOCK_OWN_THREAD_VIRT_SIGN_EXTENDED", (-3i64) as u64, (-3i64) as u64),
    ("CPUCLOCK_OWN_THREAD_SCHED", -2i32 as u32 as u64, -2i32 as u32 as u64),
    ("CPUCLOCK_OWN_THREAD_SCHED_SIGN_EXTENDED", (-2i64) as u64, (-2i64) as u64),
    // fcntl commands
    ("F_DUPFD", 0, 0),
    ("F_GETFD", 1, 1),
    ("F_SETFD", 2, 2),
    ("F_GETFL", 3, 3),
    ("F_SETFL", 4, 4),
    ("F_GETLK", 5, 5),
    ("F_SETLK", 6, 6),
    ("F_SETLKW", 7, 7),
    ("F_OFD_GETLK", 36, 36),
    ("F_OFD_SETLK", 37, 37),
    ("F_OFD_SETLKW", 38, 38),
    ("F_DUPFD_CLOEXEC", 1030, 1030),
    // mmap and mprotect
    ("PROT_NONE", 0x0, 0x0),
    ("PROT_READ", 0x1, 0x1),
    ("PROT_WRITE", 0x2, 0x2),
    ("PROT_EXEC", 0x4, 0x4),
    ("MAP_SHARED", 0x01, 0x01),
    ("MAP_PRIVATE", 0x02, 0x02),
    ("MAP_FIXED", 0x10, 0x10),
    ("MAP_ANONYMOUS", 0x20, 0x20),
    ("MAP_DENYWRITE", 0x0800, 0x0800),
    ("MAP_NORESERVE", 0x4000, 0x4000),
    ("MAP_STACK", 0x20000, 0x20000),
    ("MAP_FIXED_NOREPLACE", 0x100000, 0x100000),
    ("MAP_GROWSDOWN", 0x0100, 0x0100),
    ("MREMAP_MAYMOVE", 1, 1),
    ("MADV_DONTNEED", 4, 4),
    ("MADV_FREE", 8, 8),
    ("MADV_HUGEPAGE", 14, 14),
    ("MADV_NOHUGEPAGE", 15, 15),
    ("MADV_DONTDUMP", 16, 16),
    // rt_sigprocmask
    ("SIG_BLOCK", 0, 0),
    ("SIG_UNBLOCK", 1, 1),
    ("SIG_SETMASK", 2, 2),
    // signals (identical on both)
    ("SIGHUP", 1, 1),
    ("SIGINT", 2, 2),
    ("SIGQUIT", 3, 3),
    ("SIGABRT", 6, 6),
    ("SIGKILL", 9, 9),
    ("SIGSEGV", 11, 11),
    ("SIGPIPE", 13, 13),
    ("SIGTERM", 15, 15),
    ("SIGCHLD", 17, 17),
    ("SIGXFSZ", 25, 25),
    ("SIGSYS", 31, 31),
    ("SIGRTMAX", 64, 64),
    // *at() directory descriptor and flags
    ("AT_FDCWD", (-100i64) as u64, (-100i64) as u64),
    // pwritev2's offset -1, "the current position", as glibc passes it on 64-bit architectures:
    // the low half is the long -1, the high half 0 (glibc shifts the value out by half a word
    // twice; the kernel ignores the high half there)
    ("POSITION_CURRENT", u64::MAX, u64::MAX),
    ("POSITION_CURRENT_HIGH", 0, 0),
    // preadv2/pwritev2 flags (include/uapi/linux/fs.h)
    ("RWF_NOWAIT", 0x8, 0x8),
    ("AT_EMPTY_PATH", 0x1000, 0x1000),
    ("AT_SYMLINK_NOFOLLOW", 0x100, 0x100),
    ("AT_NO_AUTOMOUNT", 0x800, 0x800),
    ("AT_STATX_SYNC_AS_STAT", 0, 0),
    ("AT_STATX_FORCE_SYNC", 0x2000, 0x2000),
    ("AT_STATX_DONT_SYNC", 0x4000, 0x4000),
    // open flags (O_DIRECTORY, O_NOFOLLOW, O_DIRECT and O_LARGEFILE differ on aarch64)
    ("O_RDONLY", 0o0, 0o0),
    ("O_WRONLY", 0o1, 0o1),
    ("O_RDWR", 0o2, 0o2),
    ("O_CREAT", 0o100, 0o100),
    ("O_EXCL", 0o200, 0o200),
    ("O_NOCTTY", 0o400, 0o400),
    ("O_TRUNC", 0o1000, 0o1000),
    ("O_APPEND", 0o2000, 0o2000),
    ("O_NONBLOCK", 0o4000, 0o4000),
    ("O_LARGEFILE", 0o100000, 0o400000),
    ("O_DIRECTORY", 0o200000, 0o40000),
    ("O_NOFOLLOW", 0o400000, 0o100000),
    ("O_CLOEXEC", 0o2000000, 0o2000000),
    ("O_PATH", 0o10000000, 0o10000000),
    // clone flags
    ("CLONE_VM", 0x100, 0x100),
    ("CLONE_FS", 0x200, 0x200),
    ("CLONE_FILES", 0x400, 0x400),
    ("CLONE_SIGHAND", 0x800, 0x800),
    ("CLONE_VFORK", 0x4000, 0x4000),
    ("CLONE_THREAD", 0x10000, 0x10000),
    ("CLONE_SYSVSEM", 0x40000, 0x40000),
    ("CLONE_SETTLS", 0x80000, 0x80000),
    ("CLONE_PARENT_SETTID", 0x100000, 0x100000),
    ("CLONE_CHILD_CLEARTID", 0x200000, 0x200000),
    ("CLONE_CHILD_SETTID", 0x1000000, 0x1000000),
    // futex operations
    ("FUTEX_WAIT", 0, 0),
    ("FUTEX_WAKE", 1, 1),
    ("FUTEX_PRIVATE_FLAG", 128, 128),
    ("FUTEX_CLOCK_REALTIME", 256, 256),
    ("FUTEX_WAIT_BITSET", 9, 9),
    ("FUTEX_WAKE_BITSET", 10, 10),
    // ... with FUTEX_PRIVATE_FLAG (and FUTEX_CLOCK_REALTIME), as glibc issues them
    ("FUTEX_WAIT_PRIVATE", 128, 128),
    ("FUTEX_WAKE_PRIVATE", 129, 129),
    ("FUTEX_WAIT_BITSET_PRIVATE", 137, 137),
    ("FUTEX_WAKE_BITSET_PRIVATE", 138, 138),
    ("FUTEX_WAIT_BITSET_PRIVATE_REALTIME", 393, 393),
    ("FUTEX_WAIT_BITSET_REALTIME", 265, 265),
    // prctl options
    ("PR_SET_NAME", 15, 15),
    ("PR_GET_NAME", 16, 16),
    ("PR_SET_VMA", 0x53564d41, 0x53564d41),
    // socket families
    ("AF_UNIX", 1, 1),
    ("AF_INET", 2, 2),
    ("AF_INET6", 10, 10),
    ("AF_NETLINK", 16, 16),
    ("SOCK_RAW", 3, 3),
    ("SOCK_RAW_CLOEXEC", 0x80003, 0x80003),
    // the protocol of a netlink socket that reads interfaces and routes
    ("NETLINK_ROUTE", 0, 0),
    // socket types and the flags socket()/socketpair() accept in the type argument
    ("SOCK_STREAM", 1, 1),
    ("SOCK_NONBLOCK", 0x800, 0x800),
    ("SOCK_CLOEXEC", 0x80000, 0x80000),
    // the protocol of a stream socket of AF_INET or AF_INET6
    ("IPPROTO_TCP", 6, 6),
    // socket option levels and names (getsockopt, setsockopt)
    ("SOL_SOCKET", 1, 1),
    ("SO_TYPE", 3, 3),
    ("SO_ERROR", 4, 4),
    ("SO_KEEPALIVE", 9, 9),
    ("SO_PROTOCOL", 38, 38),
    ("SO_DOMAIN", 39, 39),
    ("TCP_NODELAY", 1, 1),
    ("TCP_KEEPIDLE", 4, 4),
    ("TCP_KEEPINTVL", 5, 5),
    ("TCP_KEEPCNT", 6, 6),
    // sendmsg flags a script may give (MSG_FASTOPEN, which connects, is not among them)
    ("MSG_DONTWAIT", 0x40, 0x40),
    ("MSG_NOSIGNAL", 0x4000, 0x4000),
    ("MSG_MORE", 0x8000, 0x8000),
    // SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC: the socket glibc's nscd client opens
    ("SOCK_NSCD_PROBE", 0x80801, 0x80801),
    // errno values for tamper rules
    ("EPERM", 1, 1),
    ("EACCES", 13, 13),
    ("ENOSYS", 38, 38),
    ("EOPNOTSUPP", 95, 95),
    // inotify_init1 flags (IN_NONBLOCK = O_NONBLOCK, IN_CLOEXEC = O_CLOEXEC)
    ("IN_NONBLOCK", 0o4000, 0o4000),
    ("IN_CLOEXEC", 0o2000000, 0o2000000),
    // getrandom flags
    ("GRND_NONBLOCK", 1, 1),
    ("GRND_RANDOM", 2, 2),
    ("GRND_INSECURE", 4, 4),
    // hsh, hnode: the descriptor h_sandbox::exec opens the interpreter at for execveat
    ("EXEC_FD", 3, 3),
    // every host: the launcher's end of the handoff socket to the supervisor (h_sandbox's
    // HANDOFF_FD), closed before EXEC_FD is opened at the same number
    ("HANDOFF_FD", 3, 3),
    // arch_prctl codes (x86_64 only; glibc sets the thread pointer at start-up)
    ("ARCH_SET_FS", 0x1002, 0x1002),
    // hnode: madvise advice V8 gives, memory-protection-key access rights
    ("MADV_DONTFORK", 10, 10),
    ("MADV_DOFORK", 11, 11),
    ("PKEY_DISABLE_ACCESS", 1, 1),
    ("PKEY_DISABLE_WRITE", 2, 2),
    // fcntl: pipe capacity (bash sizes here-documents against it)
    ("F_GETPIPE_SZ", 1032, 1032),
    // null pointer
    ("NULL", 0, 0),
];

/// The value of constant `name` on `arch`.
pub fn lookup(name: &str, arch: Arch) -> Result<u64, UnknownConstant> {
    match CONSTANTS.iter().find(|(known, _, _)| *known == name) {
        Some(&(_, x86_64, aarch64)) => Ok(match arch {
            Arch::X86_64 => x86_64,
            Arch::Aarch64 => aarch64,
        }),
        None => Err(UnknownConstant(name.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_follow_the_architecture() {
        assert_eq!(lookup("O_DIRECTORY", Arch::X86_64), Ok(0o200000));
        assert_eq!(lookup("O_DIRECTORY", Arch::Aarch64), Ok(0o40000));
        assert_eq!(lookup("AT_FDCWD", Arch::X86_64), Ok((-100i64) as u64));
        assert_eq!(lookup("O_DIRECTROY", Arch::X86_64), Err(UnknownConstant("O_DIRECTROY".to_string())));
    }

    #[test]
    fn names_are_unique() {
        for (position, (name, _, _)) in CONSTANTS.iter().enumerate() {
            assert!(!CONSTANTS[..position].iter().any(|(other, _, _)| other == name), "{name} listed twice");
        }
    }
}
