//! The allowlist as a binary search over syscall numbers.
//!
//! seccompiler emits one comparison per listed call, so a 350-call allowlist is a chain of
//! about 1,400 instructions. Every call the payload makes walks that chain, and the kernel
//! walks it once per syscall number when the filter is installed (to find the calls it may
//! allow without running the filter at all): 0.7 ms of every spawn. A search tree over the
//! allowed numbers, grouped into runs, answers in about 2 log2(runs) instructions.
//!
//! The program only reads the architecture and the syscall number: argument checks stay in
//! the refusal filters (see `Policy::refusals`), which refuse exactly the forms the allowlist
//! lets through by number.

use seccompiler::sock_filter;
use std::collections::BTreeSet;

// Classic BPF opcodes (linux/bpf_common.h), as the kernel's seccomp checker accepts them.
const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// Offsets into `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

/// At most this many runs are tested one after the other; more are split in two. Small
/// enough that every conditional jump inside a leaf fits its 8-bit offset.
const LEAF_RUNS: usize = 4;

/// What a program answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdicts {
    /// The call is listed.
    pub allowed: u32,
    /// The call is not listed.
    pub refused: u32,
    /// The caller is of another architecture (its syscall numbers mean other calls).
    pub foreign: u32,
}

/// Compile the allowlist of `numbers` for the architecture `audit_arch`.
pub fn compile(numbers: &BTreeSet<u32>, audit_arch: u32, verdicts: Verdicts) -> Vec<sock_filter> {
    let mut program = vec![
        stmt(LD_W_ABS, ARCH_OFFSET),
        jump(JEQ_K, audit_arch, 1, 0),
        stmt(RET_K, verdicts.foreign),
        stmt(LD_W_ABS, NR_OFFSET),
    ];
    program.extend(search(&runs(numbers), verdicts));
    program
}

/// Consecutive numbers grouped as inclusive ranges, in order.
fn runs(numbers: &BTreeSet<u32>) -> Vec<(u32, u32)> {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &n in numbers {
        match runs.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(n) => *hi = n,
            _ => runs.push((n, n)),
        }
    }
    runs
}

/// Code that returns `allowed` when the accumulator (the syscall number) is in one of the
/// sorted, disjoint `runs`, `refused` otherwise. Every path ends in a return.
fn search(runs: &[(u32, u32)], verdicts: Verdicts) -> Vec<sock_filter> {
    if runs.len() <= LEAF_RUNS {
        return leaf(runs, verdicts);
    }
    let (below, above) = runs.split_at(runs.len() / 2);
    let pivot = above[0].0;
    let below = search(below, verdicts);
    let above = search(above, verdicts);
    let mut code = vec![
        // nr >= the first run above: go to the unconditional jump over the lower half.
        jump(JGE_K, pivot, 0, 1),
        stmt(JA, below.len() as u32),
    ];
    code.extend(below);
    code.extend(above);
    code
}

/// A few runs tested in turn, then the two returns they jump to.
fn leaf(runs: &[(u32, u32)], verdicts: Verdicts) -> Vec<sock_filter> {
    let tests: usize = runs
        .iter()
        .map(|(lo, hi)| if lo == hi { 1 } else { 2 })
        .sum();
    // The layout: the tests, `ret refused`, `ret allowed`.
    let allow_at = tests + 1;
    let mut code = Vec::with_capacity(tests + 2);
    for &(lo, hi) in runs {
        if lo == hi {
            let to_allow = allow_at - (code.len() + 1);
            code.push(jump(JEQ_K, lo, to_allow as u8, 0));
        } else {
            // Below the run: skip its upper test. Above it: on to the next run.
            code.push(jump(JGE_K, lo, 0, 1));
            let to_allow = allow_at - (code.len() + 1);
            code.push(jump(JGT_K, hi, 0, to_allow as u8));
        }
    }
    code.push(stmt(RET_K, verdicts.refused));
    code.push(stmt(RET_K, verdicts.allowed));
    code
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    const VERDICTS: Verdicts = Verdicts {
        allowed: 0x7fff_0000,
        refused: 0x0005_0000 | 38,
        foreign: 0x8000_0000,
    };

    /// Run a program of the instructions above, as the kernel would, on (arch, nr).
    fn run(program: &[sock_filter], arch: u32, nr: u32) -> u32 {
        run_counting(program, arch, nr).0
    }

    /// The verdict and how many instructions it took.
    fn run_counting(program: &[sock_filter], arch: u32, nr: u32) -> (u32, usize) {
        let (mut pc, mut acc, mut steps) = (0usize, 0u32, 0usize);
        loop {
            let insn = &program[pc];
            pc += 1;
            steps += 1;
            let taken = |cond: bool| usize::from(if cond { insn.jt } else { insn.jf });
            match insn.code {
                LD_W_ABS if insn.k == ARCH_OFFSET => acc = arch,
                LD_W_ABS if insn.k == NR_OFFSET => acc = nr,
                JEQ_K => pc += taken(acc == insn.k),
                JGE_K => pc += taken(acc >= insn.k),
                JGT_K => pc += taken(acc > insn.k),
                JA => pc += insn.k as usize,
                RET_K => return (insn.k, steps),
                other => panic!("unexpected instruction {other:#x} at {}", pc - 1),
            }
        }
    }

    fn check(numbers: &BTreeSet<u32>) {
        let program = compile(numbers, ARCH, VERDICTS);
        let highest = numbers.iter().max().copied().unwrap_or(0);
        let probes = (0..=highest + 64)
            .chain([
                0x4000_0000,
                0x4000_0001,
                0x7fff_ffff,
                u32::MAX - 1,
                u32::MAX,
            ])
            .chain(numbers.iter().map(|n| n | 0x4000_0000));
        for nr in probes {
            let expected = if numbers.contains(&nr) {
                VERDICTS.allowed
            } else {
                VERDICTS.refused
            };
            assert_eq!(
                run(&program, ARCH, nr),
                expected,
                "syscall {nr} of {numbers:?}"
            );
            assert_eq!(run(&program, ARCH ^ 1, nr), VERDICTS.foreign);
        }
    }

    #[test]
    fn answers_exactly_the_listed_numbers() {
        check(&BTreeSet::new());
        check(&[0].into());
        check(&[5, 6, 7].into());
        check(&[0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20].into());
        check(&(0..40).filter(|n| n % 3 != 1).collect());
        check(&[1, 2, 3, 100, 200, 201, 434, 435, 450].into());
        check(&(0..460).filter(|n| n % 7 != 3 && n % 11 != 5).collect());
    }

    #[test]
    fn many_scattered_numbers_take_a_short_path() {
        let numbers: BTreeSet<u32> = (0..1000).filter(|n| n % 2 == 0).collect();
        check(&numbers);
        let program = compile(&numbers, ARCH, VERDICTS);
        // 500 runs in 125 leaves: 7 levels of 2 instructions, a leaf of at most 6, and the
        // 4-instruction prologue; a chain would take up to 1,000.
        let longest = (0..1100)
            .map(|nr| run_counting(&program, ARCH, nr).1)
            .max()
            .unwrap();
        assert!(longest <= 26, "{longest} instructions on the longest path");
    }

    #[test]
    fn runs_group_consecutive_numbers() {
        assert_eq!(
            runs(&[1, 2, 3, 5, 7, 8, u32::MAX].into()),
            [(1, 3), (5, 5), (7, 8), (u32::MAX, u32::MAX)]
        );
    }
}
