//! The kernel checks of a VM run (the QEMU guest of `cargo xtask vm-test`, the NixOS VM tests):
//! what a host must report and refuse on the kernel it runs on, read from `--version` and
//! `--print-policy=json` (never from the text output, which is for people).
//!
//! - the landlock ABI measured here is the one the matrix expects, and `HOST --version` names it;
//! - `--print-policy=json` marks exactly the features of that ABI enforced; below ABI 4 (no TCP
//!   rules) seccomp allows no socket but AF_UNIX ones;
//! - without landlock: the host refuses to run without `--allow-degraded` (exit 1, stderr names
//!   landlock, the script does not run), and with it the report says degraded.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;

use crate::machine::CASE_PATH;
use crate::outcome::{execute, status_problems, Outcome};
use crate::work::User;

/// The landlock ABI a VM run expects of its kernel: `none`, `N` or `N+` (at least N).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbiExpectation {
    Absent,
    Exactly(u32),
    AtLeast(u32),
}

impl FromStr for AbiExpectation {
    type Err = String;

    fn from_str(text: &str) -> Result<AbiExpectation, String> {
        let number = |digits: &str| digits.parse::<u32>().map_err(|_| format!("not a landlock ABI: {text:?}"));
        match text {
            "none" => Ok(AbiExpectation::Absent),
            _ => match text.strip_suffix('+') {
                Some(digits) => Ok(AbiExpectation::AtLeast(number(digits)?)),
                None => Ok(AbiExpectation::Exactly(number(text)?)),
            },
        }
    }
}

impl AbiExpectation {
    /// What is wrong with the `measured` ABI (`None`: no landlock).
    pub fn problems(self, measured: Option<u32>) -> Vec<String> {
        let met = match (self, measured) {
            (AbiExpectation::Absent, None) => true,
            (AbiExpectation::Exactly(wanted), Some(abi)) => abi == wanted,
            (AbiExpectation::AtLeast(wanted), Some(abi)) => abi >= wanted,
            _ => false,
        };
        if met {
            return Vec::new();
        }
        let have = measured.map_or_else(|| "none".to_string(), |abi| abi.to_string());
        vec![format!("the kernel reports landlock ABI {have} where {self:?} is expected")]
    }
}

/// One kernel check: its name (`version`, `print-policy`, ...) and what went wrong.
pub type Check = (String, Vec<String>);

/// The short name of what each landlock ABI adds (the tags a VM run's summary shows).
fn feature_tag(abi: u64) -> &'static str {
    match abi {
        1 => "fs",
        2 => "refer",
        3 => "truncate",
        4 => "tcp",
        5 => "ioctl-dev",
        6 => "scopes",
        7 => "audit",
        9 => "unix-connect",
        _ => "?",
    }
}

/// Runs `binary` (a host) with `arguments` as `user`, in a clean environment.
fn run_host(binary: &Path, arguments: &[&str], user: &User) -> Outcome {
    let mut command = Command::new(binary);
    command.args(arguments).current_dir("/").env_clear().env("PATH", CASE_PATH);
    if user.uid != 0 {
        command.uid(user.uid).gid(user.gid);
    }
    execute(command, None, None, Duration::from_secs(60))
}

/// The kernel checks of one host on a kernel whose landlock ABI is `abi`, run as `user` with
/// `script` (any script the host runs quietly): the checks, and the features the host reported
/// enforced.
pub fn host_checks(binary: &Path, script: &Path, abi: Option<u32>, user: &User) -> (Vec<Check>, Vec<String>) {
    let script_text = script.to_string_lossy();
    let mut checks = Vec::new();

    let version = run_host(binary, &["--version"], user);
    let wanted = abi.map_or_else(|| "no landlock".to_string(), |abi| format!("landlock ABI {abi}"));
    let mut problems = status_problems(&version, None, Some(0));
    if !version.stdout.contains(&wanted) {
        problems.push(format!("--version lacks {wanted:?}: {:?}", version.stdout));
    }
    checks.push(("version".to_string(), problems));

    let (report, mut problems) = policy_report(binary, &["--print-policy=json", &script_text], user);
    let tags = match abi {
        None => {
            if report.pointer("/landlock/abi") != Some(&Value::Null) {
                problems.push("--print-policy=json does not say the kernel has no landlock".to_string());
            }
            vec!["landlock unavailable: refused without --allow-degraded".to_string()]
        }
        Some(abi) => enforced_features(abi, &report, &mut problems),
    };
    checks.push(("print-policy".to_string(), problems));

    if let Some(abi) = abi {
        checks.push(("allow-connect".to_string(), connect_checks(binary, &script_text, abi, user)));
    }
    checks.push(("learn".to_string(), learn_checks(binary, &script_text, abi, user)));
    if abi.is_none() {
        let refused = run_host(binary, &[&script_text], user);
        let mut problems = status_problems(&refused, None, Some(1));
        if !refused.stderr.contains("landlock") {
            problems.push(format!("stderr does not name landlock: {:?}", refused.stderr));
        }
        if !refused.stdout.is_empty() {
            problems.push(format!("the script ran: stdout {:?}", refused.stdout));
        }
        checks.push(("refuses-without-landlock".to_string(), problems));
        let (report, mut problems) =
            policy_report(binary, &["--allow-degraded", "--print-policy=json", &script_text], user);
        if report.pointer("/landlock/degraded") != Some(&Value::Bool(true)) {
            problems.push("--allow-degraded --print-policy=json does not say landlock is degraded".to_string());
        }
        checks.push(("degraded-policy".to_string(), problems));
    }
    (checks, tags)
}

