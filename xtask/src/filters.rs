//! Compiles the seccomp policies in `filters/*.toml` into cBPF programs, one per host and
//! architecture, and writes them as Rust source the hosts include.
//!
//! Why not seccompiler: it checks the architecture but not the x32 bit (rust-vmm/seccompiler#74),
//! and it has one match action per filter, while h needs TRAP for denials, ERRNO for the few
//! tamper rules and KILL never. The emitter below is small, and `verify` proves every program
//! against its policy with an independent evaluator.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use h_sandbox::seccomp_program::bpf::*;
use h_sandbox::seccomp_program::SockFilter;
use serde::Deserialize;

use crate::constants;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

pub const ARCHES: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

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

    pub fn syscall_number(self, name: &str) -> Option<u32> {
        self.syscalls().into_iter().find(|&(_, known)| known == name).map(|(nr, _)| nr)
    }
}

/// A constant as written in a filter: a number or a name from `constants.rs`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Number(i64),
    Name(String),
}

impl Value {
    fn resolve(&self, arch: Arch) -> Result<u64> {
        match self {
            Value::Number(number) => Ok(*number as u64),
            Value::Name(name) => constants::lookup(name, arch),
        }
    }

    fn label(&self) -> String {
        match self {
            Value::Number(number) => number.to_string(),
            Value::Name(name) => name.clone(),
        }
    }
}

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
}

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

/// The programs compiled, with the crate directory the output goes to. `supervisor` is the
/// supervisor's own filter, inside the sandbox crate.
pub const HOSTS: &[(&str, &str)] = &[
    ("supervisor", "sandbox"),
    ("hlua", "hosts/hlua"),
    ("hsh", "hosts/hsh"),
    ("hnode", "hosts/hnode"),
    ("hpython", "hosts/hpython"),
];

/// The action for calls outside the allow-list of the top-level file `name`.
pub fn denied_action(filters_dir: &Path, name: &str) -> Result<u32> {
    let path = filters_dir.join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let file: FilterFile = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    match file.denied.as_deref() {
        None | Some("notify") => Ok(SECCOMP_RET_USER_NOTIF),
        Some("kill") => Ok(SECCOMP_RET_KILL_PROCESS),
        Some(other) => {
            bail!("{}: denied = {other:?}, expected \"notify\" or \"kill\"", path.display())
        }
    }
}

pub fn load(filters_dir: &Path, name: &str) -> Result<Vec<RuleSpec>> {
    let path = filters_dir.join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let file: FilterFile = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if file.description.trim().is_empty() {
        bail!("{}: the file does not say what it is for", path.display());
    }
    let mut rules = Vec::new();
    for included in &file.include {
        rules.extend(load(filters_dir, included)?);
    }
    for rule in &file.rule {
        if rule.why.trim().is_empty() {
            bail!("{}: the rule for {} does not say who needs it", path.display(), rule.syscall);
        }
    }
    rules.extend(file.rule);
    Ok(rules)
}

fn applies_to(rule: &RuleSpec, arch: Arch) -> bool {
    rule.arch.as_ref().is_none_or(|arches| arches.iter().any(|name| name == arch.name()))
}

/// A resolved condition on one argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    Eq(Vec<u64>),
    BitsWithin(u64),
    BitsSet(u64),
    Range(u64, u64),
}

#[derive(Clone, Debug)]
pub struct ResolvedRule {
    pub syscall: String,
    pub number: u32,
    pub checks: Vec<(u8, Check)>,
    /// The seccomp return value on a match.
    pub action: u32,
    pub descriptions: Vec<String>,
    /// The arguments the checks read: (index, name), in the order written.
    pub arguments: Vec<(u8, String)>,
    pub why: String,
}

fn or_values(values: &[Value], arch: Arch) -> Result<u64> {
    values.iter().try_fold(0u64, |acc, value| Ok(acc | value.resolve(arch)?))
}

fn describe_values(values: &[Value], arch: Arch, separator: &str) -> Result<String> {
    let parts: Result<Vec<String>> = values
        .iter()
        .map(|value| {
            let resolved = value.resolve(arch)?;
            Ok(match value {
                Value::Number(_) => format!("{resolved:#x}"),
                Value::Name(name) => format!("{name}={resolved:#x}"),
            })
        })
        .collect();
    Ok(parts?.join(separator))
}

