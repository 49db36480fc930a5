//! A launch must not copy its parent's memory (that made spawning the N-th vassal cost in
//! proportion to N). A copying clone write-protects every page of the parent, so the parent's
//! next write to each one faults; a clone sharing the memory until execve leaves them alone.
//! This file is a test binary of its own: another test forking meanwhile would write-protect
//! the pages too.

use jail::Launch;
use nix::sys::resource::{getrusage, UsageWho};
use std::path::Path;

const MEMORY: usize = 16 << 20;
const PAGE: usize = 4096;

fn minor_faults_of_this_thread() -> i64 {
    getrusage(UsageWho::RUSAGE_THREAD)
        .unwrap()
        .minor_page_faults()
}

/// Write one byte of every page of `memory` and count the faults that took.
fn faults_rewriting(memory: &mut [u8]) -> i64 {
    let before = minor_faults_of_this_thread();
    for i in (0..memory.len()).step_by(PAGE) {
        memory[i] = memory[i].wrapping_add(1);
    }
    std::hint::black_box(&mut *memory);
    minor_faults_of_this_thread() - before
}

fn run_true(hold: bool) {
    let mut launch = Launch::new(Path::new("/bin/true"), &["true"]).unwrap();
    if hold {
        launch.hold();
    }
    let running = launch.start().unwrap().release().unwrap();
    let status = nix::sys::wait::waitpid(running.pid, None).unwrap();
    assert_eq!(status, nix::sys::wait::WaitStatus::Exited(running.pid, 0));
}

#[test]
fn a_launch_leaves_the_parents_memory_alone_where_a_held_one_copies_it() {
    let mut memory = vec![1u8; MEMORY];
    // Once first, so the faults of code run for the first time are not counted below.
    faults_rewriting(&mut memory);

    run_true(false);
    let shared = faults_rewriting(&mut memory);
    // A held child runs while the parent works on it (its user-namespace maps), so it
    // cannot share the parent's memory: this is what every spawn used to cost.
    run_true(true);
    let copied = faults_rewriting(&mut memory);

    assert_eq!(
        shared, 0,
        "a plain launch write-protected the parent's memory"
    );
    assert!(
        copied > 0,
        "the copying clone should have write-protected the pages (else this test proves nothing)"
    );
}
