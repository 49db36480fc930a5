//! Ragnarok's stops, sent in waves.
//!
//! Stopping thousands of vassals at once makes thousands of runtimes and payloads runnable in
//! the same instant, all exiting. What an exit leaves to the kernel (each payload's seccomp
//! program, each process's kernel stack) is freed later by the kernel's own workers, which
//! then compete with the stampede for the CPUs; on this project's test host a backlog of such
//! frees on one CPU once deadlocked the kernel's workqueue. A wave of vassals is told to stop;
//! the next is told when the wave has exited, or after a short patience when some of it takes
//! its time (a slow vassal must not hold back everyone else's grace period).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Vassals told to stop together.
pub const WAVE: usize = 128;
/// How long a wave may take before the next is told anyway.
pub const WAVE_PATIENCE: Duration = Duration::from_millis(50);

/// The vassals still to be told, and the wave under way.
#[derive(Debug, Default)]
pub struct StopWaves {
    waiting: VecDeque<usize>,
    /// Vassals of the current wave that have not exited yet.
    in_flight: usize,
    /// When the current wave was told.
    told_at: Option<Instant>,
}

impl StopWaves {
    /// Queue every slot to be told to stop, in order.
    pub fn new(slots: impl IntoIterator<Item = usize>) -> Self {
        StopWaves {
            waiting: slots.into_iter().collect(),
            in_flight: 0,
            told_at: None,
        }
    }

    /// The next wave to tell, if the one under way has exited or run out of patience.
    pub fn due(&mut self, now: Instant) -> Vec<usize> {
        let patience_over = self.told_at.is_some_and(|at| now >= at + WAVE_PATIENCE);
        if self.waiting.is_empty() || (self.in_flight > 0 && !patience_over) {
            return Vec::new();
        }
        let count = WAVE.min(self.waiting.len());
        let wave: Vec<usize> = self.waiting.drain(..count).collect();
        self.in_flight = wave.len();
        self.told_at = Some(now);
        wave
    }

    /// A vassal that was told to stop has exited. (One of an earlier wave, once patience ran
    /// out, counts as well: the next wave only comes sooner.)
    pub fn exited(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// When the loop must wake to tell the next wave although nobody exited.
    pub fn deadline(&self) -> Option<Instant> {
        if self.waiting.is_empty() {
            return None;
        }
        self.told_at.map(|at| at + WAVE_PATIENCE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_wave_waits_for_the_last_to_exit() {
        let now = Instant::now();
        let mut waves = StopWaves::new(0..WAVE + 10);
        let first = waves.due(now);
        assert_eq!(first, (0..WAVE).collect::<Vec<_>>());
        assert!(waves.due(now).is_empty(), "the first wave is still running");
        for _ in 0..WAVE - 1 {
            waves.exited();
        }
        assert!(waves.due(now).is_empty(), "one of the first wave is left");
        waves.exited();
        assert_eq!(waves.due(now), (WAVE..WAVE + 10).collect::<Vec<_>>());
        assert!(waves.due(now + WAVE_PATIENCE * 2).is_empty(), "all told");
        assert_eq!(waves.deadline(), None);
    }

    #[test]
    fn a_slow_wave_holds_the_next_back_only_for_its_patience() {
        let now = Instant::now();
        let mut waves = StopWaves::new(0..3 * WAVE);
        assert_eq!(waves.due(now).len(), WAVE);
        assert_eq!(waves.deadline(), Some(now + WAVE_PATIENCE));
        assert!(waves.due(now + WAVE_PATIENCE / 2).is_empty());
        let later = now + WAVE_PATIENCE;
        assert_eq!(waves.due(later), (WAVE..2 * WAVE).collect::<Vec<_>>());
        assert_eq!(waves.deadline(), Some(later + WAVE_PATIENCE));
    }

    #[test]
    fn a_few_vassals_are_told_at_once() {
        let mut waves = StopWaves::new([4, 9, 2]);
        assert_eq!(waves.due(Instant::now()), [4, 9, 2]);
        assert_eq!(waves.deadline(), None);
    }
}