pub fn resolve(rules: &[RuleSpec], arch: Arch) -> Result<Vec<ResolvedRule>> {
    let mut resolved = Vec::new();
    for rule in rules.iter().filter(|rule| applies_to(rule, arch)) {
        let number = arch.syscall_number(&rule.syscall).with_context(|| {
            format!("{} has no syscall {} (restrict the rule with `arch`)", arch.name(), rule.syscall)
        })?;
        let mut checks = Vec::new();
        let mut descriptions = Vec::new();
        let mut arguments: Vec<(u8, String)> = Vec::new();
        for condition in &rule.args {
            if condition.index > 5 {
                bail!("{}: argument index {} out of range", rule.syscall, condition.index);
            }
            let subject = format!("arg{} ({})", condition.index, condition.name);
            let given = [
                condition.eq.is_some(),
                condition.bits_within.is_some(),
                condition.bits_set.is_some(),
                condition.range.is_some(),
            ];
            if given.iter().filter(|&&is_given| is_given).count() != 1 {
                bail!("{}: {subject} needs exactly one of eq, bits_within, bits_set, range", rule.syscall);
            }
            let (check, description) = if let Some(values) = &condition.eq {
                let resolved: Result<Vec<u64>> = values.iter().map(|value| value.resolve(arch)).collect();
                (Check::Eq(resolved?), format!("{subject} is one of {}", describe_values(values, arch, ", ")?))
            } else if let Some(values) = &condition.bits_within {
                (
                    Check::BitsWithin(or_values(values, arch)?),
                    format!("{subject} has no bit outside {}", describe_values(values, arch, "|")?),
                )
            } else if let Some(values) = &condition.bits_set {
                (
                    Check::BitsSet(or_values(values, arch)?),
                    format!("{subject} has all of {}", describe_values(values, arch, "|")?),
                )
            } else if let Some([low, high]) = &condition.range {
                let (low_value, high_value) = (low.resolve(arch)?, high.resolve(arch)?);
                if low_value > high_value || high_value > u64::from(u32::MAX) {
                    bail!("{}: {subject}: bad range", rule.syscall);
                }
                (Check::Range(low_value, high_value), format!("{subject} is within {}..={}", low.label(), high.label()))
            } else {
                bail!("{}: {subject}: no condition", rule.syscall);
            };
            checks.push((condition.index, check));
            descriptions.push(description);
            if !arguments.iter().any(|(index, _)| *index == condition.index) {
                arguments.push((condition.index, condition.name.clone()));
            }
        }
        let action = match &rule.errno {
            None if rule.first_only => SECCOMP_RET_USER_NOTIF | NOTIFY_FIRST_ONLY,
            None => SECCOMP_RET_ALLOW,
            Some(_) if rule.first_only => bail!("{}: first_only and errno exclude each other", rule.syscall),
            Some(errno) => {
                let value = errno.resolve(arch)?;
                if value == 0 || value > 4095 {
                    bail!("{}: errno {value} out of range", rule.syscall);
                }
                SECCOMP_RET_ERRNO | value as u32
            }
        };
        resolved.push(ResolvedRule {
            syscall: rule.syscall.clone(),
            number,
            checks,
            action,
            descriptions,
            arguments,
            why: rule.why.trim().to_string(),
        });
    }
    Ok(resolved)
}

// ---- the assembler ----------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Target {
    Next,
    Label(usize),
}

#[derive(Clone, Debug)]
enum Op {
    Load(u32, String),
    And(u32),
    Jump {
        code: u16,
        k: u32,
        taken: Target,
        not_taken: Target,
        comment: String,
    },
    Ret(u32, String),
    /// An unconditional jump (`BPF_JA`, 32-bit offset) to a label.
    Goto(usize, String),
    Label(usize),
}

struct Assembler {
    ops: Vec<Op>,
    labels: usize,
}

impl Assembler {
    fn label(&mut self) -> usize {
        self.labels += 1;
        self.labels
    }

    fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// Lays out the ops; every jump must be forward, conditional ones within 255 instructions.
    fn finish(self) -> Result<Vec<(SockFilter, String)>> {
        let mut position = BTreeMap::new();
        let mut count = 0usize;
        for op in &self.ops {
            match op {
                Op::Label(label) => {
                    position.insert(*label, count);
                }
                _ => count += 1,
            }
        }
        let mut out = Vec::with_capacity(count);
        for op in &self.ops {
            let here = out.len();
            let offset = |target: Target| -> Result<u8> {
                match target {
                    Target::Next => Ok(0),
                    Target::Label(label) => {
                        let destination = *position.get(&label).context("undefined label")?;
                        let distance = destination.checked_sub(here + 1).context("backward jump")?;
                        u8::try_from(distance).context("jump longer than 255 instructions")
                    }
                }
            };
            match op {
                Op::Label(_) => {}
                Op::Load(offset_in_data, comment) => out
                    .push((SockFilter { code: LD_W_ABS, jt: 0, jf: 0, k: *offset_in_data }, format!("load {comment}"))),
                Op::And(mask) => {
                    out.push((SockFilter { code: ALU_AND_K, jt: 0, jf: 0, k: *mask }, format!("and {mask:#x}")))
                }
                Op::Jump { code, k, taken, not_taken, comment } => out.push((
                    SockFilter { code: *code, jt: offset(*taken)?, jf: offset(*not_taken)?, k: *k },
                    comment.clone(),
                )),
                Op::Ret(value, comment) => {
                    out.push((SockFilter { code: RET_K, jt: 0, jf: 0, k: *value }, format!("return {comment}")))
                }
                Op::Goto(label, comment) => {
                    let destination = *position.get(label).context("undefined label")?;
                    let distance = destination.checked_sub(here + 1).context("backward jump")?;
                    let k = u32::try_from(distance).context("jump too long")?;
                    out.push((SockFilter { code: JMP_JA, jt: 0, jf: 0, k }, format!("goto {comment}")))
                }
            }
        }
        Ok(out)
    }
}

fn arg_low(index: u8) -> u32 {
    OFFSET_ARGS + 8 * u32::from(index)
}

fn arg_high(index: u8) -> u32 {
    arg_low(index) + 4
}

fn split(value: u64) -> (u32, u32) {
    ((value >> 32) as u32, value as u32)
}

fn action_name(action: u32) -> String {
    if action == SECCOMP_RET_ALLOW {
        "ALLOW".to_string()
    } else if action & 0xffff_0000 == SECCOMP_RET_ERRNO {
        format!("ERRNO({})", action & 0xffff)
    } else if action == SECCOMP_RET_USER_NOTIF | NOTIFY_REFUSED {
        "NOTIFY (refused: answered and reported by the supervisor)".to_string()
    } else if action == SECCOMP_RET_USER_NOTIF | NOTIFY_FIRST_ONLY {
        "NOTIFY (first only: the supervisor lets the first call run, refuses the rest)".to_string()
    } else if action == SECCOMP_RET_KILL_PROCESS {
        "KILL_PROCESS (denied)".to_string()
    } else {
        format!("{action:#x}")
    }
}

