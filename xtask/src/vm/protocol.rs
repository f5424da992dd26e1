//! What the host and the guest tell each other, as JSON.
//!
//! Host to guest: one [`GuestConfig`] in the initramfs ([`CONFIG_PATH`]). Guest to host: one
//! [`Message`] per console line, each a JSON object whose first key is `"h_vm"`; every other
//! console line (the kernel's, busybox's) is not part of the protocol. A line that starts like a
//! message but does not parse is an error, not noise.

use std::path::PathBuf;

use h_testkit::Run;
use serde::{Deserialize, Serialize};

/// Where the guest finds its [`GuestConfig`].
pub const CONFIG_PATH: &str = "etc/h-vm.json";

/// How every protocol line starts.
pub const PREFIX: &str = "{\"h_vm\":";

/// What the guest runs: each host's binary, its cases and what its assertions need.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestConfig {
    pub hosts: Vec<GuestHost>,
    /// The unprivileged user's ids (in the guest's `/etc/passwd` as `h-test`).
    pub uid: u32,
    pub gid: u32,
    /// Case timeouts are multiplied by this under emulation.
    pub timeout_factor: u64,
}

/// One host in the guest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestHost {
    pub name: String,
    pub binary: PathBuf,
    /// The host's crate directory in the guest (its `cases/` and `attacks/`).
    pub cases: PathBuf,
    /// Build values substituted in the cases' expectations (`$LIBPYTHON`).
    pub vars: Vec<(String, String)>,
}

/// One line of the guest's report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "h_vm", rename_all = "kebab-case")]
pub enum Message {
    /// First: the kernel as the guest measured it.
    Kernel { release: String, abi: Option<u32> },
    /// A case, or a kernel check, run (or skipped) as one user, and how long it took. `host` is
    /// `None` for the kernel's own checks.
    Run { host: Option<String>, run: Run, ms: u64 },
    /// After a host's runs: what its `--print-policy` marked enforced.
    Host { host: String, enforced: Vec<String> },
    /// Last: how many runs the guest reported (the host checks it received them all).
    Done { runs: usize },
    /// The runner could not go on.
    Error { message: String },
}

impl Message {
    /// The console line.
    pub fn line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|error| format!("{PREFIX}\"error\",\"message\":\"{error}\"}}"))
    }

    /// The message of a console line: `None` for a line that is not part of the protocol.
    pub fn parse(line: &str) -> Option<Result<Message, String>> {
        let line = line.trim_end_matches('\r');
        let start = line.find(PREFIX)?;
        Some(serde_json::from_str(&line[start..]).map_err(|error| format!("{error}: {line}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use h_testkit::Verdict;

    #[test]
    fn messages_round_trip_as_single_lines() {
        let messages = [
            Message::Kernel { release: "6.12.1".into(), abi: None },
            Message::Run {
                host: Some("hsh".into()),
                run: Run {
                    name: "hsh/cases/x".into(),
                    user: Some("user".into()),
                    verdict: Verdict::Failed { about: "a\nb".into(), problems: vec!["c \"d\"".into()] },
                },
                ms: 1200,
            },
            Message::Run {
                host: None,
                run: Run { name: "kernel/landlock-abi".into(), user: None, verdict: Verdict::Skipped("why".into()) },
                ms: 0,
            },
            Message::Host { host: "hlua".into(), enforced: vec!["fs".into()] },
            Message::Done { runs: 3 },
        ];
        for message in messages {
            let line = message.line();
            assert!(line.starts_with(PREFIX) && !line.contains('\n'), "{line}");
            assert_eq!(Message::parse(&format!("{line}\r")), Some(Ok(message)));
        }
        assert_eq!(Message::parse("[    6.379986] reboot: Power down"), None);
        assert!(matches!(Message::parse("{\"h_vm\":\"run\",\"host\":"), Some(Err(_))));
    }
}
