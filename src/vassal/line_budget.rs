//! A bound on the log lines the master FIFO's commands make: one byte is one command, and a
//! writer flooding the FIFO (1 MiB of `s`) must not turn into a million INFO lines. Each
//! command is still obeyed; past [`LINES_PER_WINDOW`] in a [`WINDOW`], its line goes to debug,
//! and the count of those is told once the window is over.

use std::time::{Duration, Instant};
use tracing::info;

/// Command lines logged at their own level per window; the rest at debug.
pub const LINES_PER_WINDOW: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct LineBudget {
    window_start: Option<Instant>,
    used: u32,
    quieted: u32,
}

impl LineBudget {
    /// Whether the next command's line is logged at its own level (else at debug).
    pub fn loud(&mut self, now: Instant) -> bool {
        if self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= WINDOW)
        {
            if self.quieted > 0 {
                info!(
                    count = self.quieted,
                    "master FIFO: commands of the last flood were logged at debug"
                );
            }
            *self = LineBudget {
                window_start: Some(now),
                used: 0,
                quieted: 0,
            };
        }
        if self.used < LINES_PER_WINDOW {
            self.used += 1;
            return true;
        }
        if self.quieted == 0 {
            info!("master FIFO: a flood of commands: their lines go to debug for now");
        }
        self.quieted += 1;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_gives_its_lines_then_quiets_until_the_next_one() {
        let mut budget = LineBudget::default();
        let t0 = Instant::now();
        let loud = (0..1000).filter(|_| budget.loud(t0)).count();
        assert_eq!(loud, LINES_PER_WINDOW as usize);
        assert!(!budget.loud(t0 + WINDOW / 2));
        assert!(budget.loud(t0 + WINDOW));
        assert_eq!(budget.quieted, 0);
    }
}
