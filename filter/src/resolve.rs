//! A policy for one architecture: the rules that apply to it, with syscall names and constants
//! replaced by numbers, each condition checked for sense, and a readable description of each.

use h_sandbox::seccomp_program::bpf::{
    NOTIFY_EMULATE, NOTIFY_FIRST_ONLY, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_USER_NOTIF,
};

use crate::constants::{self, UnknownConstant};
use crate::schema::{RuleSpec, Value};
use crate::Arch;

/// A resolved condition on one argument (all 64 bits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// The argument is one of these.
    Eq(Vec<u64>),
    /// No bit outside this mask is set.
    BitsWithin(u64),
    /// Every bit of this mask is set.
    BitsSet(u64),
    /// low <= argument <= high (high fits in 32 bits).
    Range(u64, u64),
}

impl Check {
    /// Whether `value` satisfies the check: the policy's meaning, independent of the emitter.
    pub fn holds(&self, value: u64) -> bool {
        match self {
            Check::Eq(values) => values.contains(&value),
            Check::BitsWithin(allowed) => value & !allowed == 0,
            Check::BitsSet(required) => value & required == *required,
            Check::Range(low, high) => (*low..=*high).contains(&value),
        }
    }
}

/// A rule for one architecture.
#[derive(Clone, Debug)]
pub struct ResolvedRule {
    pub syscall: String,
    pub number: u32,
    /// (argument index, check); all must hold.
    pub checks: Vec<(u8, Check)>,
    /// The seccomp return value on a match.
    pub action: u32,
    /// One sentence per check, for `--print-policy`.
    pub descriptions: Vec<String>,
    /// The arguments the checks read: (index, name), in the order written.
    pub arguments: Vec<(u8, String)>,
    pub why: String,
}

/// What is wrong with a rule on an architecture.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("{arch} has no syscall {syscall} (restrict the rule with `arch`)")]
    NoSyscall { arch: Arch, syscall: String },
    #[error("{syscall}: argument index {index} out of range")]
    ArgumentIndex { syscall: String, index: u8 },
    #[error("{syscall}: {subject} needs exactly one of eq, bits_within, bits_set, range")]
    ConditionCount { syscall: String, subject: String },
    #[error("{syscall}: {subject}: bad range")]
    BadRange { syscall: String, subject: String },
    #[error("{syscall}: first_only and errno exclude each other")]
    FirstOnlyWithErrno { syscall: String },
    #[error("{syscall}: emulate excludes errno and first_only")]
    EmulateWithOther { syscall: String },
    #[error("{syscall}: errno {value} out of range")]
    Errno { syscall: String, value: u64 },
    #[error("the rule for {syscall}")]
    Constant {
        syscall: String,
        #[source]
        source: UnknownConstant,
    },
}

/// The rules of `rules` that apply to `arch`, resolved, in order.
pub fn resolve(rules: &[RuleSpec], arch: Arch) -> Result<Vec<ResolvedRule>, ResolveError> {
    rules.iter().filter(|rule| applies_to(rule, arch)).map(|rule| resolve_rule(rule, arch)).collect()
}

fn applies_to(rule: &RuleSpec, arch: Arch) -> bool {
    rule.arch.as_ref().is_none_or(|arches| arches.iter().any(|name| name == arch.name()))
}

