//! zmq:// — commands pushed to the emperor over ZeroMQ: `zmq://tcp://HOST:PORT`.
//!
//! The emperor binds a PULL socket. Each command is a multipart message: `touch` or `destroy`,
//! the vassal's name, then optionally its config text, uid, gid and on-demand socket. `touch`
//! with a config spawns or reloads that config; without one it names a config file in the
//! emperor's current directory (uWSGI's rule). `destroy` removes the vassal.
//!
//! Client: the pure-Rust `zeromq` crate (ZMTP 3, interoperates with libzmq; nothing to
//! install), on a current-thread tokio runtime of the monitor's own thread. The socket is
//! bound when the monitor opens, so a taken port is an error at start, not later.

use std::path::PathBuf;
use std::time::SystemTime;

use bytes::Bytes;
use tracing::warn;
use zeromq::{Socket, SocketRecv};

use super::feed::{self, FeedMonitor, FeedSender, Record, Source, Update};
use super::MonitorError;

pub(crate) fn open(spec: &str) -> Result<FeedMonitor, MonitorError> {
    let bad = |reason: String| MonitorError::BadSpec {
        spec: spec.to_owned(),
        reason,
    };
    let endpoint = spec.strip_prefix("zmq://").unwrap_or(spec);
    if !endpoint.starts_with("tcp://") {
        return Err(bad("expected zmq://tcp://HOST:PORT".into()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| bad(format!("tokio runtime: {e}")))?;
    let mut socket = zeromq::PullSocket::new();
    runtime
        .block_on(socket.bind(endpoint))
        .map_err(|e| bad(format!("bind {endpoint}: {e}")))?;
    let cwd = std::env::current_dir().map_err(|source| MonitorError::Cwd {
        spec: spec.to_owned(),
        source,
    })?;
    let label = format!("zmq://{endpoint}");
    let worker_label = label.clone();
    FeedMonitor::new(spec, label, move |out| {
        runtime.block_on(serve(socket, &worker_label, &cwd, out))
    })
}

/// Receive commands until the emperor is gone (or the socket fails, which is logged).
async fn serve(
    mut socket: zeromq::PullSocket,
    label: &str,
    cwd: &std::path::Path,
    out: FeedSender,
) {
    loop {
        let message = match socket.recv().await {
            Ok(message) => message,
            Err(e) => {
                warn!("{label}: receiving: {e}; no more commands are taken");
                return;
            }
        };
        match command(message.into_vec(), cwd) {
            Ok(update) => {
                if !out.send(update) {
                    return;
                }
            }
            Err(reason) => warn!("{label}: command ignored: {reason}"),
        }
    }
}

/// `[touch|destroy, name, config?, uid?, gid?, socket?]` -> an update.
fn command(parts: Vec<Bytes>, cwd: &std::path::Path) -> Result<Update, String> {
    let text = |i: usize| -> Result<Option<&str>, String> {
        parts
            .get(i)
            .map(|part| std::str::from_utf8(part).map_err(|_| format!("part {i} is not UTF-8")))
            .transpose()
    };
    let verb = text(0)?.unwrap_or_default();
    let name = text(1)?.ok_or_else(|| format!("{verb:?} without a vassal name"))?;
    feed::check_name(name)?;
    match verb {
        "destroy" => Ok(Update::Remove(name.to_owned())),
        "touch" => {
            let config = text(2)?.filter(|c| !c.is_empty());
            let source = match config {
                Some(config) => Source::Text(config.into()),
                None => Source::File(PathBuf::from(cwd).join(name)),
            };
            let owner = feed::owner_of(
                feed::id_field("uid", text(3)?)?,
                feed::id_field("gid", text(4)?)?,
            )?;
            Ok(Update::Upsert(Record {
                name: name.to_owned(),
                source,
                // Every touch reloads, as touching a file does.
                version: SystemTime::now(),
                owner,
                socket: text(5)?.filter(|s| !s.is_empty()).map(str::to_owned),
            }))
        }
        other => Err(format!("unknown command {other:?} (touch or destroy)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(list: &[&str]) -> Vec<Bytes> {
        list.iter().map(|s| Bytes::from(s.to_string())).collect()
    }

    #[test]
    fn touch_and_destroy_become_updates() {
        let cwd = std::path::Path::new("/srv");
        let Update::Upsert(record) = command(
            parts(&["touch", "a.ini", "[uwsgi]\n", "3001", "3001", ":4142"]),
            cwd,
        )
        .unwrap() else {
            panic!("not an upsert")
        };
        assert_eq!(record.source, Source::Text("[uwsgi]\n".into()));
        assert_eq!(record.owner, Some((3001, 3001)));
        assert_eq!(record.socket.as_deref(), Some(":4142"));
        let Update::Upsert(record) = command(parts(&["touch", "b.ini"]), cwd).unwrap() else {
            panic!("not an upsert")
        };
        assert_eq!(record.source, Source::File("/srv/b.ini".into()));
        assert!(matches!(
            command(parts(&["destroy", "a.ini"]), cwd).unwrap(),
            Update::Remove(name) if name == "a.ini"
        ));
    }

    #[test]
    fn bad_commands_say_why() {
        let cwd = std::path::Path::new("/");
        let err = |list: &[&str]| command(parts(list), cwd).err().unwrap();
        assert_eq!(err(&["touch"]), "\"touch\" without a vassal name");
        assert!(err(&["kill", "a.ini"]).contains("unknown command \"kill\""));
        assert!(err(&["touch", "a.ini", "x", "root", "0"]).contains("uid \"root\""));
        assert!(err(&["touch", "../a.ini"]).contains("must not contain '/'"));
    }
}
