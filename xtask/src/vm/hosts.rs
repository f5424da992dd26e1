//! What the guest holds besides each host's own files (its binary, the landlock table its build
//! resolved, its case folders): the files and programs of this machine the cases use outside the
//! sandbox. Which hosts there are, and what each needs in the guest, is each host's manifest
//! (`hosts/HOST/host.toml`, `[vm]`); what a case needs from the machine is declared by the case
//! itself (`[needs]` in its `test.toml`).

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
    // hsh/attacks/launcher-exec-once: perl (perl-base: no module needed for `-e`) makes the
    // launcher's execveat again, from a descriptor opened on echo.
    "/usr/bin/perl",
    "/usr/bin/echo",
];
