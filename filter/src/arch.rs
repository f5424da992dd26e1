//! The architectures the policies are compiled for: their names, `AUDIT_ARCH_*` values and
//! syscall tables (from the syscalls crate, with the kernel's names).

use std::fmt;

use h_sandbox::seccomp_program::bpf::{AUDIT_ARCH_AARCH64, AUDIT_ARCH_X86_64};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

/// Every architecture a program is generated for.
pub const ARCHES: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

impl Arch {
    /// Rust's (and the filters' `arch = [...]`) name of the architecture.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The `AUDIT_ARCH_*` value the kernel puts in `seccomp_data.arch`.
    pub fn audit_arch(self) -> u32 {
        match self {
            Arch::X86_64 => AUDIT_ARCH_X86_64,
            Arch::Aarch64 => AUDIT_ARCH_AARCH64,
        }
    }

    /// Every syscall of the architecture: (number, name), sorted by number.
    pub fn syscalls(self) -> Vec<(u32, &'static str)> {
        let mut table: Vec<(u32, &'static str)> = match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::iter().map(|s| (s.id() as u32, s.name())).collect(),
            Arch::Aarch64 => syscalls::aarch64::Sysno::iter().map(|s| (s.id() as u32, s.name())).collect(),
        };
        // The syscalls crate names aarch64's 79 after the generic `fstatat`; the kernel's uapi
        // (and strace) call it `newfstatat`, as on x86_64.
        for entry in &mut table {
            if self == Arch::Aarch64 && entry.1 == "fstatat" {
                entry.1 = "newfstatat";
            }
        }
        table.sort();
        table
    }

    /// The number of syscall `name` on this architecture, if it has one.
    pub fn syscall_number(self, name: &str) -> Option<u32> {
        self.syscalls().into_iter().find(|&(_, known)| known == name).map(|(nr, _)| nr)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_use_the_kernel_names() {
        for arch in ARCHES {
            let table = arch.syscalls();
            assert!(table.windows(2).all(|pair| pair[0].0 < pair[1].0), "{arch}: not sorted or repeated");
            assert!(arch.syscall_number("newfstatat").is_some(), "{arch}: no newfstatat");
            assert_eq!(arch.syscall_number("fstatat"), None);
        }
        assert_eq!(Arch::X86_64.syscall_number("read"), Some(0));
        assert_eq!(Arch::Aarch64.syscall_number("read"), Some(63));
        assert_eq!(Arch::Aarch64.syscall_number("open"), None, "aarch64 has only openat");
    }
}
