//! Proves each committed seccomp program against its policy with the cBPF evaluator:
//! every allowed call with allowed arguments gets its rule's action; every other syscall of the
//! architecture, every x32 number and every foreign architecture gets the denial action; and no argument
//! check accepts a value that differs from an accepted one only in its upper 32 bits.

use std::path::Path;

use anyhow::{bail, Context, Result};
use h_sandbox::seccomp_program::bpf::*;
use h_sandbox::seccomp_program::SockFilter;

use crate::filters::{self, Arch, Check, ResolvedRule, ARCHES, HOSTS};

/// Reads the instructions back out of a committed generated file.
pub fn parse_committed(text: &str) -> Result<Vec<SockFilter>> {
    let mut program = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix("SockFilter { code: ") else { continue };
        let fields: Vec<&str> = rest.split(['}', ',']).collect();
        let field = |position: usize, prefix: &str| -> Result<u32> {
            let raw = fields.get(position).context("short line")?.trim();
            let raw = raw.strip_prefix(prefix).unwrap_or(raw).trim();
            let value = match raw.strip_prefix("0x") {
                Some(hex) => u32::from_str_radix(hex, 16)?,
                None => raw.parse::<u32>()?,
            };
            Ok(value)
        };
        program.push(SockFilter {
            code: u16::try_from(field(0, "")?)?,
            jt: u8::try_from(field(1, "jt:")?)?,
            jf: u8::try_from(field(2, "jf:")?)?,
            k: field(3, "k:")?,
        });
    }
    if program.is_empty() {
        bail!("no instructions found");
    }
    Ok(program)
}

fn check_holds(check: &Check, value: u64) -> bool {
    match check {
        Check::Eq(values) => values.contains(&value),
        Check::BitsWithin(allowed) => value & !allowed == 0,
        Check::BitsSet(required) => value & required == *required,
        Check::Range(low, high) => (*low..=*high).contains(&value),
    }
}

/// The policy's meaning, independent of the compiler: the first matching rule decides.
fn reference(rules: &[ResolvedRule], denied: u32, nr: u32, args: [u64; 6]) -> u32 {
    rules
        .iter()
        .filter(|rule| rule.number == nr)
        .find(|rule| rule.checks.iter().all(|(index, check)| check_holds(check, args[usize::from(*index)])))
        .map_or(denied, |rule| rule.action)
}

/// Values that satisfy a check.
fn witnesses(check: &Check) -> Vec<u64> {
    match check {
        Check::Eq(values) => values.clone(),
        Check::BitsWithin(allowed) => vec![0, *allowed],
        Check::BitsSet(required) => vec![*required],
        Check::Range(low, high) => vec![*low, *high, low + (high - low) / 2],
    }
}

/// Arguments that satisfy every check of `rule` (the first witness of each).
fn satisfying_args(rule: &ResolvedRule) -> [u64; 6] {
    let mut args = [0u64; 6];
    let mut chosen = [false; 6];
    for (index, check) in &rule.checks {
        let slot = usize::from(*index);
        let candidates = witnesses(check);
        // Pick a value that also satisfies every other check on the same argument.
        let fits = |value: u64| rule.checks.iter().filter(|(i, _)| *i == *index).all(|(_, c)| check_holds(c, value));
        if chosen[slot] && fits(args[slot]) {
            continue;
        }
        let mut combined = candidates.clone();
        // A bits_set check combined with others: the required bits alone.
        for (other_index, other) in &rule.checks {
            if other_index == index {
                if let Check::BitsSet(required) = other {
                    combined.extend(candidates.iter().map(|value| value | required));
                }
            }
        }
        if let Some(value) = combined.into_iter().find(|&value| fits(value)) {
            args[slot] = value;
            chosen[slot] = true;
        }
    }
    args
}

pub struct Report {
    pub host: &'static str,
    pub arch: Arch,
    pub instructions: usize,
    pub worst_allowed_path: usize,
    pub cases: usize,
}

