//! Memory and CPU of a vassal, read from /proc here: its runtime and every descendant (the
//! payload and whatever it forked). Memory is the tree's RSS; CPU is the growth of the tree's
//! utime+stime between two samples over the wall time between them (100% is one core).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// A process, told apart from a later one that got its pid: (pid, start time in ticks).
type ProcessKey = (i32, u64);

/// One look at a process tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TreeSample {
    pub rss_bytes: u64,
    /// Each process's utime+stime, in clock ticks.
    pub ticks: BTreeMap<ProcessKey, u64>,
}

/// What the view shows for a vassal.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub rss_bytes: u64,
    /// None until a second sample of the same runtime.
    pub cpu_percent: Option<f64>,
}

/// CPU% of a tree between two samples `elapsed` apart. A process in `after` but not in
/// `before` started since (else it would have been seen): all its time counts. A process that
/// exited in between takes its last interval's time with it.
pub fn cpu_percent(
    before: &TreeSample,
    after: &TreeSample,
    elapsed: Duration,
    ticks_per_second: u64,
) -> Option<f64> {
    if elapsed.is_zero() || ticks_per_second == 0 {
        return None;
    }
    let grown: u64 = after
        .ticks
        .iter()
        .map(|(key, &now)| now.saturating_sub(before.ticks.get(key).copied().unwrap_or(0)))
        .sum();
    Some(grown as f64 / ticks_per_second as f64 / elapsed.as_secs_f64() * 100.0)
}

/// Read the tree under `root` (root included) from /proc; None when the root is gone or
/// cannot be read (another pid namespace, hidepid).
pub fn sample_tree(root: i32, page_size: u64) -> Option<TreeSample> {
    let mut sample = TreeSample::default();
    add_process(&mut sample, root, page_size)?;
    for pid in jail::process::descendants_of(nix::unistd::Pid::from_raw(root)) {
        // One that exits while we look is simply not counted.
        let _ = add_process(&mut sample, pid.as_raw(), page_size);
    }
    Some(sample)
}

fn add_process(sample: &mut TreeSample, pid: i32, page_size: u64) -> Option<()> {
    let stat = procfs::process::Process::new(pid).ok()?.stat().ok()?;
    sample.rss_bytes += stat.rss * page_size;
    sample
        .ticks
        .insert((pid, stat.starttime), stat.utime + stat.stime);
    Some(())
}

/// Samples each refresh's runtimes, keeping the last sample of each for the CPU%.
#[derive(Debug)]
pub struct Sampler {
    previous: HashMap<i32, TreeSample>,
    taken: Option<Instant>,
    ticks_per_second: u64,
    page_size: u64,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler {
            previous: HashMap::new(),
            taken: None,
            ticks_per_second: procfs::ticks_per_second(),
            page_size: procfs::page_size(),
        }
    }
}

impl Sampler {
    /// The usage of each runtime pid that could be read; runtimes not asked for are forgotten.
    pub fn sample(&mut self, runtimes: &[i32]) -> HashMap<i32, Usage> {
        let now = Instant::now();
        let elapsed = self.taken.map(|t| now.duration_since(t));
        let mut current = HashMap::new();
        let mut usage = HashMap::new();
        for &pid in runtimes {
            let Some(sample) = sample_tree(pid, self.page_size) else {
                continue;
            };
            let cpu = match (self.previous.get(&pid), elapsed) {
                // A new runtime under an old pid shares no process with the old sample.
                (Some(before), Some(elapsed)) if shares_root(before, &sample, pid) => {
                    cpu_percent(before, &sample, elapsed, self.ticks_per_second)
                }
                _ => None,
            };
            usage.insert(
                pid,
                Usage {
                    rss_bytes: sample.rss_bytes,
                    cpu_percent: cpu,
                },
            );
            current.insert(pid, sample);
        }
        self.previous = current;
        self.taken = Some(now);
        usage
    }
}

/// Both samples saw the same process as `pid` (not a reused pid).
fn shares_root(before: &TreeSample, after: &TreeSample, pid: i32) -> bool {
    let root = |s: &TreeSample| s.ticks.keys().find(|(p, _)| *p == pid).copied();
    root(before).is_some() && root(before) == root(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(processes: &[(i32, u64, u64)]) -> TreeSample {
        TreeSample {
            rss_bytes: 0,
            ticks: processes
                .iter()
                .map(|&(pid, start, ticks)| ((pid, start), ticks))
                .collect(),
        }
    }

    #[test]
    fn cpu_is_the_trees_tick_growth_over_the_wall_time() {
        let before = sample(&[(10, 1, 100), (11, 5, 50)]);
        // Runtime +2 ticks, payload +148: 150 ticks of 100 a second in 2 s is 75% of a core.
        let after = sample(&[(10, 1, 102), (11, 5, 198)]);
        let cpu = cpu_percent(&before, &after, Duration::from_secs(2), 100).unwrap();
        assert!((cpu - 75.0).abs() < 1e-9, "{cpu}");
    }

    #[test]
    fn a_process_started_between_samples_counts_whole_and_a_reused_pid_is_new() {
        let before = sample(&[(10, 1, 100), (11, 5, 50)]);
        // Pid 11 is another process now (a later start time), and 12 is new: all theirs.
        let after = sample(&[(10, 1, 100), (11, 90, 30), (12, 91, 20)]);
        let cpu = cpu_percent(&before, &after, Duration::from_secs(1), 100).unwrap();
        assert!((cpu - 50.0).abs() < 1e-9, "{cpu}");
    }

    #[test]
    fn two_cores_busy_is_two_hundred_percent_and_no_time_gives_nothing() {
        let before = sample(&[(10, 1, 0), (11, 1, 0)]);
        let after = sample(&[(10, 1, 100), (11, 1, 100)]);
        let cpu = cpu_percent(&before, &after, Duration::from_secs(1), 100).unwrap();
        assert!((cpu - 200.0).abs() < 1e-9, "{cpu}");
        assert_eq!(cpu_percent(&before, &after, Duration::ZERO, 100), None);
    }

    #[test]
    fn a_runtime_under_a_reused_pid_gets_no_cpu_from_the_old_one() {
        let before = sample(&[(10, 1, 100)]);
        assert!(shares_root(&before, &sample(&[(10, 1, 150)]), 10));
        assert!(!shares_root(&before, &sample(&[(10, 77, 5)]), 10));
    }

    #[test]
    fn this_process_is_sampled_from_proc() {
        let me = std::process::id() as i32;
        let mut sampler = Sampler::default();
        let first = sampler.sample(&[me, i32::MAX]);
        assert!(first[&me].rss_bytes > 0);
        assert_eq!(first[&me].cpu_percent, None, "one sample gives no CPU yet");
        assert!(!first.contains_key(&i32::MAX), "no such process");
        let second = sampler.sample(&[me]);
        assert!(second[&me].cpu_percent.is_some());
    }
}
