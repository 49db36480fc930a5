//! Latency samples and the polling loop that takes them.

use crate::session::BenchResult;
use std::time::{Duration, Instant};

/// Repeated measurements of one latency, and the tries where the event never came (uWSGI
/// does not reload a payload that does not speak its protocol).
#[derive(Debug, Clone, Default)]
pub struct Samples {
    values: Vec<Duration>,
    /// Tries that waited for `patience` in vain.
    pub missed: usize,
    pub patience: Duration,
}

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.values.push(d);
    }

    /// A try that saw nothing within `patience`.
    pub fn miss(&mut self, patience: Duration) {
        self.missed += 1;
        self.patience = patience;
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    fn sorted(&self) -> Vec<Duration> {
        let mut v = self.values.clone();
        v.sort();
        v
    }

    /// Nearest-rank percentile (`p` in 0..=100); zero when empty.
    pub fn percentile(&self, p: u32) -> Duration {
        let v = self.sorted();
        if v.is_empty() {
            return Duration::ZERO;
        }
        let rank = (v.len() * p as usize).div_ceil(100).max(1);
        v[rank - 1]
    }

    pub fn median(&self) -> Duration {
        self.percentile(50)
    }

    pub fn p90(&self) -> Duration {
        self.percentile(90)
    }

    pub fn max(&self) -> Duration {
        self.percentile(100)
    }
}

/// Call `probe` every `interval` until it yields a value; returns it with the instant the
/// successful probe ended (an upper bound of when the condition became true: the error is
/// at most one interval plus one probe). Errors after `timeout`, naming `what`.
pub fn poll_until<T>(
    what: &str,
    interval: Duration,
    timeout: Duration,
    mut probe: impl FnMut() -> BenchResult<Option<T>>,
) -> BenchResult<(T, Instant)> {
    // Duration::MAX: no deadline.
    let deadline = Instant::now().checked_add(timeout);
    loop {
        crate::interrupt::check()?;
        if let Some(value) = probe()? {
            return Ok((value, Instant::now()));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Samples {
        let mut s = Samples::default();
        for &v in values {
            s.push(Duration::from_millis(v));
        }
        s
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = ms(&[5, 1, 4, 2, 3, 10, 9, 8, 7, 6]);
        assert_eq!(s.median(), Duration::from_millis(5));
        assert_eq!(s.p90(), Duration::from_millis(9));
        assert_eq!(s.max(), Duration::from_millis(10));
        assert_eq!(ms(&[7]).p90(), Duration::from_millis(7));
        assert_eq!(Samples::default().median(), Duration::ZERO);
    }

    #[test]
    fn polling_returns_the_value_or_times_out() {
        let mut n = 0;
        let (v, _) = poll_until("three", Duration::ZERO, Duration::from_secs(1), || {
            n += 1;
            Ok((n == 3).then_some(n))
        })
        .unwrap();
        assert_eq!(v, 3);
        let never = poll_until("never", Duration::ZERO, Duration::ZERO, || Ok(None::<()>));
        assert!(never.unwrap_err().contains("never"));
    }
}
