//! Start-all measured more than once at each jail and size, alternating with the machine
//! baseline (baseline, emperor, baseline, emperor ...), so that both see the same machine;
//! the run with the median time speaks for the size, with its own CPU split. One window
//! each moved 20-30% from run to run on a shared 2-core VM: more than the ratio it judges.

use std::time::Duration;

/// The index of the median of `times`: the lower of the two middle ones for an even count
/// (None when empty).
pub fn median_index(times: &[Duration]) -> Option<usize> {
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by_key(|&i| times[i]);
    order.get(times.len().saturating_sub(1) / 2).copied()
}

/// The median run's time, and the others' spread when there were others:
/// "12.07 s (median of 3: 11.20-13.10 s)".
pub fn describe(median: Duration, runs: &[Duration]) -> String {
    let secs = |d: Duration| format!("{:.2}", d.as_secs_f64());
    match (runs.iter().min(), runs.iter().max()) {
        (Some(&low), Some(&high)) if runs.len() > 1 => format!(
            "{} s (median of {}: {}-{} s)",
            secs(median),
            runs.len(),
            secs(low),
            secs(high)
        ),
        _ => format!("{} s", secs(median)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn the_median_run_is_the_middle_one_by_time_not_by_order() {
        assert_eq!(median_index(&ms(&[300, 100, 200])), Some(2));
        assert_eq!(median_index(&ms(&[100, 400, 300, 200])), Some(3));
        assert_eq!(median_index(&ms(&[7])), Some(0));
        assert_eq!(median_index(&[]), None);
    }

    #[test]
    fn one_run_is_shown_alone_and_several_with_their_spread() {
        let one = ms(&[12070]);
        assert_eq!(describe(one[0], &one), "12.07 s");
        let three = ms(&[13100, 11200, 12070]);
        assert_eq!(
            describe(three[2], &three),
            "12.07 s (median of 3: 11.20-13.10 s)"
        );
    }
}
