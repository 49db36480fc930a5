//! What a worker does: load one config after another as their runtimes will, each answered
//! with the options asked for, until its input ends.

use super::frame::{read_frame, write_frame};
use super::{ReadReply, ReadRequest, MAX_REQUEST};
use crate::config::{self, LoadOptions};
use std::fs::File;

/// Serve requests from `input` with replies on `output` until `input` ends.
pub fn serve_requests(input: &mut File, output: &mut File) {
    while let Ok(Some(request)) = read_frame(input, MAX_REQUEST) {
        let reply = match serde_json::from_slice::<ReadRequest>(&request) {
            Ok(request) => load(&request),
            Err(e) => ReadReply::WorkerFailed(format!("a request that does not parse: {e}")),
        };
        let reply = serde_json::to_vec(&reply).expect("a reply serializes");
        if write_frame(output, &reply).is_err() {
            // The reader stopped listening: it has its reason already.
            return;
        }
    }
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
