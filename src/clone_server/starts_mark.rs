//! The server's mark of starts under way, read by the runtimes it copied: before each runtime
//! it starts, the server writes "starts go on until now + [`HOLD`]" as the word it shares
//! read-only with its copies (`jail::ahead`). A runtime whose sleep falls due while starts go
//! on puts it off (`vassal::hibernate`): in a mass start of thousands, the first runtimes
//! would otherwise fall asleep (an execve each, their pages freed) while the rest still
//! start, and every start would wait for CPU they take. Runtimes that execute the runtime
//! binary (the unprivileged emperor's) and woken ones do not hold the word: they never wait.

use std::time::Duration;

/// How long after a start the mark says starts go on: more than the gap between two starts
/// of one mass start (the emperor's batches follow each other in milliseconds), short enough
/// that a runtime's sleep waits little for the last start.
const HOLD: Duration = Duration::from_secs(1);

/// The server starts a runtime now.
pub(super) fn starting() {
    jail::ahead::write_word(nanos(jail::process::monotonic_now() + HOLD));
}

/// Whether the server that copied this runtime started one within [`HOLD`] (false in a
/// process that holds no word).
pub fn starts_go_on() -> bool {
    go_on(jail::process::monotonic_now(), jail::ahead::read_word())
}

/// Whether starts go on at `now` by the mark `until` (the word as read).
fn go_on(now: Duration, until: Option<u64>) -> bool {
    until.is_some_and(|until| nanos(now) < until)
}

fn nanos(at: Duration) -> u64 {
    u64::try_from(at.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_go_on_for_the_hold_after_a_start_then_stop() {
        let start = Duration::from_secs(100);
        let mark = Some(nanos(start + HOLD));
        assert!(go_on(start, mark), "just after a start");
        assert!(go_on(start + HOLD / 2, mark), "within the hold");
        assert!(!go_on(start + HOLD, mark), "the hold is over");
        assert!(!go_on(start, Some(0)), "no start yet");
        assert!(!go_on(start, None), "no word to read");
    }
}