/// `--learn` with a script that is refused nothing: the report says so where landlock refuses
/// paths; on a kernel without landlock (`--allow-degraded`) it says that no path was refused and
/// none is listed, rather than listing paths nothing refused.
fn learn_checks(binary: &Path, script: &str, abi: Option<u32>, user: &User) -> Vec<String> {
    let (arguments, wanted): (&[&str], &str) = match abi {
        Some(_) => (&["--learn", script], "learned: nothing was refused"),
        None => (
            &["--learn", "--allow-degraded", script],
            "this kernel has no landlock: no path or program was refused, and none is listed",
        ),
    };
    let learned = run_host(binary, arguments, user);
    let mut problems = status_problems(&learned, None, Some(0));
    if !learned.stderr.contains(wanted) {
        problems.push(format!("the report lacks {wanted:?}: {:?}", learned.stderr));
    }
    problems
}

/// `--allow-connect` on a kernel with landlock ABI `abi`: from ABI 4 (TCP) the report lists the
/// endpoint; below, the host refuses to run without `--allow-degraded` (exit 1, stderr names
/// the option and the ABI) and runs with it.
fn connect_checks(binary: &Path, script: &str, abi: u32, user: &User) -> Vec<String> {
    const GRANT: &str = "--allow-connect=127.0.0.1:9";
    if abi >= 4 {
        let (report, mut problems) = policy_report(binary, &[GRANT, "--print-policy=json", script], user);
        if report.pointer("/connect/0/addresses/0").and_then(Value::as_str) != Some("127.0.0.1:9") {
            problems.push(format!("--print-policy=json lacks the endpoint: {:?}", report.get("connect")));
        }
        return problems;
    }
    let refused = run_host(binary, &[GRANT, script], user);
    let mut problems = status_problems(&refused, None, Some(1));
    if !(refused.stderr.contains("--allow-connect") && refused.stderr.contains("ABI 4")) {
        problems.push(format!("stderr does not name --allow-connect and ABI 4: {:?}", refused.stderr));
    }
    let degraded = run_host(binary, &[GRANT, "--allow-degraded", script], user);
    problems.extend(
        status_problems(&degraded, None, Some(0))
            .into_iter()
            .map(|problem| format!("with --allow-degraded: {problem}")),
    );
    problems
}

/// The host's `--print-policy=json` report (`Null` when it cannot be read) and what went wrong.
fn policy_report(binary: &Path, arguments: &[&str], user: &User) -> (Value, Vec<String>) {
    let outcome = run_host(binary, arguments, user);
    let mut problems = status_problems(&outcome, None, Some(0));
    let report = serde_json::from_str(&outcome.stdout).unwrap_or_else(|error| {
        problems.push(format!("--print-policy=json is not JSON ({error}): {:?}", outcome.stdout));
        Value::Null
    });
    (report, problems)
}

/// The features the report marks enforced, checked against `abi`: each is marked exactly when
/// `abi` is at least the ABI that brought it; below ABI 4 seccomp allows no socket beyond AF_UNIX.
fn enforced_features(abi: u32, report: &Value, problems: &mut Vec<String>) -> Vec<String> {
    let mut tags = Vec::new();
    let features = report.pointer("/landlock/features").and_then(Value::as_array).cloned().unwrap_or_default();
    if features.is_empty() {
        problems.push("--print-policy=json lists no landlock features".to_string());
    }
    let mut seen = Vec::new();
    for feature in &features {
        let name = feature.get("feature").and_then(Value::as_str).unwrap_or("?");
        let (Some(since), Some(enforced)) =
            (feature.get("abi").and_then(Value::as_u64), feature.get("enforced").and_then(Value::as_bool))
        else {
            problems.push(format!("unreadable feature {feature}"));
            continue;
        };
        seen.push(since);
        if enforced != (u64::from(abi) >= since) {
            problems.push(format!("ABI {abi} but --print-policy=json says {name:?} is enforced: {enforced}"));
        }
        if enforced {
            tags.push(feature_tag(since).to_string());
        }
    }
    for needed in [1, 4, 6] {
        if !seen.contains(&needed) {
            problems.push(format!("--print-policy=json lists no feature of ABI {needed}"));
        }
    }
    if abi < 4 {
        let rules = report.pointer("/seccomp/rules").and_then(Value::as_array).cloned().unwrap_or_default();
        if rules.iter().any(allows_network_socket) {
            problems.push(format!("ABI {abi} has no TCP rules, and seccomp allows socket beyond AF_UNIX"));
        }
        tags.push("(no tcp: seccomp allows no network socket)".to_string());
    }
    tags
}

