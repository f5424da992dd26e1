//! The policy files as written: the schema of `filters/*.toml`, and loading one top-level file
//! (a host's, or the supervisor's) with the files it includes.

use std::path::{Path, PathBuf};

use h_sandbox::seccomp_program::bpf::{SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_USER_NOTIF};
use serde::Deserialize;

/// A constant as written in a filter: a number or a name from [`crate::constants`].
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Value {
    Number(i64),
    Name(String),
}

impl Value {
    /// The value as written, for descriptions.
    pub fn label(&self) -> String {
        match self {
            Value::Number(number) => number.to_string(),
            Value::Name(name) => name.clone(),
        }
    }
}

/// A condition on one argument of a call. Exactly one of `eq`, `bits_within`, `bits_set` and
/// `range` must be given.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgCondition {
    /// The argument's position, 0 to 5.
    pub index: u8,
    /// The argument's name in the man page, for readers.
    pub name: String,
    /// The argument equals one of these (all 64 bits).
    pub eq: Option<Vec<Value>>,
    /// No bit outside these is set (all 64 bits).
    pub bits_within: Option<Vec<Value>>,
    /// All of these bits are set.
    pub bits_set: Option<Vec<Value>>,
    /// lo <= argument <= hi, with the upper 32 bits zero.
    pub range: Option<[Value; 2]>,
}

/// One `[[rule]]` of a filter file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub syscall: String,
    /// Who needs the rule and why.
    pub why: String,
    /// Limit the rule to these architectures (for calls one of them lacks).
    pub arch: Option<Vec<String>>,
    /// All must hold; none means any arguments.
    #[serde(default)]
    pub args: Vec<ArgCondition>,
    /// Instead of allowing, fail the call with this errno (a tamper rule).
    pub errno: Option<Value>,
    /// Allow only the first matching call (the supervisor answers it) and refuse every later one.
    #[serde(default)]
    pub first_only: bool,
    /// The supervisor makes the call itself, on what it has checked (a metadata call on a file
    /// beneath a write grant), and answers with its result; the script's own call never runs.
    #[serde(default)]
    pub emulate: bool,
}

/// One file of `filters/`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterFile {
    /// What this file is for.
    pub description: String,
    /// Other files of `filters/` whose rules come first.
    #[serde(default)]
    pub include: Vec<String>,
    /// What a call outside the allow-list gets: "notify" (default: the supervisor reports the
    /// syscall by name and ends the host by SIGSYS) or "kill" (for the supervisor itself).
    pub denied: Option<String>,
    #[serde(default)]
    pub rule: Vec<RuleSpec>,
}

/// What is wrong with a filter file.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{}: the file does not say what it is for", path.display())]
    NoDescription { path: PathBuf },
    #[error("{}: the rule for {syscall} does not say who needs it", path.display())]
    NoWhy { path: PathBuf, syscall: String },
    #[error("{}: denied = {value:?}, expected \"notify\" or \"kill\"", path.display())]
    Denied { path: PathBuf, value: String },
    #[error("{}: including {name} again makes a cycle", path.display())]
    IncludeCycle { path: PathBuf, name: String },
}

/// A top-level filter with its includes: every rule in order (included files first) and the
/// action for calls outside the allow-list.
#[derive(Clone, Debug)]
pub struct Policy {
    pub rules: Vec<RuleSpec>,
    /// The seccomp return value for a call no rule allows.
    pub denied: u32,
}

impl Policy {
    /// Loads `filters_dir/name.toml` and what it includes.
    pub fn load(filters_dir: &Path, name: &str) -> Result<Policy, SchemaError> {
        let path = file_path(filters_dir, name);
        let file = read(&path)?;
        let denied = match file.denied.as_deref() {
            None | Some("notify") => SECCOMP_RET_USER_NOTIF,
            Some("kill") => SECCOMP_RET_KILL_PROCESS,
            Some(other) => return Err(SchemaError::Denied { path, value: other.to_string() }),
        };
        let mut rules = Vec::new();
        collect(filters_dir, name, file, &mut vec![name.to_string()], &mut rules)?;
        Ok(Policy { rules, denied })
    }
}

