//! What the machine a case runs on provides, against what the case declares it needs (`[needs]`).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::case::{Case, Needs};

/// The `PATH` every run gets (and where `[needs] programs` are looked for).
pub const CASE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The machine a runner skips unmet cases on: its kernel and landlock ABI as measured, and the
/// directories of [`CASE_PATH`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// `None`: no landlock at all.
    pub landlock_abi: Option<u32>,
    /// `uname -r`.
    pub kernel_release: String,
    /// Where programs are looked for.
    pub path: Vec<PathBuf>,
    /// The machine is emulated in software (the QEMU guest of `cargo xtask vm-test` says so).
    pub emulated: bool,
}

/// The landlock ABI of the running kernel, asked with the raw syscall (independently of the
/// hosts' code); `None` without landlock.
pub fn landlock_abi() -> Option<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_long = 1;
    // SAFETY: a null attribute pointer with size 0 and the VERSION flag only asks the kernel for
    // a number; no memory is read or written.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(abi).ok().filter(|&abi| abi > 0)
}

impl Machine {
    /// This machine, measured now.
    pub fn measure() -> Machine {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Machine {
            landlock_abi: landlock_abi(),
            kernel_release: release.trim().to_string(),
            path: std::env::split_paths(CASE_PATH).collect(),
            emulated: false,
        }
    }

    fn has_program(&self, program: &str) -> bool {
        self.path.iter().any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
    }
}

impl Needs {
    /// Why a case with these needs cannot hold on `machine`; `None` when it can.
    pub fn unmet(&self, machine: &Machine) -> Option<String> {
        if let Some(wanted) = self.landlock_abi {
            if machine.landlock_abi.unwrap_or(0) < wanted {
                let have = machine.landlock_abi.map_or_else(|| "none".to_string(), |abi| abi.to_string());
                return Some(format!("needs landlock ABI {wanted}, this kernel has {have}"));
            }
        }
        if let Some(minimum) = &self.kernel {
            if !kernel_at_least(&machine.kernel_release, minimum) {
                return Some(format!("needs linux {minimum}, this kernel is {}", machine.kernel_release));
            }
        }
        if self.no_emulation && machine.emulated {
            return Some("needs a machine that is not emulated in software".to_string());
        }
        if let Some(program) = self.programs.iter().find(|program| !machine.has_program(program)) {
            return Some(format!("needs {program} on {CASE_PATH}"));
        }
        if let Some(file) = self.files.iter().find(|file| !Path::new(file).exists()) {
            return Some(format!("needs {file}"));
        }
        if !self.any_file.is_empty() && !self.any_file.iter().any(|file| Path::new(file).exists()) {
            return Some(format!("needs one of {}", self.any_file.join(", ")));
        }
        None
    }
}

impl Case {
    /// What the case needs: its `[needs]`, plus `bash` for a caller script and a pseudo-terminal
    /// (`/dev/ptmx`) for a terminal run.
    pub fn needs(&self) -> Needs {
        let mut needs = self.needs.clone();
        if self.caller.is_some() && !needs.programs.iter().any(|program| program == "bash") {
            needs.programs.push("bash".to_string());
        }
        if self.terminal && !needs.files.iter().any(|file| file == "/dev/ptmx") {
            needs.files.push("/dev/ptmx".to_string());
        }
        needs
    }
}

/// Whether the running kernel's release (`uname -r`, e.g. `6.12.117+deb13-cloud-amd64`) is at
/// least `minimum` (`MAJOR.MINOR`).
pub fn kernel_at_least(release: &str, minimum: &str) -> bool {
    let numbers = |text: &str| -> (u32, u32) {
        let mut parts = text.split(|c: char| !c.is_ascii_digit()).filter(|part| !part.is_empty());
        let major = parts.next().and_then(|part| part.parse().ok()).unwrap_or(0);
        let minor = parts.next().and_then(|part| part.parse().ok()).unwrap_or(0);
        (major, minor)
    };
    numbers(release) >= numbers(minimum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(abi: Option<u32>, release: &str) -> Machine {
        Machine {
            landlock_abi: abi,
            kernel_release: release.to_string(),
            path: vec![PathBuf::from("/bin")],
            emulated: false,
        }
    }

    #[test]
    fn kernels_compare_by_major_and_minor() {
        assert!(kernel_at_least("6.18.15+deb13-cloud-amd64", "6.18"));
        assert!(kernel_at_least("7.3.4", "6.18"));
        assert!(!kernel_at_least("6.12.117+deb13-cloud-amd64", "6.18"));
        assert!(!kernel_at_least("5.10.0-32-cloud-amd64", "6.1"));
    }

    #[test]
    fn each_need_is_checked() {
        let new = machine(Some(6), "6.12.1");
        let none = machine(None, "5.10.0");
        let abi = Needs { landlock_abi: Some(1), ..Needs::default() };
        assert_eq!(abi.unmet(&new), None);
        assert_eq!(abi.unmet(&none).as_deref(), Some("needs landlock ABI 1, this kernel has none"));
        let kernel = Needs { kernel: Some("6.18".into()), ..Needs::default() };
        assert!(kernel.unmet(&new).is_some_and(|why| why.contains("6.18")));
        let program = Needs { programs: vec!["no-such-program-h".into()], ..Needs::default() };
        assert!(program.unmet(&new).is_some_and(|why| why.contains("no-such-program-h")));
        let present = Needs { programs: vec!["sh".into()], files: vec!["/".into()], ..Needs::default() };
        assert_eq!(present.unmet(&new), None);
        let any = Needs { any_file: vec!["/no/such/h".into(), "/".into()], ..Needs::default() };
        assert_eq!(any.unmet(&new), None);
        let neither = Needs { any_file: vec!["/no/such/h".into()], ..Needs::default() };
        assert!(neither.unmet(&new).is_some());
        let native = Needs { no_emulation: true, ..Needs::default() };
        assert_eq!(native.unmet(&new), None);
        assert!(native.unmet(&Machine { emulated: true, ..new }).is_some_and(|why| why.contains("emulated")));
    }
}
