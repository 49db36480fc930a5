//! The reader's workers: one at a time, forked ahead of need, each serving configs until it
//! fails, or has served its share and is replaced (so what one config leaves behind, CPU
//! time spent or memory kept, never counts against a later config for long).

use super::frame::{read_frame, write_frame};
use super::work::serve_requests;
use super::{ReadReply, MAX_REPLY};
use jail::worker::{fork_worker, Worker, WorkerLimits, LIMITS_FAILED_STATUS, PANICKED_STATUS};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io::Read;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// How long one config may take, CPU or not (a worker blocked on a file counts too).
const CONFIG_PATIENCE: Duration = Duration::from_secs(5);
/// Configs a worker serves before it is replaced.
const CONFIGS_PER_WORKER: u32 = 64;
/// CPU a worker may have used and still take another config (its hard limit is for the
/// config at hand, so a heavy predecessor must not eat into it).
const RETIRE_AFTER_CPU: Duration = Duration::from_millis(500);

/// The worker that serves the next config, and how many it has served.
pub struct Workers {
    limits: WorkerLimits,
    current: Option<(Worker, u32)>,
    /// The address space a worker starts with (the reader's): one that has kept more than a
    /// quarter of its allowance over it is replaced.
    mapped_at_start: u64,
}

impl Workers {
    pub fn new(limits: WorkerLimits) -> Self {
        Workers {
            limits,
            current: None,
            mapped_at_start: 0,
        }
    }

    /// Have the current worker (a new one if there is none) answer `request`; whatever it
    /// does, an answer. A worker that did not answer is killed and collected, and its exit
    /// is the reason.
    pub fn ask(&mut self, request: &[u8]) -> ReadReply {
        let (mut worker, served) = match self.current.take() {
            Some(current) => current,
            None => match start(self.limits) {
                Ok(worker) => (worker, 0),
                Err(e) => return ReadReply::WorkerFailed(format!("no worker to read it: {e}")),
            },
        };
        match exchange(&mut worker, request) {
            Ok(reply) => {
                self.current = Some((worker, served + 1));
                reply
            }
            Err(reason) => {
                worker.kill();
                match worker.wait() {
                    Ok(exit) => ReadReply::WorkerFailed(why_it_ended(exit, reason, self.limits)),
                    Err(e) => ReadReply::WorkerFailed(format!("{reason}; {e}")),
                }
            }
        }
    }

    /// Between configs: replace a worker that has served its share, and fork one when there
    /// is none, so the next config does not wait for a fork.
    pub fn prepare(&mut self) {
        if let Some((worker, served)) = &self.current {
            let kept_too_much =
                |mapped| mapped > self.mapped_at_start + self.limits.extra_address_space / 4;
            let retire = match usage(worker) {
                Some((cpu, mapped)) => cpu > RETIRE_AFTER_CPU || kept_too_much(mapped),
                None => true,
            };
            if retire || *served >= CONFIGS_PER_WORKER {
                let (worker, _) = self.current.take().expect("checked");
                end(worker);
            }
        }
        if self.current.is_none() {
            self.mapped_at_start = own_mapped_bytes();
            self.current = start(self.limits).ok().map(|worker| (worker, 0));
        }
    }

    /// Collect the worker, if any.
    pub fn finish(&mut self) {
        if let Some((worker, _)) = self.current.take() {
            end(worker);
        }
    }
}

fn start(limits: WorkerLimits) -> Result<Worker, jail::SysError> {
    fork_worker(limits, serve_requests)
}

/// Its input closed, a worker exits; collected here.
fn end(mut worker: Worker) {
    drop(worker.input.take());
    if worker.wait().is_err() {
        worker.kill();
    }
}

/// One request written, one reply read within [`CONFIG_PATIENCE`].
fn exchange(worker: &mut Worker, request: &[u8]) -> Result<ReadReply, String> {
    let input = worker
        .input
        .as_mut()
        .ok_or_else(|| "its input is closed".to_string())?;
    write_frame(input, request).map_err(|e| format!("writing the request to the worker: {e}"))?;
    let deadline = Instant::now() + CONFIG_PATIENCE;
    let mut output = ByDeadline {
        from: &worker.output,
        deadline,
    };
    let reply = read_frame(&mut output, MAX_REPLY)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the worker ended without an answer".to_string())?;
    serde_json::from_slice(&reply).map_err(|e| format!("an answer that does not parse: {e}"))
}

/// Reads that fail with TimedOut once `deadline` has passed.
struct ByDeadline<'a> {
    from: &'a std::fs::File,
    deadline: Instant,
}

impl Read for ByDeadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO);
            let mut fds = [PollFd::new(self.from.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "the worker took longer than {} s",
                            CONFIG_PATIENCE.as_secs()
                        ),
                    ))
                }
                Ok(_) => return self.from.read(buf),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Why a worker that failed an exchange (`reason`) ended as it did.
fn why_it_ended(exit: jail::process::Exit, reason: String, limits: WorkerLimits) -> String {
    match (exit.signal, exit.status) {
        // Killed by us for a reason of ours: the reason says it.
        (Some(libc::SIGKILL), _) if reason.contains("longer than") => reason,
        (Some(signal), _) => killed_by(signal, limits),
        (None, LIMITS_FAILED_STATUS) => "the worker could not set its limits".to_string(),
        (None, PANICKED_STATUS) => "the worker panicked".to_string(),
        (None, _) => reason,
    }
}

/// Why a worker killed by `signal` most likely died.
fn killed_by(signal: i32, limits: WorkerLimits) -> String {
    let why = match signal {
        libc::SIGSEGV | libc::SIGBUS => "a crash or a stack overflow".to_string(),
        libc::SIGABRT => format!(
            "out of memory: over its {} MiB",
            limits.extra_address_space >> 20
        ),
        libc::SIGXCPU | libc::SIGKILL => {
            format!("out of time: over {} s of CPU", limits.cpu_seconds)
        }
        _ => "killed".to_string(),
    };
    format!("the worker reading it died of signal {signal} ({why})")
}

/// The CPU time a worker has used and its address space (bytes); None when it cannot be
/// read.
fn usage(worker: &Worker) -> Option<(Duration, u64)> {
    let stat = worker.stat()?;
    // Clock ticks: USER_HZ is 100 on every architecture Linux runs on.
    Some((Duration::from_millis(stat.cpu_ticks * 10), stat.vsize))
}

/// This process's address space, bytes.
fn own_mapped_bytes() -> u64 {
    jail::process::stat("self").map_or(0, |stat| stat.vsize)
}
