//! The seccomp program: one classic BPF program per profile, a binary search over syscall
//! numbers with an argument check in front of the few calls allowed only in some forms.
//!
//! A chain of one comparison per listed call (what seccompiler emits) is about 1,400
//! instructions for a 350-call allowlist. Every call the payload makes walks that chain, and
//! the kernel walks it once per syscall number when the filter is installed (to find the calls
//! it may allow without running the filter at all): 0.7 ms of every spawn. A search tree over
//! the allowed numbers, grouped into runs, answers in about 2 log2(runs) instructions.
//!
//! The argument checks live in the same program, not in filters stacked after it: every
//! filter is a BPF program of its own that the kernel compiles when it is installed, runs on
//! every call that is not allowed outright, and frees on a workqueue when the last process
//! holding it is reaped. One program per vassal is a third of that work.
//!
//! Layout: the architecture check; then one comparison per checked call, jumping to its
//! check; then a jump over the checks to the search. The kernel's cache of calls it allows
//! without running the filter still covers every plain call: their path reads only the
//! architecture and the number.

use libc::sock_filter;
use std::collections::BTreeSet;

// Classic BPF opcodes (linux/bpf_common.h), as the kernel's seccomp checker accepts them.
const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// Offsets into `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;
const ARGS_OFFSET: u32 = 16;

// Arguments are read as their low 32 bits, which come first in memory on the little-endian
// architectures this crate builds for (x86_64, aarch64).
const _: () = assert!(cfg!(target_endian = "little"));

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

/// How one argument, compared as 32 bits, decides a checked call.
#[derive(Debug, Clone, Copy)]
pub enum Test<'a> {
    /// Allowed when none of these bits is set.
    NoFlag(u32),
    /// Allowed unless the argument is one of these values.
    Not(&'a [u32]),
    /// Allowed only when the argument is one of these values.
    Only(&'a [u32]),
}

/// A call allowed only in the forms whose argument `arg` passes `test`; the others get
/// `refused`.
#[derive(Debug, Clone, Copy)]
pub struct Checked<'a> {
    pub nr: u32,
    pub arg: u8,
    pub test: Test<'a>,
    pub refused: u32,
}

/// Compile the program for the architecture `audit_arch`: the `plain` numbers allowed, the
/// `checked` calls allowed in the forms their test passes, everything else refused.
pub fn compile(
    plain: &BTreeSet<u32>,
    checked: &[Checked],
    audit_arch: u32,
    verdicts: Verdicts,
) -> Vec<sock_filter> {
    let mut program = vec![
        stmt(LD_W_ABS, ARCH_OFFSET),
        jump(JEQ_K, audit_arch, 1, 0),
        stmt(RET_K, verdicts.foreign),
        stmt(LD_W_ABS, NR_OFFSET),
    ];
    let checks: Vec<Vec<sock_filter>> = checked
        .iter()
        .map(|call| check(call, verdicts.allowed))
        .collect();
    if !checks.is_empty() {
        // Each comparison jumps over the ones after it and the jump to the search, then over
        // the checks before its own.
        let mut before = 0;
        for (i, (call, code)) in checked.iter().zip(&checks).enumerate() {
            let to_check = checked.len() - 1 - i + 1 + before;
            program.push(jump(JEQ_K, call.nr, short(to_check), 0));
            before += code.len();
        }
        program.push(stmt(JA, u32::try_from(before).expect("a few short checks")));
        program.extend(checks.into_iter().flatten());
    }
    program.extend(search(&runs(plain), verdicts));
    program
}

/// One checked call: load its argument, test it, return.
fn check(call: &Checked, allowed: u32) -> Vec<sock_filter> {
    assert!(call.arg < 6, "syscalls have six arguments");
    let mut code = vec![stmt(LD_W_ABS, ARGS_OFFSET + 8 * u32::from(call.arg))];
    match call.test {
        Test::NoFlag(bits) => code.extend([
            jump(JSET_K, bits, 0, 1),
            stmt(RET_K, call.refused),
            stmt(RET_K, allowed),
        ]),
        Test::Not(values) => code.extend(any_of(values, call.refused, allowed)),
        Test::Only(values) => code.extend(any_of(values, allowed, call.refused)),
    }
    code
}

/// Compare the accumulator with each value in turn: `matched` on an equal one, `otherwise`
/// when none is.
fn any_of(values: &[u32], matched: u32, otherwise: u32) -> Vec<sock_filter> {
    let mut code: Vec<sock_filter> = values
        .iter()
        .enumerate()
        // Over the comparisons after this one and `ret otherwise`.
        .map(|(i, &value)| jump(JEQ_K, value, short(values.len() - 1 - i + 1), 0))
        .collect();
    code.push(stmt(RET_K, otherwise));
    code.push(stmt(RET_K, matched));
    code
}