pub fn verify_program(
    host: &'static str,
    arch: Arch,
    program: &[SockFilter],
    rules: &[ResolvedRule],
    denied: u32,
) -> Result<Report> {
    let audit_arch = arch.audit_arch();
    let mut cases = 0usize;
    let mut worst = 0usize;
    let mut expect = |nr: u32, arch_token: u32, args: [u64; 6], expected: u32, what: &str| -> Result<()> {
        let (action, executed) = evaluate(program, nr, arch_token, args)
            .with_context(|| format!("{host}/{}: malformed program on {what}", arch.name()))?;
        if action != expected {
            bail!("{host}/{}: {what}: got {action:#x}, policy says {expected:#x} (args {args:x?})", arch.name());
        }
        if action == SECCOMP_RET_ALLOW {
            worst = worst.max(executed);
        }
        cases += 1;
        Ok(())
    };
    let table = arch.syscalls();
    // Every syscall of the architecture, with all-zero and all-ones arguments.
    for &(nr, name) in &table {
        for args in [[0u64; 6], [u64::MAX; 6]] {
            expect(nr, audit_arch, args, reference(rules, denied, nr, args), name)?;
        }
    }
    // Numbers beyond the table.
    for nr in [table.last().map_or(0, |&(nr, _)| nr) + 1, 0x3ff, 0xffff, u32::MAX] {
        expect(nr, audit_arch, [0; 6], denied, "unassigned number")?;
    }
    // x32 numbers and foreign architectures, for every number of the table.
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;
    const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
    for &(nr, name) in &table {
        if arch == Arch::X86_64 {
            expect(nr | X32_SYSCALL_BIT, audit_arch, [0; 6], denied, &format!("x32 {name}"))?;
        }
        for foreign in [AUDIT_ARCH_I386, AUDIT_ARCH_ARM, AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64, 0] {
            if foreign != audit_arch {
                expect(nr, foreign, [0; 6], denied, &format!("{name} as arch {foreign:#x}"))?;
            }
        }
    }
    // Every rule: satisfying arguments get the rule's action; each witness of each check too;
    // and a witness with any upper-32 bit flipped is judged as the reference says, which for
    // h's policies must never be this rule's action by way of this check.
    for rule in rules {
        let base = satisfying_args(rule);
        let what = format!("{} allowed arguments", rule.syscall);
        if reference(rules, denied, rule.number, base) != rule.action {
            bail!("{host}/{}: cannot build arguments satisfying {}", arch.name(), rule.syscall);
        }
        expect(rule.number, audit_arch, base, rule.action, &what)?;
        for (index, check) in &rule.checks {
            let slot = usize::from(*index);
            for witness in witnesses(check) {
                let mut args = base;
                args[slot] = witness;
                expect(rule.number, audit_arch, args, reference(rules, denied, rule.number, args), &what)?;
                for bit in [32u32, 33, 47, 62, 63] {
                    let mut mutant = args;
                    mutant[slot] = witness ^ (1u64 << bit);
                    let expected = reference(rules, denied, rule.number, mutant);
                    let this_rule_matches = rule.checks.iter().all(|(i, c)| check_holds(c, mutant[usize::from(*i)]));
                    if this_rule_matches && check_holds(check, mutant[slot]) {
                        bail!(
                            "{host}/{}: {} arg{index} accepts {:#x}, which differs from {witness:#x} only above bit 31",
                            arch.name(),
                            rule.syscall,
                            mutant[slot]
                        );
                    }
                    expect(rule.number, audit_arch, mutant, expected, &format!("{} upper-bit mutant", rule.syscall))?;
                }
            }
        }
    }
    Ok(Report { host, arch, instructions: program.len(), worst_allowed_path: worst, cases })
}

pub fn verify_all(root: &Path) -> Result<Vec<Report>> {
    let mut reports = Vec::new();
    for &(host, crate_dir) in HOSTS {
        let rules = filters::load(&root.join("filters"), host)?;
        let denied = filters::denied_action(&root.join("filters"), host)?;
        for arch in ARCHES {
            let resolved = filters::resolve(&rules, arch)?;
            let path = filters::output_path(root, crate_dir, arch);
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let program = parse_committed(&text).with_context(|| format!("parsing {}", path.display()))?;
            reports.push(verify_program(host, arch, &program, &resolved, denied)?);
        }
    }
    Ok(reports)
}
