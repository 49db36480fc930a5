//! The refresh thread: every interval, one stats document and, when the emperor is on this
//! host, its vassals' memory and CPU from /proc. It sends each result to the view, which so
//! never waits on a slow server; it ends when the view drops its [`Refresher`].

use super::client::{FetchError, StatsAddr};
use super::document::Document;
use super::usage::{Sampler, Usage};
use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long one fetch may take (connect, then each read).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// One refresh that worked.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub document: Document,
    /// Keyed by runtime pid; empty when the emperor is not on this host.
    pub usage: HashMap<i32, Usage>,
    /// /proc here shows the emperor's processes.
    pub local: bool,
    /// When it was taken, unix seconds (uptimes are counted to it).
    pub taken_unix: u64,
}

/// Why a refresh showed nothing.
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("the answer is not a stats document: {0}")]
    NotStats(#[from] serde_json::Error),
}

pub type Refresh = Result<Snapshot, Unreachable>;

/// The view's end: refreshes arrive on `updates`; dropping it stops the thread.
pub struct Refresher {
    pub updates: Receiver<Refresh>,
    _stop: Sender<()>,
}

/// Start refreshing from `addr` every `interval`, the first one at once.
pub fn start(addr: StatsAddr, interval: Duration) -> Refresher {
    let (send, updates) = mpsc::channel();
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut sampler = Sampler::default();
        loop {
            if send.send(refresh(&addr, &mut sampler)).is_err() {
                return;
            }
            match stopped.recv_timeout(interval) {
                Err(RecvTimeoutError::Timeout) => continue,
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    });
    Refresher {
        updates,
        _stop: stop,
    }
}

fn refresh(addr: &StatsAddr, sampler: &mut Sampler) -> Refresh {
    let fetched = addr.fetch(FETCH_TIMEOUT)?;
    let document = Document::parse(&fetched.body)?;
    let usage = if fetched.local {
        let runtimes: Vec<i32> = document
            .vassals
            .iter()
            .filter(|v| v.running())
            .map(|v| v.pid)
            .collect();
        sampler.sample(&runtimes)
    } else {
        HashMap::new()
    };
    Ok(Snapshot {
        document,
        usage,
        local: fetched.local,
        taken_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}