fn file_path(filters_dir: &Path, name: &str) -> PathBuf {
    filters_dir.join(format!("{name}.toml"))
}

/// Reads and parses one file, and checks that it and each of its rules say what they are for.
fn read(path: &Path) -> Result<FilterFile, SchemaError> {
    let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Read { path: path.into(), source })?;
    let file: FilterFile = toml::from_str(&text).map_err(|source| SchemaError::Parse { path: path.into(), source })?;
    if file.description.trim().is_empty() {
        return Err(SchemaError::NoDescription { path: path.into() });
    }
    if let Some(rule) = file.rule.iter().find(|rule| rule.why.trim().is_empty()) {
        return Err(SchemaError::NoWhy { path: path.into(), syscall: rule.syscall.clone() });
    }
    Ok(file)
}

/// Appends the rules of the files `file` includes, then its own; `stack` holds the files being
/// loaded, to refuse a cycle.
fn collect(
    filters_dir: &Path,
    name: &str,
    file: FilterFile,
    stack: &mut Vec<String>,
    rules: &mut Vec<RuleSpec>,
) -> Result<(), SchemaError> {
    for included in &file.include {
        if stack.contains(included) {
            return Err(SchemaError::IncludeCycle { path: file_path(filters_dir, name), name: included.clone() });
        }
        let inner = read(&file_path(filters_dir, included))?;
        stack.push(included.clone());
        collect(filters_dir, included, inner, stack, rules)?;
        stack.pop();
    }
    rules.extend(file.rule);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh temporary directory holding the filter files `files` (name, contents).
    fn filters(test: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("h-filter-schema-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
        }
        dir
    }

    const COMMON: &str = "description = \"shared\"\n[[rule]]\nsyscall = \"read\"\nwhy = \"everyone\"\n";

    #[test]
    fn includes_come_first_and_denied_defaults_to_notify() {
        let host =
            "description = \"a host\"\ninclude = [\"common\"]\n[[rule]]\nsyscall = \"write\"\nwhy = \"output\"\n";
        let dir = filters("includes", &[("common", COMMON), ("host", host)]);
        let policy = Policy::load(&dir, "host").unwrap();
        let names: Vec<&str> = policy.rules.iter().map(|rule| rule.syscall.as_str()).collect();
        assert_eq!(names, ["read", "write"]);
        assert_eq!(policy.denied, SECCOMP_RET_USER_NOTIF);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn files_and_rules_must_say_what_they_are_for() {
        let dir = filters(
            "reasons",
            &[
                ("blank", "description = \" \"\n"),
                ("nowhy", "description = \"x\"\n[[rule]]\nsyscall = \"read\"\nwhy = \"\"\n"),
                ("unknown", "description = \"x\"\n[[rule]]\nsyscall = \"read\"\nwhy = \"y\"\nallow = true\n"),
                ("denied", "description = \"x\"\ndenied = \"trap\"\n"),
                ("kill", "description = \"x\"\ndenied = \"kill\"\n"),
                ("loop", "description = \"x\"\ninclude = [\"loop\"]\n"),
            ],
        );
        assert!(matches!(Policy::load(&dir, "blank"), Err(SchemaError::NoDescription { .. })));
        assert!(matches!(Policy::load(&dir, "nowhy"), Err(SchemaError::NoWhy { syscall, .. }) if syscall == "read"));
        assert!(matches!(Policy::load(&dir, "unknown"), Err(SchemaError::Parse { .. })));
        assert!(matches!(Policy::load(&dir, "denied"), Err(SchemaError::Denied { value, .. }) if value == "trap"));
        assert_eq!(Policy::load(&dir, "kill").unwrap().denied, SECCOMP_RET_KILL_PROCESS);
        assert!(matches!(Policy::load(&dir, "loop"), Err(SchemaError::IncludeCycle { .. })));
        assert!(matches!(Policy::load(&dir, "absent"), Err(SchemaError::Read { .. })));
        let _ = std::fs::remove_dir_all(dir);
    }
}
