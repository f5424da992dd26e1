//! `--learn`: what the sandbox refused during a run, and the options that would grant it.
//!
//! Nothing is decided here. The host's program is installed behind a prefix that hands the
//! observed calls ([`OBSERVED`]: executing a program, opening, creating) to the supervisor
//! first; the supervisor answers each as the program itself would (the kernel's own
//! evaluation, repeated on the same registers), and landlock then decides the path as in any
//! run. Before it answers, the supervisor reads the path the call names (a copy of the caller's
//! memory), resolves it from the caller's working directory or descriptor, and asks the host's
//! grants whether landlock lets it be read, written, created in or executed; what they do not
//! admit becomes an option of the report. Refused calls, connects to endpoints that are not
//! granted, and budgets the run used up are noted as they are reported.
//!
//! A script can mislead the report (it may change the path after the copy, or name paths it
//! never needed), never the sandbox: the copy decides nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use super::arguments::{c_int, int, AT_FDCWD};
use super::caller::Caller;
use super::grants::Grants;
use super::paths::{open_object, where_is};

/// The calls `--learn` sees before the program decides them: those that name a path landlock
/// may refuse to execute, read, write or create in.
pub const OBSERVED: &[&str] = &["execve", "open", "openat", "openat2", "creat", "mkdir", "mkdirat"];

/// Names answered with placeholder addresses at most (one byte of a documentation network).
const MOST_NAMES: usize = 250;
/// Options and refused calls kept at most: a script can try every path of the machine, and the
/// supervisor's memory is not the script's to fill.
const MOST_NOTES: usize = 256;

/// What the path of an observed call needs of landlock.
#[derive(Clone, Copy, Default)]
struct Needs {
    read: bool,
    write: bool,
    /// Create the last component if it does not exist.
    create: bool,
    execute: bool,
    /// Follow a last symlink.
    follow: bool,
}

impl Needs {
    /// What `open(2)` flags need.
    fn of_open(flags: u64) -> Needs {
        let flags = c_int(flags);
        if flags & libc::O_PATH != 0 {
            return Needs::default();
        }
        let mode = flags & libc::O_ACCMODE;
        let create = flags & libc::O_CREAT != 0;
        Needs {
            read: mode == libc::O_RDONLY || mode == libc::O_RDWR,
            write: mode == libc::O_WRONLY || mode == libc::O_RDWR || flags & libc::O_TRUNC != 0,
            create,
            execute: false,
            follow: flags & libc::O_NOFOLLOW == 0 && !(create && flags & libc::O_EXCL != 0),
        }
    }
}

/// What the run was refused, in the order first seen.
pub(crate) struct Learned {
    learning: crate::Learning,
    /// (option, value): `--allow-read /path`, `--allow-exec cat`, ...
    options: Vec<(&'static str, String)>,
    /// Refused calls no option grants, as they were reported.
    calls: Vec<String>,
    /// Budgets and limits the run reached, with the option that raises each.
    limits: Vec<String>,
    /// Names looked up that are not granted; the index gives each its placeholder addresses.
    names: Vec<String>,
    /// The programs named for `--allow-exec`, as found (which that grant lets be read too).
    executables: Vec<PathBuf>,
    /// The kernel has no landlock (`--allow-degraded`): no path or program was refused.
    without_landlock: bool,
}

impl Learned {
    pub(crate) fn new(learning: crate::Learning) -> Learned {
        Learned {
            learning,
            options: Vec::new(),
            calls: Vec::new(),
            limits: Vec::new(),
            names: Vec::new(),
            executables: Vec::new(),
            without_landlock: false,
        }
    }

    /// Whether `path` is not to be listed: one the interpreter tries at start and does without,
    /// or a file of a process (`/proc/PID/...`: a grant names a path, and the next run's
    /// processes have other ids).
    fn is_probe(&self, path: &Path) -> bool {
        let mut components = path.components().skip(1);
        if components.next().is_some_and(|top| top.as_os_str() == "proc")
            && components.next().is_some_and(|pid| pid.as_os_str().as_bytes().iter().all(u8::is_ascii_digit))
        {
            return true;
        }
        self.learning.probes.iter().any(|probe| {
            let mut wanted = probe.components();
            let mut found = path.components();
            loop {
                match (wanted.next(), found.next()) {
                    (None, None) => return true,
                    (Some(expected), Some(actual)) if expected == actual => {}
                    (Some(expected), Some(actual))
                        if expected.as_os_str() == "PID"
                            && actual.as_os_str().as_bytes().iter().all(u8::is_ascii_digit) => {}
                    _ => return false,
                }
            }
        })
    }