/// A conditional jump's offset: 8 bits.
fn short(offset: usize) -> u8 {
    u8::try_from(offset).expect("a conditional jump of at most 255 instructions")
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

    /// Run a program of the instructions above, as the kernel would, on (arch, nr) with no
    /// arguments.
    fn run(program: &[sock_filter], arch: u32, nr: u32) -> u32 {
        run_counting(program, arch, nr, [0; 6]).0
    }

    /// The verdict and how many instructions it took.
    fn run_counting(program: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> (u32, usize) {
        let (mut pc, mut acc, mut steps) = (0usize, 0u32, 0usize);
        loop {
            let insn = &program[pc];
            pc += 1;
            steps += 1;
            let taken = |cond: bool| usize::from(if cond { insn.jt } else { insn.jf });
            match insn.code {
                LD_W_ABS if insn.k == ARCH_OFFSET => acc = arch,
                LD_W_ABS if insn.k == NR_OFFSET => acc = nr,
                // The low half of an argument (little-endian seccomp_data).
                LD_W_ABS if insn.k >= ARGS_OFFSET && (insn.k - ARGS_OFFSET).is_multiple_of(8) => {
                    acc = args[((insn.k - ARGS_OFFSET) / 8) as usize] as u32
                }
                JEQ_K => pc += taken(acc == insn.k),
                JGE_K => pc += taken(acc >= insn.k),
                JGT_K => pc += taken(acc > insn.k),
                JSET_K => pc += taken(acc & insn.k != 0),
                JA => pc += insn.k as usize,
                RET_K => return (insn.k, steps),
                other => panic!("unexpected instruction {other:#x} at {}", pc - 1),
            }
        }
    }

    fn check(numbers: &BTreeSet<u32>) {
        let program = compile(numbers, &[], ARCH, VERDICTS);
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
        let program = compile(&numbers, &[], ARCH, VERDICTS);
        // 500 runs in 125 leaves: 7 levels of 2 instructions, a leaf of at most 6, and the
        // 4-instruction prologue; a chain would take up to 1,000.
        let longest = (0..1100)
            .map(|nr| run_counting(&program, ARCH, nr, [0; 6]).1)
            .max()
            .unwrap();
        assert!(longest <= 26, "{longest} instructions on the longest path");
    }

    const EPERM: u32 = 0x0005_0000 | 1;
    const EAFNOSUPPORT: u32 = 0x0005_0000 | 97;

    /// Calls 56 (flags in argument 0), 16 (argument 1 must not be 0x5412 or 0x541c), 135
    /// (argument 0 only 0, 8 or 0xffffffff) and 41 (argument 0 must not be 40), among plain
    /// numbers on both sides of them.
    fn checked_program() -> Vec<sock_filter> {
        let plain: BTreeSet<u32> = (0..200).filter(|n| n % 5 != 0).collect();
        compile(
            &plain,
            &[
                Checked {
                    nr: 56,
                    arg: 0,
                    test: Test::NoFlag(0x1000_0000 | 0x0002_0000),
                    refused: EPERM,
                },
                Checked {
                    nr: 16,
                    arg: 1,
                    test: Test::Not(&[0x5412, 0x541c]),
                    refused: EPERM,
                },
                Checked {
                    nr: 135,
                    arg: 0,
                    test: Test::Only(&[0, 8, 0xffff_ffff]),
                    refused: EPERM,
                },
                Checked {
                    nr: 41,
                    arg: 0,
                    test: Test::Not(&[40]),
                    refused: EAFNOSUPPORT,
                },
            ],
            ARCH,
            VERDICTS,
        )
    }

    fn with_arg(index: usize, value: u64) -> [u64; 6] {
        let mut args = [0; 6];
        args[index] = value;
        args
    }

    #[test]
    fn checked_calls_are_judged_by_their_argument() {
        let program = checked_program();
        let verdict = |nr, args| run_counting(&program, ARCH, nr, args).0;
        let allowed = VERDICTS.allowed;
        // Flags: any listed bit refuses, other bits do not.
        assert_eq!(verdict(56, with_arg(0, 0x11)), allowed);
        assert_eq!(verdict(56, with_arg(0, 0x1000_0011)), EPERM);
        assert_eq!(verdict(56, with_arg(0, 0x0002_0000)), EPERM);
        // Compared as 32 bits: high bits neither hide nor add a form.
        assert_eq!(verdict(16, with_arg(1, 0x5412)), EPERM);
        assert_eq!(verdict(16, with_arg(1, 0x5412 | 1 << 32)), EPERM);
        assert_eq!(verdict(16, with_arg(1, 0x541c)), EPERM);
        assert_eq!(verdict(16, with_arg(1, 0x5413)), allowed);
        assert_eq!(
            verdict(16, with_arg(0, 0x5412)),
            allowed,
            "another argument"
        );
        assert_eq!(verdict(135, with_arg(0, 8)), allowed);
        assert_eq!(verdict(135, with_arg(0, 0xffff_ffff)), allowed);
        assert_eq!(verdict(135, with_arg(0, 0x0040_0000)), EPERM);
        assert_eq!(verdict(41, with_arg(0, 40)), EAFNOSUPPORT);
        assert_eq!(verdict(41, with_arg(0, 2)), allowed);
        // A foreign architecture is killed before any check.
        assert_eq!(
            run_counting(&program, ARCH ^ 1, 56, with_arg(0, 0x1000_0000)).0,
            VERDICTS.foreign
        );
    }

    #[test]
    fn checks_leave_every_other_number_to_the_search() {
        let program = checked_program();
        let checked = [16, 41, 56, 135];
        for nr in (0..300).chain([0x4000_0000 | 16, 0x4000_0000 | 56, u32::MAX]) {
            if checked.contains(&nr) {
                continue;
            }
            let expected = if nr < 200 && nr % 5 != 0 {
                VERDICTS.allowed
            } else {
                VERDICTS.refused
            };
            // Arguments that a check would refuse change nothing here.
            let args = [0x1000_0000, 0x5412, 0, 0, 0, 0];
            assert_eq!(run_counting(&program, ARCH, nr, args).0, expected, "{nr}");
        }
    }

    #[test]
    fn runs_group_consecutive_numbers() {
        assert_eq!(
            runs(&[1, 2, 3, 5, 7, 8, u32::MAX].into()),
            [(1, 3), (5, 5), (7, 8), (u32::MAX, u32::MAX)]
        );
    }
}
