//! The compiler proper: a resolved policy for one architecture as a cBPF program.
//!
//! The program checks the architecture, then (x86_64) the x32 bit, then finds the syscall's
//! outcome by a binary search on its number: an action, or a block of argument checks to run.
//! Every argument is compared on both 32-bit halves, so a value that differs from an allowed one
//! only in its upper half is denied.

use std::collections::BTreeMap;

use h_sandbox::seccomp_program::bpf::{
    JMP_JEQ_K, JMP_JGE_K, JMP_JGT_K, NOTIFY_EMULATE, NOTIFY_FIRST_ONLY, NOTIFY_REFUSED, OFFSET_ARCH, OFFSET_ARGS,
    OFFSET_NR, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_USER_NOTIF, X32_SYSCALL_BIT,
};
use h_sandbox::seccomp_program::SockFilter;

use crate::assembler::{AssembleError, Assembler, Op, Target};
use crate::resolve::{Check, ResolvedRule};
use crate::Arch;

/// The kernel's limit on a program's length (`BPF_MAXINSNS`).
pub const MAX_INSTRUCTIONS: usize = 4096;

/// Why a policy cannot be compiled.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    #[error(transparent)]
    Assemble(#[from] AssembleError),
    #[error("{0}: an unconditional rule makes its other rules pointless; merge them")]
    Unconditional(String),
    #[error("program too long: {0} instructions")]
    TooLong(usize),
}

/// The offset of the lower half of argument `index` in `seccomp_data` (little-endian).
fn arg_low(index: u8) -> u32 {
    OFFSET_ARGS + 8 * u32::from(index)
}

/// The offset of the upper half of argument `index`.
fn arg_high(index: u8) -> u32 {
    arg_low(index) + 4
}

/// (upper half, lower half) of a 64-bit value.
fn split(value: u64) -> (u32, u32) {
    ((value >> 32) as u32, value as u32)
}