/// Emits one check; on success control falls through, on failure it jumps to `fail`.
fn emit_check(asm: &mut Assembler, index: u8, check: &Check, fail: usize) {
    let (low, high) = (arg_low(index), arg_high(index));
    let fail = Target::Label(fail);
    match check {
        Check::Eq(values) => {
            // Values grouped by their upper half: one load and comparison of the upper half per
            // group, then the lower halves.
            let done = asm.label();
            let mut groups: Vec<(u32, Vec<u32>)> = Vec::new();
            for value in values {
                let (value_high, value_low) = split(*value);
                match groups.iter_mut().find(|(high_half, _)| *high_half == value_high) {
                    Some((_, lows)) => lows.push(value_low),
                    None => groups.push((value_high, vec![value_low])),
                }
            }
            for (position, (value_high, lows)) in groups.iter().enumerate() {
                let next_group = asm.label();
                let miss = if position + 1 == groups.len() { fail } else { Target::Label(next_group) };
                asm.push(Op::Load(high, format!("arg{index} high")));
                asm.push(Op::Jump {
                    code: JMP_JEQ_K,
                    k: *value_high,
                    taken: Target::Next,
                    not_taken: miss,
                    comment: format!("arg{index} high == {value_high:#x}?"),
                });
                asm.push(Op::Load(low, format!("arg{index} low")));
                for (low_position, value_low) in lows.iter().enumerate() {
                    let last = low_position + 1 == lows.len();
                    asm.push(Op::Jump {
                        code: JMP_JEQ_K,
                        k: *value_low,
                        taken: Target::Label(done),
                        not_taken: if last { miss } else { Target::Next },
                        comment: format!("arg{index} low == {value_low:#x}?"),
                    });
                }
                asm.push(Op::Label(next_group));
            }
            asm.push(Op::Label(done));
        }
        Check::BitsWithin(allowed) => {
            let (forbidden_high, forbidden_low) = split(!allowed);
            for (offset, forbidden, half) in [(high, forbidden_high, "high"), (low, forbidden_low, "low")] {
                asm.push(Op::Load(offset, format!("arg{index} {half}")));
                asm.push(Op::And(forbidden));
                asm.push(Op::Jump {
                    code: JMP_JEQ_K,
                    k: 0,
                    taken: Target::Next,
                    not_taken: fail,
                    comment: format!("no forbidden bit in arg{index} {half}?"),
                });
            }
        }
        Check::BitsSet(required) => {
            let (required_high, required_low) = split(*required);
            for (offset, bits, half) in [(high, required_high, "high"), (low, required_low, "low")] {
                if bits == 0 {
                    continue;
                }
                asm.push(Op::Load(offset, format!("arg{index} {half}")));
                asm.push(Op::And(bits));
                asm.push(Op::Jump {
                    code: JMP_JEQ_K,
                    k: bits,
                    taken: Target::Next,
                    not_taken: fail,
                    comment: format!("required bits {bits:#x} in arg{index} {half}?"),
                });
            }
        }
        Check::Range(lowest, highest) => {
            asm.push(Op::Load(high, format!("arg{index} high")));
            asm.push(Op::Jump {
                code: JMP_JEQ_K,
                k: 0,
                taken: Target::Next,
                not_taken: fail,
                comment: format!("arg{index} high == 0?"),
            });
            asm.push(Op::Load(low, format!("arg{index} low")));
            asm.push(Op::Jump {
                code: JMP_JGE_K,
                k: *lowest as u32,
                taken: Target::Next,
                not_taken: fail,
                comment: format!("arg{index} >= {lowest}?"),
            });
            asm.push(Op::Jump {
                code: JMP_JGT_K,
                k: *highest as u32,
                taken: fail,
                not_taken: Target::Next,
                comment: format!("arg{index} > {highest}?"),
            });
        }
    }
}

/// Emits a binary search over `numbers` (sorted) that ends in a jump to the block of the syscall
/// found, or in the denial.
fn emit_dispatch(
    asm: &mut Assembler,
    numbers: &[u32],
    blocks: &BTreeMap<u32, (usize, String)>,
    denied: u32,
    denied_name: &str,
) {
    const LINEAR: usize = 3;
    if numbers.len() <= LINEAR {
        for &number in numbers {
            let next = asm.label();
            let (block, name) = &blocks[&number];
            asm.push(Op::Jump {
                code: JMP_JEQ_K,
                k: number,
                taken: Target::Next,
                not_taken: Target::Label(next),
                comment: format!("{name}?"),
            });
            asm.push(Op::Goto(*block, name.clone()));
            asm.push(Op::Label(next));
        }
        asm.push(Op::Ret(denied, format!("{denied_name}: syscall not allowed")));
        return;
    }
    let (lower, upper) = numbers.split_at(numbers.len() / 2);
    let (lower_label, upper_label) = (asm.label(), asm.label());
    asm.push(Op::Jump {
        code: JMP_JGE_K,
        k: upper[0],
        taken: Target::Next,
        not_taken: Target::Label(lower_label),
        comment: format!("syscall number >= {}?", upper[0]),
    });
    asm.push(Op::Goto(upper_label, format!("numbers from {}", upper[0])));
    asm.push(Op::Label(lower_label));
    emit_dispatch(asm, lower, blocks, denied, denied_name);
    asm.push(Op::Label(upper_label));
    emit_dispatch(asm, upper, blocks, denied, denied_name);
}

