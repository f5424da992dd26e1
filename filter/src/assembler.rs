//! A small cBPF assembler: instructions with symbolic forward jumps to labels, laid out into
//! `SockFilter`s with a comment each. Conditional jumps reach at most 255 instructions ahead;
//! [`Op::Goto`] (`BPF_JA`, a 32-bit offset) reaches anywhere ahead. Backward jumps do not exist in
//! cBPF and are refused.

use std::collections::BTreeMap;

use h_sandbox::seccomp_program::bpf::{ALU_AND_K, JMP_JA, LD_W_ABS, RET_K};
use h_sandbox::seccomp_program::SockFilter;

/// Where a conditional jump goes.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// The next instruction.
    Next,
    /// The instruction after [`Op::Label`] with this number.
    Label(usize),
}

/// One instruction, or a label marking a position.
#[derive(Clone, Debug)]
pub enum Op {
    /// Load the 32-bit word at this offset of `seccomp_data` (`BPF_LD | BPF_W | BPF_ABS`).
    Load(u32, String),
    /// AND the accumulator with a constant.
    And(u32),
    /// A conditional jump (`code` is one of the `JMP_J*_K`) comparing the accumulator with `k`.
    Jump { code: u16, k: u32, taken: Target, not_taken: Target, comment: String },
    /// Return a constant: the seccomp action.
    Ret(u32, String),
    /// An unconditional jump (`BPF_JA`, 32-bit offset) to a label.
    Goto(usize, String),
    /// A position jumps may target; it emits nothing.
    Label(usize),
}

/// Why a program cannot be laid out.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssembleError {
    #[error("jump to undefined label {0}")]
    UndefinedLabel(usize),
    #[error("backward jump to label {0} (cBPF jumps only forward)")]
    BackwardJump(usize),
    #[error("jump from instruction {from} over {distance} instructions, longer than 255")]
    JumpTooLong { from: usize, distance: usize },
}

/// A program under construction.
#[derive(Debug, Default)]
pub struct Assembler {
    ops: Vec<Op>,
    labels: usize,
}

impl Assembler {
    pub fn new() -> Assembler {
        Assembler::default()
    }

    /// A new label, to place later with [`Op::Label`].
    pub fn label(&mut self) -> usize {
        self.labels += 1;
        self.labels
    }

    pub fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// Lays out the ops: every instruction with its comment.
    pub fn finish(self) -> Result<Vec<(SockFilter, String)>, AssembleError> {
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
        // The distance from the instruction after `here` to `label`.
        let distance = |here: usize, label: usize| -> Result<usize, AssembleError> {
            let destination = *position.get(&label).ok_or(AssembleError::UndefinedLabel(label))?;
            destination.checked_sub(here + 1).ok_or(AssembleError::BackwardJump(label))
        };
        let mut out = Vec::with_capacity(count);
        for op in &self.ops {
            let here = out.len();
            let offset = |target: Target| -> Result<u8, AssembleError> {
                match target {
                    Target::Next => Ok(0),
                    Target::Label(label) => {
                        let distance = distance(here, label)?;
                        u8::try_from(distance).map_err(|_| AssembleError::JumpTooLong { from: here, distance })
                    }
                }
            };
            let (insn, comment) = match op {
                Op::Label(_) => continue,
                Op::Load(offset_in_data, comment) => {
                    (SockFilter { code: LD_W_ABS, jt: 0, jf: 0, k: *offset_in_data }, format!("load {comment}"))
                }
                Op::And(mask) => (SockFilter { code: ALU_AND_K, jt: 0, jf: 0, k: *mask }, format!("and {mask:#x}")),
                Op::Jump { code, k, taken, not_taken, comment } => {
                    (SockFilter { code: *code, jt: offset(*taken)?, jf: offset(*not_taken)?, k: *k }, comment.clone())
                }
                Op::Ret(value, comment) => {
                    (SockFilter { code: RET_K, jt: 0, jf: 0, k: *value }, format!("return {comment}"))
                }
                Op::Goto(label, comment) => {
                    let distance = distance(here, *label)?;
                    let k = u32::try_from(distance).map_err(|_| AssembleError::JumpTooLong { from: here, distance })?;
                    (SockFilter { code: JMP_JA, jt: 0, jf: 0, k }, format!("goto {comment}"))
                }
            };
            out.push((insn, comment));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use h_sandbox::seccomp_program::bpf::JMP_JEQ_K;

    fn jump(k: u32, taken: Target, not_taken: Target) -> Op {
        Op::Jump { code: JMP_JEQ_K, k, taken, not_taken, comment: format!("== {k}?") }
    }

    #[test]
    fn labels_become_forward_offsets() {
        let mut asm = Assembler::new();
        let (yes, far) = (asm.label(), asm.label());
        asm.push(Op::Load(0, "nr".to_string()));
        asm.push(jump(1, Target::Label(yes), Target::Next));
        asm.push(Op::Goto(far, "far".to_string()));
        asm.push(Op::Label(yes));
        asm.push(Op::And(0xff));
        asm.push(Op::Label(far));
        asm.push(Op::Ret(7, "seven".to_string()));
        let program = asm.finish().unwrap();
        let insns: Vec<SockFilter> = program.iter().map(|(insn, _)| *insn).collect();
        assert_eq!(
            insns,
            [
                SockFilter { code: LD_W_ABS, jt: 0, jf: 0, k: 0 },
                SockFilter { code: JMP_JEQ_K, jt: 1, jf: 0, k: 1 },
                SockFilter { code: JMP_JA, jt: 0, jf: 0, k: 1 },
                SockFilter { code: ALU_AND_K, jt: 0, jf: 0, k: 0xff },
                SockFilter { code: RET_K, jt: 0, jf: 0, k: 7 },
            ]
        );
        let comments: Vec<&str> = program.iter().map(|(_, comment)| comment.as_str()).collect();
        assert_eq!(comments, ["load nr", "== 1?", "goto far", "and 0xff", "return seven"]);
    }

    #[test]
    fn conditional_jumps_stay_short_and_forward() {
        let far = |padding: usize| {
            let mut asm = Assembler::new();
            let end = asm.label();
            asm.push(jump(0, Target::Label(end), Target::Next));
            for _ in 0..padding {
                asm.push(Op::And(1));
            }
            asm.push(Op::Label(end));
            asm.push(Op::Ret(0, String::new()));
            asm.finish()
        };
        assert_eq!(far(255).unwrap()[0].0.jt, 255);
        assert_eq!(far(256).unwrap_err(), AssembleError::JumpTooLong { from: 0, distance: 256 });

        let mut asm = Assembler::new();
        let back = asm.label();
        asm.push(Op::Label(back));
        asm.push(Op::Goto(back, "loop".to_string()));
        assert_eq!(asm.finish().unwrap_err(), AssembleError::BackwardJump(back));

        let mut asm = Assembler::new();
        let nowhere = asm.label();
        asm.push(jump(0, Target::Next, Target::Label(nowhere)));
        assert_eq!(asm.finish().unwrap_err(), AssembleError::UndefinedLabel(nowhere));
    }
}