/// The action's name in comments of the generated program.
pub fn action_name(action: u32) -> String {
    if action == SECCOMP_RET_ALLOW {
        "ALLOW".to_string()
    } else if action & 0xffff_0000 == SECCOMP_RET_ERRNO {
        format!("ERRNO({})", action & 0xffff)
    } else if action == SECCOMP_RET_USER_NOTIF | NOTIFY_REFUSED {
        "NOTIFY (refused: answered and reported by the supervisor)".to_string()
    } else if action == SECCOMP_RET_USER_NOTIF | NOTIFY_FIRST_ONLY {
        "NOTIFY (first only: the supervisor lets the first call run, refuses the rest)".to_string()
    } else if action == SECCOMP_RET_USER_NOTIF | NOTIFY_EMULATE {
        "NOTIFY (emulated: the supervisor makes the call on what it has checked)".to_string()
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

/// Where a run of syscall numbers leads: straight to an action (the numbers whose one rule has
/// no argument checks, named, and the numbers without a rule), or to a block of argument checks.
#[derive(Clone, Debug)]
enum Leaf {
    Action { action: u32, names: Vec<String>, unnamed: bool },
    Block(usize, String),
}

impl Leaf {
    fn comment(action: u32, names: &[String], unnamed: bool, denied_name: &str) -> String {
        match (names.is_empty(), unnamed) {
            (true, _) => format!("{denied_name}: syscall not allowed"),
            (false, false) => format!("{} ({})", action_name(action), names.join(", ")),
            (false, true) => {
                format!("{} ({}, and the numbers between without a rule)", action_name(action), names.join(", "))
            }
        }
    }
}

/// The dispatch's runs: (first number, leaf), sorted, covering every number from 0; neighbours
/// with the same action are one run, so the search compares only where the outcome changes.
fn runs(leaves: &BTreeMap<u32, Leaf>, denied: u32) -> Vec<(u32, Leaf)> {
    let refused = Leaf::Action { action: denied, names: Vec::new(), unnamed: true };
    let mut runs: Vec<(u32, Leaf)> = Vec::new();
    let push = |runs: &mut Vec<(u32, Leaf)>, first: u32, leaf: Leaf| {
        if let (
            Some((_, Leaf::Action { action: previous, names, unnamed })),
            Leaf::Action { action, names: more, unnamed: more_unnamed },
        ) = (runs.last_mut(), &leaf)
        {
            if previous == action {
                names.extend(more.iter().cloned());
                *unnamed |= *more_unnamed;
                return;
            }
        }
        runs.push((first, leaf));
    };
    let mut next = 0u64;
    for (&number, leaf) in leaves {
        if u64::from(number) > next {
            push(&mut runs, next as u32, refused.clone());
        }
        push(&mut runs, number, leaf.clone());
        next = u64::from(number) + 1;
    }
    if next <= u64::from(u32::MAX) {
        push(&mut runs, next as u32, refused);
    }
    runs
}

/// The argument checks of one or more calls, laid out after the dispatch.
struct Block<'a> {
    label: usize,
    names: Vec<String>,
    group: Vec<&'a ResolvedRule>,
}

/// How many instructions [`emit_search`] lays out for `runs`.
fn search_size(runs: &[(u32, Leaf)]) -> usize {
    if runs.len() == 1 {
        return 1;
    }
    let (lower, upper) = runs.split_at(runs.len() / 2);
    let lower_size = search_size(lower);
    let reach = usize::from(lower_size > usize::from(u8::MAX));
    1 + reach + lower_size + search_size(upper)
}

/// Emits a binary search over `runs` (the numbers from the first run's on): one comparison per
/// level, ending in the run's action or a jump to its block.
fn emit_search(asm: &mut Assembler, runs: &[(u32, Leaf)], denied_name: &str) {
    if let [(_, leaf)] = runs {
        match leaf {
            Leaf::Action { action, names, unnamed } => {
                asm.push(Op::Ret(*action, Leaf::comment(*action, names, *unnamed, denied_name)))
            }
            Leaf::Block(label, name) => asm.push(Op::Goto(*label, name.clone())),
        }
        return;
    }
    let (lower, upper) = runs.split_at(runs.len() / 2);
    let boundary = upper[0].0;
    let upper_label = asm.label();
    let comment = format!("syscall number >= {boundary}?");
    if search_size(lower) <= usize::from(u8::MAX) {
        asm.push(Op::Jump {
            code: JMP_JGE_K,
            k: boundary,
            taken: Target::Label(upper_label),
            not_taken: Target::Next,
            comment,
        });
    } else {
        // The lower half is too long for a conditional jump over it: jump over a goto instead.
        let lower_label = asm.label();
        asm.push(Op::Jump {
            code: JMP_JGE_K,
            k: boundary,
            taken: Target::Next,
            not_taken: Target::Label(lower_label),
            comment,
        });
        asm.push(Op::Goto(upper_label, format!("numbers from {boundary}")));
        asm.push(Op::Label(lower_label));
    }
    emit_search(asm, lower, denied_name);
    asm.push(Op::Label(upper_label));
    emit_search(asm, upper, denied_name);
}

/// The program: architecture check, x32 check (x86_64), a binary search on the syscall number
/// over runs of numbers with one outcome (about log2(runs) comparisons of one instruction each,
/// so the kernel's constant-action cache and every argument check start after a short path),
/// ending in the run's action or a jump to a block of argument checks, one per distinct set of
/// checks. Every block ends in a return; long jumps use `BPF_JA`, so conditional jumps stay
/// short. The kernel's cost of installing a program grows with its length (translation and
/// compilation) and with the path it evaluates for every syscall number (the cache), so both
/// are kept short: docs/overhead.md has the measurements.
pub fn compile(rules: &[ResolvedRule], arch: Arch, denied: u32) -> Result<Vec<(SockFilter, String)>, EmitError> {
    let denied_name = action_name(denied);
    let mut asm = Assembler::new();
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
    let mut leaves: BTreeMap<u32, Leaf> = BTreeMap::new();
    let mut blocks: Vec<Block> = Vec::new();
    for number in order {
        let group: Vec<&ResolvedRule> = rules.iter().filter(|rule| rule.number == number).collect();
        let name = group[0].syscall.clone();
        // Two included files (a host's and the programs') may both name a call: an unconditional
        // rule then covers every other one with the same action, and stands alone (the dispatch
        // returns its action). Rules with another action beside an unconditional one would be
        // pointless, and are an error.
        if let Some(first) = group.iter().find(|rule| rule.checks.is_empty()) {
            if group.iter().any(|rule| rule.action != first.action) {
                return Err(EmitError::Unconditional(name));
            }
            leaves.insert(number, Leaf::Action { action: first.action, names: vec![name], unnamed: false });
            continue;
        }
        // Calls with the same checks and actions (clock_gettime, clock_getres) share one block.
        let same = |block: &&mut Block| {
            block.group.len() == group.len()
                && block.group.iter().zip(&group).all(|(a, b)| a.checks == b.checks && a.action == b.action)
        };
        let label = match blocks.iter_mut().find(same) {
            Some(block) => {
                block.names.push(name.clone());
                block.label
            }
            None => {
                let label = asm.label();
                blocks.push(Block { label, names: vec![name.clone()], group });
                label
            }
        };
        leaves.insert(number, Leaf::Block(label, name));
    }
    emit_search(&mut asm, &runs(&leaves, denied), &denied_name);
    for Block { label, names, group } in blocks {
        let name = &names.join(", ");
        asm.push(Op::Label(label));
        for rule in &group {
            let next_rule = asm.label();
            for (index, check) in &rule.checks {
                emit_check(&mut asm, *index, check, next_rule);
            }
            asm.push(Op::Ret(rule.action, format!("{} ({name})", action_name(rule.action))));
            asm.push(Op::Label(next_rule));
        }
        asm.push(Op::Ret(denied, format!("{denied_name}: arguments of {name} not allowed")));
    }
    let program = asm.finish()?;
    if program.len() > MAX_INSTRUCTIONS {
        return Err(EmitError::TooLong(program.len()));
    }
    Ok(program)
}

#[cfg(test)]
mod tests {
    use super::*;
    use h_sandbox::seccomp_program::bpf::{evaluate, AUDIT_ARCH_AARCH64};

    const DENIED: u32 = SECCOMP_RET_USER_NOTIF;

    fn rule(number: u32, checks: Vec<(u8, Check)>, action: u32) -> ResolvedRule {
        ResolvedRule {
            syscall: format!("sys{number}"),
            number,
            checks,
            action,
            descriptions: Vec::new(),
            arguments: Vec::new(),
            why: String::new(),
        }
    }

    /// What `program` answers on x86_64.
    fn answer(program: &[(SockFilter, String)], nr: u32, args: [u64; 6]) -> u32 {
        let insns: Vec<SockFilter> = program.iter().map(|(insn, _)| *insn).collect();
        evaluate(&insns, nr, Arch::X86_64.audit_arch(), args).unwrap().0
    }

    fn arg(index: usize, value: u64) -> [u64; 6] {
        let mut args = [0; 6];
        args[index] = value;
        args
    }

    #[test]
    fn each_check_compares_all_64_bits() {
        let errno = SECCOMP_RET_ERRNO | 38;
        let rules = vec![
            rule(0, Vec::new(), SECCOMP_RET_ALLOW),
            rule(1, vec![(0, Check::Eq(vec![1, 2, 0x1_0000_0005]))], SECCOMP_RET_ALLOW),
            rule(9, vec![(3, Check::BitsWithin(0x22))], SECCOMP_RET_ALLOW),
            rule(16, vec![(1, Check::BitsSet(0x8000_0000_0000_0004))], SECCOMP_RET_ALLOW),
            rule(318, vec![(2, Check::Range(1, 7))], SECCOMP_RET_ALLOW),
            rule(435, Vec::new(), errno),
        ];
        let program = compile(&rules, Arch::X86_64, DENIED).unwrap();
        assert_eq!(answer(&program, 0, [u64::MAX; 6]), SECCOMP_RET_ALLOW);
        assert_eq!(answer(&program, 435, [0; 6]), errno);
        for (value, expected) in
            [(1, true), (2, true), (3, false), (0x1_0000_0001, false), (0x1_0000_0005, true), (5, false)]
        {
            let want = if expected { SECCOMP_RET_ALLOW } else { DENIED };
            assert_eq!(answer(&program, 1, arg(0, value)), want, "write({value:#x})");
        }
        for (value, expected) in [(0, true), (0x22, true), (0x2, true), (0x1, false), (0x20_0000_0002, false)] {
            let want = if expected { SECCOMP_RET_ALLOW } else { DENIED };
            assert_eq!(answer(&program, 9, arg(3, value)), want, "mmap flags {value:#x}");
        }
        for (value, expected) in
            [(0x8000_0000_0000_0004, true), (u64::MAX, true), (4, false), (0x8000_0000_0000_0000, false)]
        {
            let want = if expected { SECCOMP_RET_ALLOW } else { DENIED };
            assert_eq!(answer(&program, 16, arg(1, value)), want, "ioctl {value:#x}");
        }
        for (value, expected) in [(0, false), (1, true), (7, true), (8, false), (0x1_0000_0003, false)] {
            let want = if expected { SECCOMP_RET_ALLOW } else { DENIED };
            assert_eq!(answer(&program, 318, arg(2, value)), want, "getrandom {value:#x}");
        }
        assert_eq!(answer(&program, 2, [0; 6]), DENIED, "a number without a rule");
    }

    #[test]
    fn foreign_architectures_and_x32_are_denied() {
        let rules = vec![rule(0, Vec::new(), SECCOMP_RET_ALLOW)];
        let insns: Vec<SockFilter> =
            compile(&rules, Arch::X86_64, DENIED).unwrap().into_iter().map(|(insn, _)| insn).collect();
        let x86 = Arch::X86_64.audit_arch();
        assert_eq!(evaluate(&insns, 0, x86, [0; 6]).unwrap().0, SECCOMP_RET_ALLOW);
        assert_eq!(evaluate(&insns, X32_SYSCALL_BIT, x86, [0; 6]).unwrap().0, DENIED);
        assert_eq!(evaluate(&insns, 0, AUDIT_ARCH_AARCH64, [0; 6]).unwrap().0, DENIED);
        let arm: Vec<SockFilter> =
            compile(&rules, Arch::Aarch64, DENIED).unwrap().into_iter().map(|(insn, _)| insn).collect();
        assert_eq!(evaluate(&arm, 0, AUDIT_ARCH_AARCH64, [0; 6]).unwrap().0, SECCOMP_RET_ALLOW);
        assert_eq!(evaluate(&arm, 0, x86, [0; 6]).unwrap().0, DENIED);
        assert!(arm.len() < insns.len(), "aarch64 has no x32 check");
    }

    #[test]
    fn dispatch_is_a_binary_search() {
        let numbers: Vec<u32> = (0..300).map(|n| n * 3 + 1).collect();
        let rules: Vec<ResolvedRule> =
            numbers.iter().rev().map(|&number| rule(number, Vec::new(), SECCOMP_RET_ALLOW)).collect();
        let program = compile(&rules, Arch::X86_64, DENIED).unwrap();
        let insns: Vec<SockFilter> = program.iter().map(|(insn, _)| *insn).collect();
        let mut longest = 0;
        for nr in 0..1000 {
            let (action, executed) = evaluate(&insns, nr, Arch::X86_64.audit_arch(), [0; 6]).unwrap();
            assert_eq!(action == SECCOMP_RET_ALLOW, numbers.contains(&nr), "syscall {nr}");
            longest = longest.max(executed);
        }
        // 300 numbers: 7 halvings of two instructions, a linear tail of at most 3, and the checks
        // before and the block after.
        assert!(longest <= 30, "the longest path runs {longest} instructions");
    }

    #[test]
    fn policies_that_cannot_be_compiled() {
        let rules =
            vec![rule(1, Vec::new(), SECCOMP_RET_ALLOW), rule(1, vec![(0, Check::Eq(vec![1]))], SECCOMP_RET_ERRNO | 1)];
        assert_eq!(compile(&rules, Arch::X86_64, DENIED).unwrap_err(), EmitError::Unconditional("sys1".to_string()));
        let long: Vec<ResolvedRule> = (0..1000)
            .map(|number| rule(number, vec![(0, Check::Range(0, u64::from(number)))], SECCOMP_RET_ALLOW))
            .collect();
        assert!(matches!(compile(&long, Arch::X86_64, DENIED), Err(EmitError::TooLong(_))));
    }

    #[test]
    fn calls_with_the_same_checks_share_a_block_and_keep_their_answers() {
        let clocks = Check::Eq(vec![0, 1]);
        let rules = vec![
            rule(228, vec![(0, clocks.clone())], SECCOMP_RET_ALLOW),
            rule(229, vec![(0, clocks.clone())], SECCOMP_RET_ALLOW),
            rule(230, vec![(0, clocks)], SECCOMP_RET_ERRNO | 1),
        ];
        let program = compile(&rules, Arch::X86_64, DENIED).unwrap();
        let shared = program.iter().filter(|(_, comment)| comment.contains("ALLOW (sys228, sys229)")).count();
        assert_eq!(shared, 1, "one block for the two calls with equal checks and actions");
        for nr in [228, 229] {
            assert_eq!(answer(&program, nr, arg(0, 1)), SECCOMP_RET_ALLOW);
            assert_eq!(answer(&program, nr, arg(0, 2)), DENIED);
        }
        assert_eq!(answer(&program, 230, arg(0, 1)), SECCOMP_RET_ERRNO | 1, "another action: its own block");
        assert_eq!(answer(&program, 227, arg(0, 1)), DENIED);
        assert_eq!(answer(&program, 231, arg(0, 1)), DENIED);
    }

    #[test]
    fn neighbours_with_one_action_are_one_run() {
        let rules: Vec<ResolvedRule> =
            [0, 1, 2, 3, 10].iter().map(|&nr| rule(nr, Vec::new(), SECCOMP_RET_ALLOW)).collect();
        let program = compile(&rules, Arch::X86_64, DENIED).unwrap();
        let comparisons = program.iter().filter(|(_, comment)| comment.starts_with("syscall number >=")).count();
        // Runs: 0..=3 allowed, 4..=9 denied, 10 allowed, 11.. denied: three boundaries.
        assert_eq!(comparisons, 3);
        for nr in 0..20 {
            let want = if nr <= 3 || nr == 10 { SECCOMP_RET_ALLOW } else { DENIED };
            assert_eq!(answer(&program, nr, [0; 6]), want, "syscall {nr}");
        }
        assert_eq!(answer(&program, u32::MAX >> 2, [0; 6]), DENIED);
    }

    #[test]
    fn actions_are_named_in_comments() {
        assert_eq!(action_name(SECCOMP_RET_ALLOW), "ALLOW");
        assert_eq!(action_name(SECCOMP_RET_ERRNO | 38), "ERRNO(38)");
        assert!(action_name(SECCOMP_RET_USER_NOTIF | NOTIFY_FIRST_ONLY).starts_with("NOTIFY (first only"));
        assert_eq!(action_name(SECCOMP_RET_KILL_PROCESS), "KILL_PROCESS (denied)");
    }
}