/// The program: architecture check, x32 check (x86_64), a binary search on the syscall number
/// (about log2(n) comparisons, so the kernel's constant-action cache and every argument check
/// start after a short path), then one block per syscall with its argument checks. Every block
/// ends in a return; long jumps use `BPF_JA`, so conditional jumps stay short.
pub fn compile(rules: &[ResolvedRule], arch: Arch, denied: u32) -> Result<Vec<(SockFilter, String)>> {
    let denied_name = action_name(denied);
    let mut asm = Assembler { ops: Vec::new(), labels: 0 };
    let mut order: Vec<u32> = Vec::new();
    for rule in rules {
        if !order.contains(&rule.number) {
            order.push(rule.number);
        }
    }
    asm.push(Op::Load(OFFSET_ARCH, "arch".to_string()));
    let arch_ok = asm.label();
    asm.push(Op::Jump {
        code: JMP_JEQ_K,
        k: arch.audit_arch(),
        taken: Target::Label(arch_ok),
        not_taken: Target::Next,
        comment: format!("arch == AUDIT_ARCH_{}?", arch.name().to_uppercase()),
    });
    asm.push(Op::Ret(denied, format!("{denied_name}: foreign architecture")));
    asm.push(Op::Label(arch_ok));
    asm.push(Op::Load(OFFSET_NR, "syscall number".to_string()));
    if arch == Arch::X86_64 {
        let native = asm.label();
        asm.push(Op::Jump {
            code: JMP_JGE_K,
            k: X32_SYSCALL_BIT,
            taken: Target::Next,
            not_taken: Target::Label(native),
            comment: "x32 syscall number?".to_string(),
        });
        asm.push(Op::Ret(denied, format!("{denied_name}: x32 syscall")));
        asm.push(Op::Label(native));
    }
    let mut blocks: BTreeMap<u32, (usize, String)> = BTreeMap::new();
    for &number in &order {
        let name = rules.iter().find(|rule| rule.number == number).map(|rule| rule.syscall.clone()).unwrap_or_default();
        blocks.insert(number, (asm.label(), name));
    }
    let sorted: Vec<u32> = blocks.keys().copied().collect();
    emit_dispatch(&mut asm, &sorted, &blocks, denied, &denied_name);
    for number in order {
        let group: Vec<&ResolvedRule> = rules.iter().filter(|rule| rule.number == number).collect();
        let name = &group[0].syscall;
        let unconditional: Vec<&&ResolvedRule> = group.iter().filter(|rule| rule.checks.is_empty()).collect();
        if !unconditional.is_empty() && group.len() > 1 {
            bail!("{name}: an unconditional rule makes its other rules pointless; merge them");
        }
        asm.push(Op::Label(blocks[&number].0));
        for rule in &group {
            let next_rule = asm.label();
            for (index, check) in &rule.checks {
                emit_check(&mut asm, *index, check, next_rule);
            }
            asm.push(Op::Ret(rule.action, format!("{} ({name})", action_name(rule.action))));
            asm.push(Op::Label(next_rule));
        }
        if unconditional.is_empty() {
            asm.push(Op::Ret(denied, format!("{denied_name}: arguments of {name} not allowed")));
        }
    }
    let program = asm.finish()?;
    if program.len() > 4096 {
        bail!("program too long: {} instructions", program.len());
    }
    Ok(program)
}

fn rust_string(text: &str) -> String {
    format!("{text:?}")
}

