//! Collapsing a vassal's repeated log lines: a crash-looping vassal says "spawned", "died",
//! "respawn delayed" on every turn, and the log must not grow with each. Per vassal and per
//! kind of line, the last text, when it was first logged and how many identical ones were held
//! back since; the count is told when the line is logged again after [`REPEAT_WINDOW`], or
//! when a different text of that kind comes.

use std::fmt;
use std::time::{Duration, Instant};

use tracing::info;

/// Identical lines within this long of the one logged are counted, not logged.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Record {
    kind: &'static str,
    text: String,
    first: Instant,
    held_back: u32,
}

/// One vassal's records, one per kind of line (a handful of call sites).
#[derive(Debug, Default)]
pub struct RepeatedLines {
    records: Vec<Record>,
}

/// How many identical lines were held back before the one being logged (Display: a suffix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeated(pub u32);

impl fmt::Display for Repeated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            n => write!(f, " (… repeated {n} times)"),
        }
    }
}

impl RepeatedLines {
    /// Whether the line of `kind` reading `text` is logged now: None holds it back. When a
    /// different text of the same kind replaces one with lines held back, their count is logged
    /// first, naming `vassal`.
    pub fn admit(
        &mut self,
        vassal: &str,
        kind: &'static str,
        text: String,
        now: Instant,
    ) -> Option<Repeated> {
        let Some(record) = self.records.iter_mut().find(|r| r.kind == kind) else {
            self.records.push(Record {
                kind,
                text,
                first: now,
                held_back: 0,
            });
            return Some(Repeated(0));
        };
        if record.text == text {
            if now.duration_since(record.first) < REPEAT_WINDOW {
                record.held_back += 1;
                return None;
            }
            record.first = now;
            return Some(Repeated(std::mem::take(&mut record.held_back)));
        }
        flush(vassal, record);
        *record = Record {
            kind,
            text,
            first: now,
            held_back: 0,
        };
        Some(Repeated(0))
    }

    /// Log every count still held back and start afresh: the vassal is going away, or its
    /// config changed (what it logs next is news, not a repeat).
    pub fn flush_all(&mut self, vassal: &str) {
        for record in &mut self.records {
            flush(vassal, record);
        }
        self.records.clear();
    }
}

fn flush(vassal: &str, record: &mut Record) {
    let n = std::mem::take(&mut record.held_back);
    if n > 0 {
        let (kind, text) = (record.kind, &record.text);
        let sep = if text.is_empty() { "" } else { " " };
        info!(vassal, "{kind}{sep}{text}: … repeated {n} times");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_lines_in_the_window_are_held_back_and_counted_on_the_next_one_logged() {
        let mut lines = RepeatedLines::default();
        let t0 = Instant::now();
        let died = || "status=1".to_string();
        assert_eq!(lines.admit("a", "died", died(), t0), Some(Repeated(0)));
        for i in 1..=5 {
            assert_eq!(
                lines.admit("a", "died", died(), t0 + i * Duration::from_millis(10)),
                None
            );
        }
        let later = t0 + REPEAT_WINDOW;
        assert_eq!(lines.admit("a", "died", died(), later), Some(Repeated(5)));
        assert_eq!(lines.admit("a", "died", died(), later), None);
        assert_eq!(Repeated(5).to_string(), " (… repeated 5 times)");
        assert_eq!(Repeated(0).to_string(), "");
    }

    #[test]
    fn kinds_are_apart_and_a_different_text_is_logged_at_once() {
        let mut lines = RepeatedLines::default();
        let t0 = Instant::now();
        assert!(lines.admit("a", "spawned", String::new(), t0).is_some());
        assert!(lines.admit("a", "died", "status=1".into(), t0).is_some());
        assert!(lines.admit("a", "spawned", String::new(), t0).is_none());
        assert!(lines.admit("a", "died", "status=1".into(), t0).is_none());
        assert_eq!(
            lines.admit("a", "died", "status=2".into(), t0),
            Some(Repeated(0))
        );
        assert!(lines.admit("a", "died", "status=1".into(), t0).is_some());
        lines.flush_all("a");
        assert!(lines.admit("a", "spawned", String::new(), t0).is_some());
    }
}