fn resolve_rule(rule: &RuleSpec, arch: Arch) -> Result<ResolvedRule, ResolveError> {
    let syscall = || rule.syscall.clone();
    let number =
        arch.syscall_number(&rule.syscall).ok_or_else(|| ResolveError::NoSyscall { arch, syscall: syscall() })?;
    let value = |value: &Value| -> Result<u64, ResolveError> {
        match value {
            Value::Number(number) => Ok(*number as u64),
            Value::Name(name) => {
                constants::lookup(name, arch).map_err(|source| ResolveError::Constant { syscall: syscall(), source })
            }
        }
    };
    let or_values = |values: &[Value]| values.iter().try_fold(0u64, |acc, item| Ok(acc | value(item)?));
    let describe = |values: &[Value], separator: &str| -> Result<String, ResolveError> {
        let parts = values
            .iter()
            .map(|item| {
                let resolved = value(item)?;
                Ok(match item {
                    Value::Number(_) => format!("{resolved:#x}"),
                    Value::Name(name) => format!("{name}={resolved:#x}"),
                })
            })
            .collect::<Result<Vec<String>, ResolveError>>()?;
        Ok(parts.join(separator))
    };
    let mut checks = Vec::new();
    let mut descriptions = Vec::new();
    let mut arguments: Vec<(u8, String)> = Vec::new();
    for condition in &rule.args {
        if condition.index > 5 {
            return Err(ResolveError::ArgumentIndex { syscall: syscall(), index: condition.index });
        }
        let subject = format!("arg{} ({})", condition.index, condition.name);
        let given = [
            condition.eq.is_some(),
            condition.bits_within.is_some(),
            condition.bits_set.is_some(),
            condition.range.is_some(),
        ];
        if given.iter().filter(|&&is_given| is_given).count() != 1 {
            return Err(ResolveError::ConditionCount { syscall: syscall(), subject });
        }
        let (check, description) = if let Some(values) = &condition.eq {
            let resolved = values.iter().map(value).collect::<Result<Vec<u64>, ResolveError>>()?;
            (Check::Eq(resolved), format!("{subject} is one of {}", describe(values, ", ")?))
        } else if let Some(values) = &condition.bits_within {
            (Check::BitsWithin(or_values(values)?), format!("{subject} has no bit outside {}", describe(values, "|")?))
        } else if let Some(values) = &condition.bits_set {
            (Check::BitsSet(or_values(values)?), format!("{subject} has all of {}", describe(values, "|")?))
        } else if let Some([low, high]) = &condition.range {
            let (low_value, high_value) = (value(low)?, value(high)?);
            if low_value > high_value || high_value > u64::from(u32::MAX) {
                return Err(ResolveError::BadRange { syscall: syscall(), subject });
            }
            (Check::Range(low_value, high_value), format!("{subject} is within {}..={}", low.label(), high.label()))
        } else {
            return Err(ResolveError::ConditionCount { syscall: syscall(), subject });
        };
        checks.push((condition.index, check));
        descriptions.push(description);
        if !arguments.iter().any(|(index, _)| *index == condition.index) {
            arguments.push((condition.index, condition.name.clone()));
        }
    }
    if rule.emulate && (rule.first_only || rule.errno.is_some()) {
        return Err(ResolveError::EmulateWithOther { syscall: syscall() });
    }
    let action = match &rule.errno {
        None if rule.emulate => SECCOMP_RET_USER_NOTIF | NOTIFY_EMULATE,
        None if rule.first_only => SECCOMP_RET_USER_NOTIF | NOTIFY_FIRST_ONLY,
        None => SECCOMP_RET_ALLOW,
        Some(_) if rule.first_only => return Err(ResolveError::FirstOnlyWithErrno { syscall: syscall() }),
        Some(errno) => {
            let errno = value(errno)?;
            if errno == 0 || errno > 4095 {
                return Err(ResolveError::Errno { syscall: syscall(), value: errno });
            }
            SECCOMP_RET_ERRNO | errno as u32
        }
    };
    Ok(ResolvedRule {
        syscall: syscall(),
        number,
        checks,
        action,
        descriptions,
        arguments,
        why: rule.why.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules of a `[[rule]]` list written in TOML.
    pub(crate) fn rules(toml_text: &str) -> Vec<RuleSpec> {
        #[derive(serde::Deserialize)]
        struct Rules {
            rule: Vec<RuleSpec>,
        }
        toml::from_str::<Rules>(toml_text).unwrap().rule
    }

    #[test]
    fn names_become_numbers_and_descriptions() {
        let spec = rules(
            "[[rule]]\nsyscall = \"openat\"\nwhy = \"files\"\nargs = [\n  { index = 2, name = \"flags\", bits_within = [\"O_RDONLY\", \"O_CLOEXEC\", \"O_DIRECTORY\"] },\n  { index = 0, name = \"dirfd\", eq = [\"AT_FDCWD\", 3] },\n]\n",
        );
        let x86 = resolve(&spec, Arch::X86_64).unwrap();
        let arm = resolve(&spec, Arch::Aarch64).unwrap();
        assert_eq!((x86[0].number, arm[0].number), (257, 56));
        assert_eq!(x86[0].checks[0], (2, Check::BitsWithin(0o2000000 | 0o200000)));
        assert_eq!(arm[0].checks[0], (2, Check::BitsWithin(0o2000000 | 0o40000)));
        assert_eq!(x86[0].checks[1], (0, Check::Eq(vec![(-100i64) as u64, 3])));
        assert_eq!(x86[0].action, SECCOMP_RET_ALLOW);
        assert_eq!(x86[0].descriptions[1], "arg0 (dirfd) is one of AT_FDCWD=0xffffffffffffff9c, 0x3");
        assert_eq!(x86[0].arguments, [(2, "flags".to_string()), (0, "dirfd".to_string())]);
    }

    #[test]
    fn arch_restricted_rules_and_actions() {
        let spec = rules(
            "[[rule]]\nsyscall = \"arch_prctl\"\nwhy = \"tls\"\narch = [\"x86_64\"]\n[[rule]]\nsyscall = \"clone3\"\nwhy = \"fallback\"\nerrno = \"ENOSYS\"\n[[rule]]\nsyscall = \"execve\"\nwhy = \"once\"\nfirst_only = true\n",
        );
        assert_eq!(resolve(&spec, Arch::X86_64).unwrap().len(), 3);
        let arm = resolve(&spec, Arch::Aarch64).unwrap();
        assert_eq!(arm.len(), 2);
        assert_eq!(arm[0].action, SECCOMP_RET_ERRNO | 38);
        assert_eq!(arm[1].action, SECCOMP_RET_USER_NOTIF | NOTIFY_FIRST_ONLY);
    }

    #[test]
    fn senseless_rules_are_refused() {
        let refused = |text: &str| resolve(&rules(text), Arch::X86_64).unwrap_err();
        let head = "[[rule]]\nsyscall = \"ioctl\"\nwhy = \"w\"\n";
        assert!(matches!(refused("[[rule]]\nsyscall = \"open\"\nwhy = \"w\"\narch = [\"aarch64\"]\n[[rule]]\nsyscall = \"nosuch\"\nwhy = \"w\"\n"), ResolveError::NoSyscall { .. }));
        assert!(matches!(
            refused(&format!("{head}args = [{{ index = 6, name = \"x\", eq = [1] }}]\n")),
            ResolveError::ArgumentIndex { index: 6, .. }
        ));
        assert!(matches!(
            refused(&format!("{head}args = [{{ index = 1, name = \"x\", eq = [1], range = [0, 2] }}]\n")),
            ResolveError::ConditionCount { .. }
        ));
        assert!(matches!(
            refused(&format!("{head}args = [{{ index = 1, name = \"x\" }}]\n")),
            ResolveError::ConditionCount { .. }
        ));
        assert!(matches!(
            refused(&format!("{head}args = [{{ index = 1, name = \"x\", range = [3, 2] }}]\n")),
            ResolveError::BadRange { .. }
        ));
        assert!(matches!(
            refused(&format!("{head}args = [{{ index = 1, name = \"x\", range = [0, 0x100000000] }}]\n")),
            ResolveError::BadRange { .. }
        ));
        assert!(matches!(
            refused(&format!("{head}errno = 1\nfirst_only = true\n")),
            ResolveError::FirstOnlyWithErrno { .. }
        ));
        assert!(matches!(
            refused(&format!("{head}emulate = true\nfirst_only = true\n")),
            ResolveError::EmulateWithOther { .. }
        ));
        assert!(matches!(refused(&format!("{head}errno = 4096\n")), ResolveError::Errno { value: 4096, .. }));
        assert!(matches!(refused(&format!("{head}errno = 0\n")), ResolveError::Errno { value: 0, .. }));
        assert!(matches!(
            refused(&format!("{head}args = [{{ index = 1, name = \"x\", eq = [\"TIOCNOPE\"] }}]\n")),
            ResolveError::Constant { .. }
        ));
    }
}
