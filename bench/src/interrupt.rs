//! SIGINT, SIGTERM and SIGHUP end the benchmark through its normal error path, so that every
//! session's Drop guard stops what it started: the signals are blocked and a thread waits for
//! them and raises a flag that every wait checks.

use nix::sys::signal::{SigSet, Signal};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Call first in main, before any other thread exists (threads inherit the mask; children
/// started by std::process::Command get an empty mask again).
pub fn install() -> nix::Result<()> {
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    set.thread_block()?;
    std::thread::spawn(move || {
        if let Ok(signal) = set.wait() {
            eprintln!("emperor-bench: {signal}: stopping and cleaning up");
            INTERRUPTED.store(true, Ordering::SeqCst);
        }
    });
    Ok(())
}

/// An error once a signal asked the benchmark to stop.
pub fn check() -> Result<(), String> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

/// Sleep for `duration`, waking early (with an error) when interrupted.
pub fn sleep(duration: Duration) -> Result<(), String> {
    let end = Instant::now() + duration;
    loop {
        check()?;
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}