/// Whether a seccomp rule of the report allows socket(2) for a family other than AF_UNIX (a
/// socketpair, or a unix socket, reaches no network).
fn allows_network_socket(rule: &Value) -> bool {
    let text = |key: &str| rule.get(key).and_then(Value::as_str).unwrap_or_default();
    if text("action") != "allow" || text("syscall") != "socket" {
        return false;
    }
    let conditions = rule.get("conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    !conditions.iter().any(|condition| condition.as_str() == Some("arg0 (domain) is one of AF_UNIX=0x1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(features: &[(u64, bool)], rules: Value) -> Value {
        let features: Vec<Value> = features
            .iter()
            .map(|&(abi, enforced)| serde_json::json!({"feature": format!("f (ABI {abi})"), "abi": abi, "enforced": enforced}))
            .collect();
        serde_json::json!({"landlock": {"abi": 6, "features": features}, "seccomp": {"rules": rules}})
    }

    const ALL: [u64; 8] = [1, 2, 3, 4, 5, 6, 7, 9];

    #[test]
    fn features_follow_the_abi() {
        let six = report(&ALL.map(|abi| (abi, abi <= 6)), serde_json::json!([]));
        let mut problems = Vec::new();
        let tags = enforced_features(6, &six, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(tags, ["fs", "refer", "truncate", "tcp", "ioctl-dev", "scopes"]);
        let mut problems = Vec::new();
        enforced_features(7, &six, &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let mut problems = Vec::new();
        enforced_features(2, &six, &mut problems);
        assert_eq!(problems.len(), 4, "{problems:?}");
        let mut problems = Vec::new();
        enforced_features(6, &report(&[(1, true)], serde_json::json!([])), &mut problems);
        assert_eq!(problems.len(), 2, "features of ABI 4 and 6 missing: {problems:?}");
    }

    /// Without landlock's TCP rules seccomp must allow no socket(2) but AF_UNIX ones; a
    /// socketpair is no network.
    #[test]
    fn only_socket_itself_opens_the_network() {
        let two = ALL.map(|abi| (abi, abi <= 2));
        let socket_problems = |rules: Value| {
            let mut problems = Vec::new();
            enforced_features(2, &report(&two, rules), &mut problems);
            problems.iter().filter(|problem| problem.contains("seccomp allows socket")).count()
        };
        let rule = |action: &str, syscall: &str, conditions: &[&str]| serde_json::json!({"action": action, "syscall": syscall, "conditions": conditions});
        let unix = "arg0 (domain) is one of AF_UNIX=0x1";
        assert_eq!(socket_problems(serde_json::json!([rule("allow", "socketpair", &[unix])])), 0);
        assert_eq!(socket_problems(serde_json::json!([rule("errno 13", "socket", &[])])), 0);
        let stream = "arg1 (type) has no bit outside SOCK_STREAM=0x1|SOCK_CLOEXEC=0x80000";
        assert_eq!(socket_problems(serde_json::json!([rule("allow", "socket", &[unix, stream])])), 0);
        assert_eq!(
            socket_problems(serde_json::json!([rule("allow", "socket", &["arg0 (domain) is one of AF_INET=0x2"])])),
            1
        );
        assert_eq!(
            socket_problems(serde_json::json!([rule(
                "allow",
                "socket",
                &["arg0 (domain) is one of AF_UNIX=0x1, AF_INET=0x2"]
            )])),
            1
        );
        assert_eq!(socket_problems(serde_json::json!([rule("allow", "socket", &[])])), 1);
    }

    #[test]
    fn expectations_read_and_judge() {
        assert_eq!("none".parse(), Ok(AbiExpectation::Absent));
        assert_eq!("2".parse(), Ok(AbiExpectation::Exactly(2)));
        assert_eq!("6+".parse(), Ok(AbiExpectation::AtLeast(6)));
        assert!("six".parse::<AbiExpectation>().is_err());
        assert!(AbiExpectation::AtLeast(6).problems(Some(7)).is_empty());
        assert_eq!(AbiExpectation::AtLeast(6).problems(Some(2)).len(), 1);
        assert_eq!(AbiExpectation::Exactly(2).problems(None).len(), 1);
        assert!(AbiExpectation::Absent.problems(None).is_empty());
        assert_eq!(AbiExpectation::Absent.problems(Some(1)).len(), 1);
    }
}
