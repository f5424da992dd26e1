//! The hosts that run in the guest, and what the guest needs for each beyond the files its
//! build resolved (its landlock table, which the image builds from).
//!
//! What a case needs from the machine is declared by the case itself (`[needs]` in its
//! `test.toml`); nothing here says which cases to skip.

/// One host of the guest.
pub struct HostSpec {
    pub name: &'static str,
    /// Built with `+crt-static`: every host but hpython, which `dlopen`s the extension modules
    /// of its standard library and so needs the dynamic loader (its ELF closure goes into the
    /// guest instead).
    pub static_build: bool,
    /// Build values substituted in the cases' expectations: `(VARIABLE, NAME)` for
    /// `cargo:rustc-env=NAME=...`, as the host's `tests/cases.rs` passes them.
    pub vars: &'static [(&'static str, &'static str)],
    /// Entries of the directories in the landlock table that stay out of the guest (file names,
    /// at any depth): what no case reads and the image would only carry.
    pub left_out: &'static [&'static str],
    /// Cases that must run, and pass, without landlock (`--allow-degraded`): what seccomp, the
    /// environment scrub and the rlimits still stop there. None may be skipped on such a kernel.
    pub degraded_holds: &'static [&'static str],
}

/// The zlib hlua's `loadlib` and hsh's `enable-f` attacks try to load: it must exist for
/// landlock to deny it.
pub const LOADLIB_TARGET: &str = "/lib/x86_64-linux-gnu/libz.so.1";

/// Files and programs of this machine the guest holds for the cases (each with its ELF closure
/// when it is a program): attack targets, programs that cases run outside the sandbox, and the
/// programs the `--allow-exec` cases grant one and withhold another of. busybox provides the rest
/// (its applets are linked in `/bin`, after `/usr/bin` on the case PATH), but every applet is
/// the one file `/bin/busybox`: granting its `cat` would grant its `ls` too. A directory goes in
/// whole (the time zone database `--allow-localtime` grants), before any symlink into it.
pub const GUEST_FILES: &[&str] = &[
    LOADLIB_TARGET,
    "/usr/share/zoneinfo",
    "/etc/localtime",
    "/usr/bin/python3",
    "/usr/bin/sh",
    "/usr/bin/cat",
    "/usr/bin/ls",
    "/usr/bin/env",
    "/usr/bin/find",
    "/usr/bin/id",
    "/usr/bin/script",
];

pub const HOSTS: &[HostSpec] = &[
    HostSpec {
        name: "hlua",
        static_build: true,
        vars: &[],
        left_out: &[],
        degraded_holds: &["attacks/exec", "attacks/popen", "attacks/environment", "attacks/loadlib"],
    },
    HostSpec {
        name: "hsh",
        static_build: true,
        vars: &[],
        left_out: &[],
        // /dev/tcp and /dev/udp: seccomp denies socket (issue 6), with or without landlock.
        degraded_holds: &["attacks/dev-tcp", "attacks/dev-udp", "attacks/environment"],
    },
    HostSpec {
        name: "hpython",
        static_build: false,
        vars: &[("$LIBPYTHON", "H_LIBPYTHON")],
        // The standard library's own test suites, its GUI (no _tkinter is installed), the
        // build's static library and third-party packages (hpython runs without site).
        left_out: &[
            "test",
            "tests",
            "idle_test",
            "idlelib",
            "tkinter",
            "turtledemo",
            "lib2to3",
            "ensurepip",
            "config-3.11-x86_64-linux-gnu",
            "dist-packages",
            "site-packages",
        ],
        degraded_holds: &["attacks/environment"],
    },
    HostSpec { name: "hnode", static_build: true, vars: &[], left_out: &[], degraded_holds: &["attacks/environment"] },
];

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Every case that must hold without landlock exists, and declares no need of landlock.
    #[test]
    fn degraded_holds_name_cases_that_need_no_landlock() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for host in HOSTS {
            for name in host.degraded_holds {
                let dir = root.join("hosts").join(host.name).join(name);
                let case = h_testkit::Case::load::<&str, &str>(&dir, &[]).unwrap();
                assert_eq!(case.needs().landlock_abi, None, "{}/{name} must hold without landlock", host.name);
            }
        }
    }
}
