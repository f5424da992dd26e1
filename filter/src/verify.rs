//! The verifier: proves a committed seccomp program against its policy by running it in
//! h-sandbox's cBPF evaluator (the one the supervisor uses at run time to read a
//! notification's data bits): every allowed call with allowed arguments gets its rule's action;
//! every other syscall of the architecture, every x32 number and every foreign architecture gets
//! the denial action; and no argument check accepts a value that differs from an accepted one
//! only in its upper 32 bits.

use std::path::Path;

use h_sandbox::seccomp_program::bpf::{
    evaluate, AUDIT_ARCH_AARCH64, AUDIT_ARCH_X86_64, SECCOMP_RET_ALLOW, X32_SYSCALL_BIT,
};
use h_sandbox::seccomp_program::SockFilter;

use crate::codegen::{output_path, programs};
use crate::render::parse_instructions;
use crate::resolve::{resolve, Check, ResolvedRule};
use crate::schema::Policy;
use crate::{Arch, Error, ARCHES};

/// A program that does not do what its policy says.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("{host}/{arch}: malformed program on {what}")]
    Malformed { host: String, arch: Arch, what: String },
    #[error("{host}/{arch}: {what}: got {got:#x}, policy says {expected:#x} (args {args:x?})")]
    Mismatch { host: String, arch: Arch, what: String, got: u32, expected: u32, args: [u64; 6] },
    #[error("{host}/{arch}: cannot build arguments satisfying {syscall}")]
    Unsatisfiable { host: String, arch: Arch, syscall: String },
    #[error(
        "{host}/{arch}: {syscall} arg{index} accepts {mutant:#x}, which differs from {witness:#x} only above bit 31"
    )]
    UpperBits { host: String, arch: Arch, syscall: String, index: u8, mutant: u64, witness: u64 },
}

/// The policy's meaning, independent of the compiler: the first matching rule decides.
fn reference(rules: &[ResolvedRule], denied: u32, nr: u32, args: [u64; 6]) -> u32 {
    rules
        .iter()
        .filter(|rule| rule.number == nr)
        .find(|rule| rule.checks.iter().all(|(index, check)| check.holds(args[usize::from(*index)])))
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
        let fits = |value: u64| rule.checks.iter().filter(|(i, _)| *i == *index).all(|(_, c)| c.holds(value));
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

/// What a verified program was proven on.
#[derive(Clone, Debug)]
pub struct Report {
    pub host: String,
    pub arch: Arch,
    pub instructions: usize,
    /// The most instructions the kernel runs for an allowed call.
    pub worst_allowed_path: usize,
    /// The (syscall, architecture, arguments) cases evaluated.
    pub cases: usize,
}

/// Proves `program` (for `host` on `arch`) against `rules` with `denied` for every other call.
pub fn verify_program(
    host: &str,
    arch: Arch,
    program: &[SockFilter],
    rules: &[ResolvedRule],
    denied: u32,
) -> Result<Report, VerifyError> {
    let audit_arch = arch.audit_arch();
    let mut cases = 0usize;
    let mut worst = 0usize;
    let mut expect = |nr: u32, arch_token: u32, args: [u64; 6], expected: u32, what: &str| -> Result<(), VerifyError> {
        let (got, executed) = evaluate(program, nr, arch_token, args).ok_or_else(|| VerifyError::Malformed {
            host: host.to_string(),
            arch,
            what: what.to_string(),
        })?;
        if got != expected {
            return Err(VerifyError::Mismatch {
                host: host.to_string(),
                arch,
                what: what.to_string(),
                got,
                expected,
                args,
            });
        }
        if got == SECCOMP_RET_ALLOW {
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
            return Err(VerifyError::Unsatisfiable { host: host.to_string(), arch, syscall: rule.syscall.clone() });
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
                    let this_rule_matches = rule.checks.iter().all(|(i, c)| c.holds(mutant[usize::from(*i)]));
                    if this_rule_matches && check.holds(mutant[slot]) {
                        return Err(VerifyError::UpperBits {
                            host: host.to_string(),
                            arch,
                            syscall: rule.syscall.clone(),
                            index: *index,
                            mutant: mutant[slot],
                            witness,
                        });
                    }
                    expect(rule.number, audit_arch, mutant, expected, &format!("{} upper-bit mutant", rule.syscall))?;
                }
            }
        }
    }
    Ok(Report { host: host.to_string(), arch, instructions: program.len(), worst_allowed_path: worst, cases })
}