    fn grant(&mut self, option: &'static str, value: String) {
        let known = self.options.iter().any(|(known, known_value)| *known == option && *known_value == value);
        if !known && self.options.len() < MOST_NOTES {
            self.options.push((option, value));
        }
    }

    /// Notes a refused call no option grants (as it was reported).
    pub(crate) fn refused_call(&mut self, what: &str) {
        if !self.calls.iter().any(|known| known == what) && self.calls.len() < MOST_NOTES {
            self.calls.push(what.to_string());
        }
    }

    /// Notes a budget or limit the run reached.
    pub(crate) fn reached(&mut self, what: String) {
        self.limits.push(what);
    }

    /// The host was killed by SIGKILL after the run used `cpu_micros` of CPU: the CPU limit
    /// kills at once when it is reached (soft = hard), so a run that used it all reached it.
    pub(crate) fn killed(&mut self, cpu_micros: u64) {
        if let Some(limit) = self.learning.cpu_seconds {
            if cpu_micros + 1_000_000 > limit * 1_000_000 {
                self.reached(format!("-r cpu={}: the CPU limit ({limit} s) ended the run", limit * 2));
            }
        }
    }

    /// The run has no landlock: paths and programs are not refused, and none is listed.
    pub(crate) fn without_landlock(&mut self) {
        self.without_landlock = true;
    }

    /// Notes a connect to an endpoint that is not granted (`address` as the script gave it; a
    /// placeholder address stands for the name it was given for).
    pub(crate) fn endpoint(&mut self, address: SocketAddr) {
        let host = match self.name_of(address.ip()) {
            Some(name) => name.to_string(),
            None if address.is_ipv6() => format!("[{}]", address.ip()),
            None => address.ip().to_string(),
        };
        self.grant("--allow-connect", format!("{host}:{}", address.port()));
    }

    /// The placeholder addresses a lookup of `name` (not granted) is answered with, so that the
    /// script goes on to connect and the report can name the endpoint: one address of each of
    /// the documentation networks (192.0.2.0/24, 2001:db8::/32), which reach nothing.
    pub(crate) fn placeholder(&mut self, name: &str) -> Option<(IpAddr, IpAddr)> {
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        let index = match self.names.iter().position(|known| *known == name) {
            Some(index) => index,
            None if self.names.len() < MOST_NAMES => {
                self.names.push(name);
                self.names.len() - 1
            }
            None => return None,
        };
        let host = u8::try_from(index + 1).ok()?;
        let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(host));
        Some((IpAddr::V4(Ipv4Addr::new(192, 0, 2, host)), IpAddr::V6(v6)))
    }

    /// The name a placeholder address was given for.
    fn name_of(&self, ip: IpAddr) -> Option<&str> {
        let host = match ip {
            IpAddr::V4(v4) if v4.octets()[..3] == [192, 0, 2] => v4.octets()[3],
            IpAddr::V6(v6) if v6.segments()[..7] == [0x2001, 0xdb8, 0, 0, 0, 0, 0] => {
                u8::try_from(v6.segments()[7]).ok()?
            }
            _ => return None,
        };
        self.names.get(usize::from(host).checked_sub(1)?).map(String::as_str)
    }

