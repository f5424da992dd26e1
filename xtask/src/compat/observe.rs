//! What a run's output and trace say: the calls a host refused, and (from strace on a bare run)
//! the processes started and the internet sockets made.

use std::collections::BTreeSet;
use std::path::Path;

/// The calls a host reported as refused, in order, each once: today's hosts print
/// `HOST: sandbox denied NAME` (and die); the refusing hosts print `HOST: sandbox refused NAME(ARG)`.
pub fn refusals(host: &str, text: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for line in text.lines() {
        if let Some(name) = refusal(host, line) {
            if !seen.contains(&name) {
                seen.push(name);
            }
        }
    }
    seen
}

/// The refused call named on one line of a host's stderr, if it is such a line.
pub fn refusal(host: &str, line: &str) -> Option<String> {
    for marker in [format!("{host}: sandbox denied "), format!("{host}: sandbox refused ")] {
        if let Some(at) = line.find(&marker) {
            let rest = line[at + marker.len()..].trim();
            let name = match rest.find(')') {
                Some(close) if rest.find('(').is_some_and(|open| open < close) => &rest[..=close],
                _ => rest.split_whitespace().next().unwrap_or(rest),
            };
            if !name.is_empty() {
                return Some(name.to_string());
            }
        }
    }
    None
}

/// What strace saw a bare run do: the programs it executed (see [`read_trace`]) and whether it
/// made an internet socket.
#[derive(Debug, Default)]
pub struct Trace {
    pub programs: BTreeSet<String>,
    pub network: bool,
}

/// `strace` arguments that put a bare command under a trace of its processes and sockets.
pub fn strace_prefix(trace_file: &Path, append: bool) -> Vec<String> {
    let mut args = vec!["-f".to_string(), "-qq".to_string(), "-z".to_string(), "-e".to_string()];
    args.push("trace=execve,execveat,socket".to_string());
    args.extend(["-e".to_string(), "signal=none".to_string()]);
    if append {
        args.push("-A".to_string());
    }
    args.extend(["-o".to_string(), trace_file.display().to_string(), "--".to_string()]);
    args
}

/// Reads a trace written with [`strace_prefix`]: every successful exec except the very first
/// (the traced command starting its interpreter, when `skip_first`) and those `ignore` accepts.
pub fn read_trace(trace_file: &Path, skip_first: bool, ignore: &dyn Fn(&str) -> bool) -> Trace {
    let text = std::fs::read_to_string(trace_file).unwrap_or_default();
    let mut trace = Trace::default();
    let mut first = skip_first;
    for line in text.lines() {
        // "PID  call(...) = 0": strace pads the pid with spaces.
        let Some(call) = line.split_once(' ').map(|(_pid, call)| call.trim_start()) else { continue };
        if call.starts_with("execve(") || call.starts_with("execveat(") {
            let program = call.split('"').nth(1).unwrap_or("?").to_string();
            if std::mem::take(&mut first) || ignore(&program) {
                continue;
            }
            trace.programs.insert(program);
        } else if call.starts_with("socket(AF_INET") {
            trace.network = true;
        }
    }
    trace
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_name_programs_and_internet_sockets() {
        let dir = std::env::temp_dir().join(format!("h-compat-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("trace");
        let text = "4962  execve(\"/usr/bin/bash\", [\"bash\"], 0x0 /* 3 vars */) = 0\n\
                    4962  socket(AF_UNIX, SOCK_STREAM, 0) = 3\n\
                    4963  execve(\"/usr/bin/grep\", [\"grep\", \"h\"], 0x0 /* 6 vars */) = 0\n\
                    4964 execve(\"/usr/bin/bash\", [\"bash\"], 0x0 /* 6 vars */) = 0\n";
        std::fs::write(&file, text).unwrap();
        let trace = read_trace(&file, false, &|program| program.ends_with("/bash"));
        assert_eq!(trace.programs.into_iter().collect::<Vec<_>>(), vec!["/usr/bin/grep".to_string()]);
        assert!(!trace.network);
        std::fs::write(&file, format!("{text}4965  socket(AF_INET6, SOCK_STREAM, 0) = 4\n")).unwrap();
        let trace = read_trace(&file, true, &|_| false);
        assert_eq!(trace.programs.len(), 2);
        assert!(trace.network);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refusal_lines_of_both_generations_are_parsed() {
        assert_eq!(refusal("hsh", "hsh: sandbox denied getpeername").as_deref(), Some("getpeername"));
        assert_eq!(
            refusal("hpython", "hpython: sandbox refused socket(AF_INET6)").as_deref(),
            Some("socket(AF_INET6)")
        );
        assert_eq!(refusal("hpython", "xx hpython: sandbox refused chmod(...) more").as_deref(), Some("chmod(...)"));
        assert_eq!(refusal("hsh", "hlua: sandbox denied clone3"), None);
        let text = "a\nhnode: sandbox denied umask\nb\nhnode: sandbox denied umask\nhnode: sandbox refused x(1)\n";
        assert_eq!(refusals("hnode", text), vec!["umask".to_string(), "x(1)".to_string()]);
    }
}