/// Verifies every committed program of the repository at `root` against `filters/`.
pub fn verify_all(root: &Path) -> Result<Vec<Report>, Error> {
    let mut reports = Vec::new();
    for (host, crate_dir) in programs(root) {
        let (host, crate_dir) = (host.as_str(), crate_dir.as_str());
        let policy = Policy::load(&root.join("filters"), host)?;
        for arch in ARCHES {
            let resolved = resolve(&policy.rules, arch).map_err(|source| Error::Resolve {
                host: host.to_string(),
                arch,
                source,
            })?;
            let path = output_path(root, host, crate_dir, arch);
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Read { path: path.clone(), source })?;
            let program = parse_instructions(&text).map_err(|source| Error::Parse { path, source })?;
            reports.push(verify_program(host, arch, &program, &resolved, policy.denied)?);
        }
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::tests::project_root;
    use h_sandbox::seccomp_program::bpf::{JMP_JA, JMP_JEQ_K, LD_W_ABS, OFFSET_ARGS, RET_K};

    /// Every committed program does exactly what its policy says, on every syscall number.
    #[test]
    fn committed_programs_match_their_policies() {
        let reports = verify_all(&project_root()).unwrap();
        assert_eq!(reports.len(), programs(&project_root()).len() * ARCHES.len());
        assert!(reports.iter().all(|report| report.cases > 1000 && report.worst_allowed_path > 0));
    }

    /// The verifier is not vacuous: a program with one instruction changed is caught.
    #[test]
    fn verifier_catches_a_hand_edited_program() {
        let root = project_root();
        let (host, crate_dir) = ("hlua", "hosts/hlua");
        let policy = Policy::load(&root.join("filters"), host).unwrap();
        let (rules, denied) = (resolve(&policy.rules, Arch::X86_64).unwrap(), policy.denied);
        let text = std::fs::read_to_string(output_path(&root, host, crate_dir, Arch::X86_64)).unwrap();
        let program = parse_instructions(&text).unwrap();
        assert!(verify_program(host, Arch::X86_64, &program, &rules, denied).is_ok());
        // Turn the refusals into allows: every unlisted syscall would pass.
        let mut allow_all = program.clone();
        for insn in allow_all.iter_mut().filter(|insn| insn.code == RET_K && insn.k == denied) {
            insn.k = SECCOMP_RET_ALLOW;
        }
        let caught = verify_program(host, Arch::X86_64, &allow_all, &rules, denied).unwrap_err();
        assert!(matches!(caught, VerifyError::Mismatch { got: SECCOMP_RET_ALLOW, .. }), "{caught}");
        // Skip the architecture check: i386 numbers would be judged by the x86_64 allow-list.
        let mut any_arch = program.clone();
        let arch_check = any_arch.iter().position(|insn| insn.k == AUDIT_ARCH_X86_64).unwrap();
        any_arch[arch_check].jf = any_arch[arch_check].jt;
        let caught = verify_program(host, Arch::X86_64, &any_arch, &rules, denied).unwrap_err();
        assert!(matches!(&caught, VerifyError::Mismatch { what, .. } if what.contains(" as arch ")), "{caught}");
        // Compare only the low half of an argument: the upper-bit mutants must be caught.
        let mut low_only = program.clone();
        let high_check = low_only
            .windows(2)
            .position(|pair| {
                pair[0].code == LD_W_ABS && pair[0].k >= OFFSET_ARGS && pair[0].k % 8 == 4 && pair[1].code == JMP_JEQ_K
            })
            .unwrap();
        low_only[high_check + 1] = SockFilter { code: JMP_JA, jt: 0, jf: 0, k: 0 };
        assert!(verify_program(host, Arch::X86_64, &low_only, &rules, denied).is_err());
        // A jump past the end: the evaluator stops, the verifier reports a malformed program.
        let mut past_end = program;
        let last = past_end.len() - 1;
        past_end[last] = SockFilter { code: JMP_JA, jt: 0, jf: 0, k: 10 };
        let caught = verify_program(host, Arch::X86_64, &past_end, &rules, denied).unwrap_err();
        assert!(matches!(caught, VerifyError::Malformed { .. }), "{caught}");
    }

    /// `--learn`'s prefix ([`SeccompProgram::observing`]) on every committed program: the
    /// observed calls of the program's own architecture reach the supervisor, and every other
    /// call, on every syscall number, foreign architectures and x32 included, gets the
    /// program's own answer, with the arguments that satisfy each rule and with none.
    #[test]
    fn learning_observes_only_what_it_names() {
        use h_sandbox::seccomp_program::bpf::{evaluate, NOTIFY_OBSERVE, SECCOMP_RET_USER_NOTIF, X32_SYSCALL_BIT};
        use h_sandbox::SeccompProgram;
        let root = project_root();
        for (host, crate_dir) in programs(&root) {
            let policy = Policy::load(&root.join("filters"), &host).unwrap();
            for arch in ARCHES {
                let text = std::fs::read_to_string(output_path(&root, &host, &crate_dir, arch)).unwrap();
                let instructions: &'static [SockFilter] =
                    Box::leak(parse_instructions(&text).unwrap().into_boxed_slice());
                let mut names: Vec<(u32, &'static str)> = h_sandbox::OBSERVED
                    .iter()
                    .filter_map(|&name| arch.syscall_number(name).map(|nr| (nr, name)))
                    .collect();
                names.sort_unstable();
                let observed: Vec<u32> = names.iter().map(|&(nr, _)| nr).collect();
                let program = SeccompProgram {
                    arch: arch.name(),
                    audit_arch: arch.audit_arch(),
                    instructions,
                    rules: &[],
                    syscall_names: Box::leak(names.into_boxed_slice()),
                };
                let observing = program.observing(h_sandbox::OBSERVED);
                let rules = resolve(&policy.rules, arch).unwrap();
                let mut arguments: Vec<[u64; 6]> = rules.iter().map(satisfying_args).collect();
                arguments.push([0; 6]);
                let other = if arch == Arch::X86_64 { Arch::Aarch64 } else { Arch::X86_64 };
                for audit_arch in [arch.audit_arch(), other.audit_arch(), 0x4000_0003] {
                    for nr in (0..1024).chain((0..1024).map(|nr| nr | X32_SYSCALL_BIT)) {
                        for args in &arguments {
                            let own = evaluate(instructions, nr, audit_arch, *args).map(|(action, _)| action);
                            let seen = evaluate(&observing, nr, audit_arch, *args).map(|(action, _)| action);
                            let handed_over = audit_arch == arch.audit_arch()
                                && observed.contains(&nr)
                                && !(arch == Arch::X86_64 && nr & X32_SYSCALL_BIT != 0);
                            if handed_over {
                                assert_eq!(seen, Some(SECCOMP_RET_USER_NOTIF | NOTIFY_OBSERVE), "{host} {arch} {nr}");
                            } else {
                                assert_eq!(seen, own, "{host} {arch} arch {audit_arch:#x} nr {nr:#x}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// The reference meaning: the first rule whose checks all hold decides.
    #[test]
    fn the_first_matching_rule_decides() {
        let rule = |checks: Vec<(u8, Check)>, action: u32| ResolvedRule {
            syscall: "ioctl".to_string(),
            number: 16,
            checks,
            action,
            descriptions: Vec::new(),
            arguments: Vec::new(),
            why: String::new(),
        };
        let rules = [rule(vec![(1, Check::Eq(vec![0x5412]))], 1), rule(vec![(1, Check::Range(0, 0x6000))], 2)];
        assert_eq!(reference(&rules, 9, 16, [0, 0x5412, 0, 0, 0, 0]), 1);
        assert_eq!(reference(&rules, 9, 16, [0, 0x5401, 0, 0, 0, 0]), 2);
        assert_eq!(reference(&rules, 9, 16, [0, 0x7000, 0, 0, 0, 0]), 9);
        assert_eq!(reference(&rules, 9, 17, [0; 6]), 9);
        let args = satisfying_args(&rule(vec![(2, Check::BitsWithin(0x7)), (2, Check::BitsSet(0x4))], 1));
        assert_eq!(args[2] & 0x4, 0x4);
        assert_eq!(args[2] & !0x7, 0);
    }
}
