//! A launch must not copy its parent's memory (that made spawning the N-th vassal cost in
//! proportion to N). A copying clone write-protects every page of the parent, so the parent's
//! next write to each one faults; a clone sharing the memory until execve leaves them alone.
//! This file is a test binary of its own: another test forking meanwhile would write-protect
//! the pages too.

use jail::creds::PrivilegeDrop;
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

fn run_true(configure: impl FnOnce(&mut Launch)) {
    let mut launch = Launch::new(Path::new("/bin/true"), &["true"]).unwrap();
    configure(&mut launch);
    let running = launch.start().unwrap().release().unwrap();
    let status = nix::sys::wait::waitpid(running.pid, None).unwrap();
    assert_eq!(status, nix::sys::wait::WaitStatus::Exited(running.pid, 0));
}

/// What a drop changes, as this thread's /proc status shows it (capability sets,
/// no_new_privs, seccomp, ids, groups).
fn credentials_of_this_thread() -> Vec<String> {
    let tid = nix::unistd::gettid();
    std::fs::read_to_string(format!("/proc/self/task/{tid}/status"))
        .unwrap()
        .lines()
        .filter(|line| {
            ["Cap", "NoNewPrivs", "Seccomp", "Uid", "Gid", "Groups"]
                .iter()
                .any(|key| line.starts_with(key))
        })
        .map(str::to_string)
        .collect()
}

/// The faults the parent takes rewriting `memory` after a launch `configure`d so.
fn faults_after(memory: &mut [u8], configure: impl FnOnce(&mut Launch)) -> i64 {
    run_true(configure);
    faults_rewriting(memory)
}

#[test]
fn a_launch_leaves_the_parents_memory_alone_where_a_held_one_copies_it() {
    let mut memory = vec![1u8; MEMORY];
    // Once first, so the faults of code run for the first time are not counted below.
    faults_rewriting(&mut memory);

    let plain = faults_after(&mut memory, |_| {});
    // A root vassal's payload: every capability dropped, the ids kept. The drop is the
    // child's own: the parent, whose memory it ran in, keeps its capabilities and limits.
    let parent_before = credentials_of_this_thread();
    let capabilities_dropped = faults_after(&mut memory, |launch| {
        launch.drop_privileges(PrivilegeDrop::default());
    });
    assert_eq!(credentials_of_this_thread(), parent_before);
    // A held child runs while the parent works on it (its user-namespace maps), so it
    // cannot share the parent's memory: this is what every spawn used to cost.
    let held = faults_after(&mut memory, |launch| {
        launch.hold();
    });
    // A uid change (even to the same uid) would reset the dumpable flag of shared memory.
    let uid = nix::unistd::getuid().as_raw();
    let uid_set = faults_after(&mut memory, |launch| {
        launch.drop_privileges(PrivilegeDrop {
            uid: Some(uid),
            ..PrivilegeDrop::default()
        });
    });

    assert_eq!(
        plain, 0,
        "a plain launch write-protected the parent's memory"
    );
    assert_eq!(
        capabilities_dropped, 0,
        "a launch dropping capabilities only write-protected the parent's memory"
    );
    assert!(
        held > 0,
        "the copying clone should have write-protected the pages (else this test proves nothing)"
    );
    assert!(
        uid_set > 0,
        "a launch changing the uid must copy the memory"
    );
}
