//! The reader's side: take the emperor's identity, say it is ready, then answer one request at
//! a time from its workers (see the module's comment).

use super::frame::{read_frame, write_frame};
use super::workers::Workers;
use super::{MAX_REQUEST, READER_FD, READY, WORKER_CPU_SECONDS};
use crate::helper_identity::EmperorIdentity;
use jail::worker::WorkerLimits;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use tracing::error;

/// Serve the emperor on the inherited socket until it closes it, as `identity` (the
/// unprivileged emperor's) when given; each worker may map `memory_mib` MiB more than it
/// started with.
pub fn serve(identity: Option<EmperorIdentity>, memory_mib: u64) -> ExitCode {
    let Some(socket) = crate::helper_identity::begin_helper("config reader", READER_FD, identity)
    else {
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
    let mut workers = Workers::new(limits);
    workers.prepare();
    loop {
        let request = match read_frame(&mut socket, MAX_REQUEST) {
            Ok(Some(request)) => request,
            Ok(None) => {
                workers.finish();
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                error!("config reader: reading a request: {e}");
                return ExitCode::FAILURE;
            }
        };
        let reply = serde_json::to_vec(&workers.ask(&request)).expect("a reply serializes");
        if let Err(e) = write_frame(&mut socket, &reply) {
            error!("config reader: answering: {e}");
            return ExitCode::FAILURE;
        }
        // While the emperor acts on the answer, not while it waits for the next one.
        workers.prepare();
    }
}
