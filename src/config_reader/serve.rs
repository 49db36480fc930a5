//! The reader's side: take the emperor's identity, say it is ready, then answer one request at
//! a time from a throwaway worker (see the module's comment).

use super::frame::{read_frame, write_frame};
use super::{ReadReply, ReadRequest, MAX_REPLY, MAX_REQUEST, READER_FD, READY, WORKER_CPU_SECONDS};
use crate::config::{self, LoadOptions};
use crate::emperor::EmperorIdentity;
use jail::worker::{fork_worker, Worker, WorkerLimits, LIMITS_FAILED_STATUS, PANICKED_STATUS};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tracing::error;

/// How long a worker may take, CPU or not (a worker blocked on a file counts too).
const WORKER_PATIENCE: Duration = Duration::from_secs(5);

/// Serve the emperor on the inherited socket until it closes it, as `identity` (the
/// unprivileged emperor's) when given; each worker may map `memory_mib` MiB more than it
/// started with.
pub fn serve(identity: Option<EmperorIdentity>, memory_mib: u64) -> ExitCode {
    let Some(socket) = crate::emperor::begin_helper("config reader", READER_FD, identity) else {
        return ExitCode::FAILURE;
    };
    let mut socket = UnixStream::from(socket);
    let limits = WorkerLimits {
        extra_address_space: memory_mib.saturating_mul(1 << 20),
        cpu_seconds: WORKER_CPU_SECONDS,
    };
    if let Err(e) = write_frame(&mut socket, READY) {
        error!("config reader: {e}");
        return ExitCode::FAILURE;
    }
    // The next request's worker, forked ahead of need: the fork and the worker's setup happen
    // while the emperor goes on with the previous answer, not while it waits for the next.
    let mut spare = None;
    loop {
        let request = match read_frame(&mut socket, MAX_REQUEST) {
            Ok(Some(request)) => request,
            Ok(None) => {
                if let Some(worker) = spare {
                    end_worker(&worker);
                }
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                error!("config reader: reading a request: {e}");
                return ExitCode::FAILURE;
            }
        };
        let worker = spare.take().map(Ok).unwrap_or_else(|| start_worker(limits));
        let (reply, worker) = match worker {
            Ok(mut worker) => (ask_worker(&mut worker, &request, limits), Some(worker)),
            Err(e) => (
                ReadReply::WorkerFailed(format!("no worker to read it: {e}")),
                None,
            ),
        };
        let reply = serde_json::to_vec(&reply).expect("a reply serializes");
        if let Err(e) = write_frame(&mut socket, &reply) {
            error!("config reader: answering: {e}");
            return ExitCode::FAILURE;
        }
        if let Some(worker) = worker {
            end_worker(&worker);
        }
        spare = start_worker(limits).ok();
    }
}

/// A worker waiting for one request on its input: it loads that config and writes its reply.
fn start_worker(limits: WorkerLimits) -> Result<Worker, jail::SysError> {
    fork_worker(limits, |input, output| {
        let mut request = Vec::new();
        let reply = match input.take(MAX_REQUEST as u64).read_to_end(&mut request) {
            Ok(_) => match serde_json::from_slice::<ReadRequest>(&request) {
                Ok(request) => load(&request),
                Err(e) => ReadReply::WorkerFailed(format!("a request that does not parse: {e}")),
            },
            Err(e) => ReadReply::WorkerFailed(format!("reading the request: {e}")),
        };
        let reply = serde_json::to_vec(&reply).expect("a reply serializes");
        // A reader that stopped listening has its reason already (the worker's exit).
        let _ = output.write_all(&reply);
    })
}

/// Hand `request` to `worker` and take its answer; whatever the worker does, an answer. A
/// worker that did not answer is killed and collected, and its exit is the reason.
fn ask_worker(worker: &mut Worker, request: &[u8], limits: WorkerLimits) -> ReadReply {
    // Dropped once written, which closes it: the worker reads to its end.
    let sent = match worker.input.take() {
        Some(mut input) => input.write_all(request),
        None => Err(std::io::Error::other("its input is closed already")),
    };
    let output = sent
        .map_err(|e| format!("writing the request to the worker: {e}"))
        .and_then(|()| read_output(worker));
    if let Ok(bytes) = &output {
        if let Ok(reply) = serde_json::from_slice(bytes) {
            return reply;
        }
    }
    worker.kill();
    let exit = match worker.wait() {
        Ok(exit) => exit,
        Err(e) => return ReadReply::WorkerFailed(e.to_string()),
    };
    match (exit.signal, exit.status, output) {
        (_, _, Err(reason)) => ReadReply::WorkerFailed(reason),
        (Some(signal), _, _) => ReadReply::WorkerFailed(killed_by(signal, limits)),
        (None, LIMITS_FAILED_STATUS, _) => {
            ReadReply::WorkerFailed("the worker could not set its limits".to_string())
        }
        (None, PANICKED_STATUS, _) => ReadReply::WorkerFailed("the worker panicked".to_string()),
        (None, status, _) => ReadReply::WorkerFailed(format!(
            "the worker exited {status} with an answer that does not parse"
        )),
    }
}

/// Collect a worker that answered (it is exiting), or kill and collect a spare.
fn end_worker(worker: &Worker) {
    worker.kill();
    let _ = worker.wait();
}

/// The config, loaded as its runtime loads it, reduced to the options asked for.
fn load(request: &ReadRequest) -> ReadReply {
    let options = LoadOptions {
        sets: request.sets.clone(),
        includes: request.includes.clone(),
        environment: Some(request.environment.clone()),
    };
    let load = || match &request.text {
        Some(text) => config::load_text(&request.path, text, &options),
        None => config::load(&request.path, &options),
    };
    let loaded = match request.owner {
        Some((uid, gid)) => match jail::fsid::as_fs_identity(uid, gid, load) {
            Ok(loaded) => loaded,
            Err(e) => return ReadReply::Unreadable(e.to_string()),
        },
        None => load(),
    };
    match loaded {
        Ok(config) => {
            let wanted: Vec<String> = request
                .keys
                .iter()
                .map(|k| config::normalize_key(k))
                .collect();
            ReadReply::Loaded(
                config
                    .entries
                    .into_iter()
                    .filter(|entry| wanted.contains(&config::normalize_key(&entry.key)))
                    .collect(),
            )
        }
        Err(e) => ReadReply::DoesNotLoad(e.to_string()),
    }
}

/// The worker's whole output, within [`WORKER_PATIENCE`] and [`MAX_REPLY`].
fn read_output(worker: &Worker) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + WORKER_PATIENCE;
    let mut output = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO);
        let mut fds = [PollFd::new(worker.output.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => {
                return Err(format!(
                    "the worker took longer than {} s",
                    WORKER_PATIENCE.as_secs()
                ))
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("poll on the worker's pipe: {e}")),
        }
        match (&worker.output).read(&mut buf) {
            Ok(0) => return Ok(output),
            Ok(n) if output.len() + n > MAX_REPLY => {
                return Err(format!("the worker's answer is over {MAX_REPLY} bytes"))
            }
            Ok(n) => output.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read from the worker's pipe: {e}")),
        }
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