    /// Notes what observed call `call` of `caller` (with `args`) would need that the grants do
    /// not admit. Reads the caller's memory and descriptors; changes nothing.
    pub(crate) fn observe(&mut self, grants: &Grants, caller: &Caller, call: &str, args: [u64; 6]) {
        let (directory, address, needs) = match call {
            "execve" => (AT_FDCWD, args[0], Needs { read: false, execute: true, follow: true, ..Needs::default() }),
            "open" => (AT_FDCWD, args[0], Needs::of_open(args[1])),
            "creat" => (AT_FDCWD, args[0], Needs::of_open((libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64)),
            "openat" => (int(args[0]), args[1], Needs::of_open(args[2])),
            "openat2" => {
                // struct open_how begins with its flags (u64).
                let mut flags = [0u8; 8];
                if args[3] < 8 || caller.read_memory(args[2], &mut flags).is_err() {
                    return;
                }
                (int(args[0]), args[1], Needs::of_open(u64::from_ne_bytes(flags)))
            }
            "mkdir" => (AT_FDCWD, args[0], Needs { create: true, ..Needs::default() }),
            "mkdirat" => (int(args[0]), args[1], Needs { create: true, ..Needs::default() }),
            _ => return,
        };
        if !(needs.read || needs.write || needs.create || needs.execute) {
            return;
        }
        let Ok(path) = caller.read_path(address) else { return };
        if path.is_empty() {
            return;
        }
        let Ok(base) = caller.start_of(directory, &path) else { return };
        match open_object(base.as_ref(), &path, needs.follow).and_then(|object| where_is(&object)) {
            Ok(found) => {
                if needs.execute && !grants.admit_execute(&found) {
                    let program = self.program_name(&path, &found);
                    self.grant("--allow-exec", program);
                    // The shell reads a program it could not execute; the grant covers that.
                    let read = text(&found);
                    self.options.retain(|(option, value)| !(*option == "--allow-read" && *value == read));
                    if !self.executables.contains(&found) && self.executables.len() < MOST_NOTES {
                        self.executables.push(found);
                    }
                    return;
                }
                if self.is_probe(&found) || self.executables.contains(&found) {
                    return;
                }
                if needs.write && !grants.admit_write(&found) {
                    self.grant("--allow-write", text(&found));
                } else if needs.read && !grants.admit_read(&found) {
                    self.grant("--allow-read", text(&found));
                }
            }
            Err(error) if needs.create && error.raw_os_error() == Some(libc::ENOENT) => {
                let parent = match path.iter().rposition(|&byte| byte == b'/') {
                    Some(0) => b"/".to_vec(),
                    Some(slash) => path[..slash].to_vec(),
                    None => b".".to_vec(),
                };
                if let Ok(directory) = open_object(base.as_ref(), &parent, true).and_then(|object| where_is(&object)) {
                    if !grants.admit_create_in(&directory) {
                        self.grant("--allow-write", text(&directory));
                    }
                }
            }
            Err(_) => {}
        }
    }

    /// How `--allow-exec` names the program found at `found` (tried as `given`): by its name
    /// when the host's `PATH` finds the same file by that name, else by its path.
    fn program_name(&self, given: &[u8], found: &Path) -> String {
        let name = given.rsplit(|&byte| byte == b'/').next().unwrap_or(given);
        let search_path = self.learning.search_path.as_deref().unwrap_or_default();
        let found_by_name = !name.is_empty()
            && search_path.as_bytes().split(|&byte| byte == b':').filter(|dir| dir.first() == Some(&b'/')).any(|dir| {
                let mut candidate = dir.to_vec();
                candidate.push(b'/');
                candidate.extend_from_slice(name);
                open_object(None, &candidate, true).and_then(|object| where_is(&object)).is_ok_and(|at| at == found)
            });
        if found_by_name {
            String::from_utf8_lossy(name).into_owned()
        } else {
            text(found)
        }
    }

    /// The report printed when the run ends (`succeeded`: the script exited 0): one line each,
    /// and the command that grants it all.
    pub(crate) fn report(&self, succeeded: bool) -> Vec<String> {
        let mut lines = Vec::new();
        if self.options.is_empty() && self.calls.is_empty() && self.limits.is_empty() && !self.without_landlock {
            lines.push("learned: nothing was refused".to_string());
            if !succeeded {
                lines.push(
                    "learned: the script failed on its own; limits it reaches inside itself (memory, open files, file size) are not seen here"
                        .to_string(),
                );
            }
            return lines;
        }
        lines.push("learned: what the sandbox refused in this run".to_string());
        for (option, value) in &self.options {
            lines.push(format!("  {option} {}", quote(value.as_bytes())));
        }
        for limit in &self.limits {
            lines.push(format!("  {limit}"));
        }
        for call in &self.calls {
            lines.push(format!("  {call}: no option grants it"));
        }
        if self.options.len() == MOST_NOTES || self.calls.len() == MOST_NOTES {
            lines.push(format!("  (at most {MOST_NOTES} of each are listed)"));
        }
        if self.without_landlock {
            lines.push(
                "  (this kernel has no landlock: no path or program was refused, and none is listed)".to_string(),
            );
        }
        if !self.options.is_empty() {
            let mut command: Vec<String> = Vec::new();
            let mut arguments = self.learning.command.iter();
            if let Some(host) = arguments.next() {
                command.push(quote(host.as_bytes()));
            }
            for (option, value) in &self.options {
                command.push(format!("{option} {}", quote(value.as_bytes())));
            }
            command.extend(arguments.map(|argument| quote(argument.as_bytes())));
            lines.push(format!("learned: to grant it, run: {}", command.join(" ")));
        }
        lines
    }
}

fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `value` as one shell word, safe to print on a terminal: as it is when it has nothing the
/// shell reads; in single quotes when it is printable UTF-8; else as `$'...'` with every byte
/// outside printable ASCII escaped (a path or name the script chose may hold terminal escape
/// sequences, newlines or bytes that are not text).
fn quote(value: &[u8]) -> String {
    let plain =
        !value.is_empty() && value.iter().all(|&byte| byte.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&byte));
    if plain {
        return String::from_utf8_lossy(value).into_owned();
    }
    match std::str::from_utf8(value) {
        Ok(text) if !text.chars().any(char::is_control) => format!("'{}'", text.replace('\'', "'\\''")),
        _ => {
            let mut escaped = String::from("$'");
            for &byte in value {
                match byte {
                    b'\'' | b'\\' => {
                        escaped.push('\\');
                        escaped.push(char::from(byte));
                    }
                    0x20..=0x7e => escaped.push(char::from(byte)),
                    _ => escaped.push_str(&format!("\\x{byte:02x}")),
                }
            }
            escaped.push('\'');
            escaped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn open_flags_say_what_landlock_checks() {
        let read = Needs::of_open(libc::O_RDONLY as u64 | libc::O_CLOEXEC as u64);
        assert!(read.read && !read.write && !read.create && read.follow);
        let create = Needs::of_open((libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL) as u64);
        assert!(!create.read && create.write && create.create && !create.follow);
        let path = Needs::of_open((libc::O_PATH | libc::O_RDWR) as u64);
        assert!(!path.read && !path.write);
        assert!(Needs::of_open((libc::O_RDONLY | libc::O_TRUNC) as u64).write);
    }

    #[test]
    fn words_are_quoted_for_the_shell_and_the_terminal() {
        assert_eq!(quote(b"/home/a/data.txt"), "/home/a/data.txt");
        assert_eq!(quote(b"my file's"), r"'my file'\''s'");
        assert_eq!(quote(b"$(reboot)"), "'$(reboot)'");
        assert_eq!(quote(b"[::1]:80"), "'[::1]:80'", "a glob pattern otherwise");
        assert_eq!(quote("café".as_bytes()), "'café'");
        assert_eq!(quote(b"a\x1b]0;owned\x07\nb'"), r"$'a\x1b]0;owned\x07\x0ab\''");
        assert_eq!(quote(b"\xff"), r"$'\xff'");
    }

    #[test]
    fn probes_match_any_process_id() {
        let learning = crate::Learning {
            probes: vec![PathBuf::from("/proc/PID/maps"), PathBuf::from("/etc/ld.so.cache")],
            ..crate::Learning::default()
        };
        let learned = Learned::new(learning);
        assert!(learned.is_probe(Path::new("/proc/4242/maps")) && learned.is_probe(Path::new("/etc/ld.so.cache")));
        assert!(learned.is_probe(Path::new("/proc/42/status")), "any file of a process");
        assert!(!learned.is_probe(Path::new("/proc/meminfo")) && !learned.is_probe(Path::new("/proc/self/maps")));
        assert!(!learned.is_probe(Path::new("/etc")) && !learned.is_probe(Path::new("/proc/4a/maps")));
    }

    #[test]
    fn placeholders_name_their_endpoints() {
        let mut learned = Learned::new(crate::Learning::default());
        let (v4, v6) = learned.placeholder("API.example.").unwrap();
        assert_eq!(v4, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(learned.placeholder("api.example").unwrap(), (v4, v6));
        learned.endpoint(SocketAddr::new(v6, 443));
        learned.endpoint(SocketAddr::new(v4, 443));
        learned.endpoint("127.0.0.1:8080".parse().unwrap());
        learned.endpoint("[::1]:80".parse().unwrap());
        let values: Vec<&str> = learned.options.iter().map(|(_, value)| value.as_str()).collect();
        assert_eq!(values, ["api.example:443", "127.0.0.1:8080", "[::1]:80"]);
    }

    #[test]
    fn the_report_ends_with_the_command_that_grants_it() {
        let learning = crate::Learning {
            command: ["hpython", "-s", "my script.py"].map(OsString::from).to_vec(),
            ..crate::Learning::default()
        };
        let mut learned = Learned::new(learning);
        assert_eq!(learned.report(true), ["learned: nothing was refused"]);
        assert_eq!(learned.report(false).len(), 2);
        learned.grant("--allow-read", "/home/a/data.txt".to_string());
        learned.grant("--allow-exec", "cat".to_string());
        learned.grant("--allow-exec", "cat".to_string());
        learned.refused_call("ptrace");
        let report = learned.report(true);
        assert_eq!(report.len(), 5, "{report:?}");
        assert_eq!(report[3], "  ptrace: no option grants it");
        assert_eq!(
            report[4],
            "learned: to grant it, run: hpython --allow-read /home/a/data.txt --allow-exec cat -s 'my script.py'"
        );
    }
}