/// The Rust source of one host's program for one architecture.
pub fn render(host: &str, arch: Arch, rules: &[ResolvedRule], program: &[(SockFilter, String)]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "// Generated by `cargo xtask codegen` from filters/{host}.toml, do not edit by hand.");
    let _ = writeln!(out, "// {} instructions for {}.", program.len(), arch.name());
    let _ = writeln!(out);
    let crate_path = if host == "supervisor" { "crate" } else { "h_sandbox" };
    let _ = writeln!(
        out,
        "use {crate_path}::seccomp_program::{{RuleAction, RuleDescription, SeccompProgram, SockFilter}};"
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "pub static PROGRAM: SeccompProgram = SeccompProgram {{");
    let _ = writeln!(out, "    arch: {:?},", arch.name());
    let _ = writeln!(out, "    audit_arch: {:#x},", arch.audit_arch());
    let _ = writeln!(out, "    instructions: &INSTRUCTIONS,");
    let _ = writeln!(out, "    rules: &RULES,");
    let _ = writeln!(out, "    syscall_names: &{crate_path}::syscall_names::{},", arch.name().to_uppercase());
    let _ = writeln!(out, "}};");
    let _ = writeln!(out);
    let _ = writeln!(out, "static INSTRUCTIONS: [SockFilter; {}] = [", program.len());
    for (position, (insn, comment)) in program.iter().enumerate() {
        let _ = writeln!(
            out,
            "    SockFilter {{ code: {:#06x}, jt: {}, jf: {}, k: {:#010x} }}, // {position:4}: {comment}",
            insn.code, insn.jt, insn.jf, insn.k
        );
    }
    let _ = writeln!(out, "];");
    let _ = writeln!(out);
    let _ = writeln!(out, "static RULES: [RuleDescription; {}] = [", rules.len());
    for rule in rules {
        let action = if rule.action == SECCOMP_RET_ALLOW {
            "RuleAction::Allow".to_string()
        } else if rule.action == SECCOMP_RET_USER_NOTIF | NOTIFY_FIRST_ONLY {
            "RuleAction::FirstOnly".to_string()
        } else {
            format!("RuleAction::Errno({})", rule.action & 0xffff)
        };
        let conditions: Vec<String> = rule.descriptions.iter().map(|text| rust_string(text)).collect();
        let arguments: Vec<String> =
            rule.arguments.iter().map(|(index, name)| format!("({index}, {})", rust_string(name))).collect();
        let _ = writeln!(out, "    RuleDescription {{");
        let _ = writeln!(out, "        syscall: {},", rust_string(&rule.syscall));
        let _ = writeln!(out, "        action: {action},");
        let _ = writeln!(out, "        conditions: &[{}],", conditions.join(", "));
        let _ = writeln!(out, "        arguments: &[{}],", arguments.join(", "));
        let _ = writeln!(out, "        why: {},", rust_string(&rule.why));
        let _ = writeln!(out, "    }},");
    }
    let _ = writeln!(out, "];");
    out
}

/// The Rust source of one architecture's syscall-name table, shared by every program of that
/// architecture (`h_sandbox::syscall_names`).
pub fn render_syscall_names(arch: Arch) -> String {
    let mut out = String::new();
    let table = arch.syscalls();
    let _ = writeln!(out, "// Generated by `cargo xtask codegen` from the syscalls crate, do not edit by hand.");
    let _ = writeln!(out, "// Every syscall of {}, sorted by number.", arch.name());
    let _ = writeln!(out);
    let _ = writeln!(out, "pub static {}: [(u32, &str); {}] = [", arch.name().to_uppercase(), table.len());
    for (number, name) in table {
        let _ = writeln!(out, "    ({number}, {name:?}),");
    }
    let _ = writeln!(out, "];");
    out
}

pub fn output_path(root: &Path, crate_dir: &str, arch: Arch) -> PathBuf {
    root.join(crate_dir).join("src/generated").join(format!("seccomp_{}.rs", arch.name()))
}

/// Everything `codegen` writes: (path, contents).
pub fn generate_all(root: &Path) -> Result<Vec<(PathBuf, String)>> {
    let filters_dir = root.join("filters");
    let mut outputs = Vec::new();
    for arch in ARCHES {
        let path = root.join("sandbox/src/generated").join(format!("syscall_names_{}.rs", arch.name()));
        outputs.push((path, render_syscall_names(arch)));
    }
    for &(host, crate_dir) in HOSTS {
        let rules = load(&filters_dir, host)?;
        let denied = denied_action(&filters_dir, host)?;
        for arch in ARCHES {
            let resolved = resolve(&rules, arch).with_context(|| format!("{host} for {}", arch.name()))?;
            let program = compile(&resolved, arch, denied).with_context(|| format!("{host} for {}", arch.name()))?;
            outputs.push((output_path(root, crate_dir, arch), render(host, arch, &resolved, &program)));
        }
    }
    Ok(outputs)
}

/// Writes the generated programs, or with `check` fails if any committed one differs.
pub fn codegen(root: &Path, check: bool) -> Result<()> {
    let mut stale = Vec::new();
    for (path, contents) in generate_all(root)? {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == contents {
            continue;
        }
        if check {
            stale.push(path.display().to_string());
        } else {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, contents)?;
            eprintln!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        bail!("generated seccomp programs are stale (run `cargo xtask codegen`): {}", stale.join(", "));
    }
    Ok(())
}
