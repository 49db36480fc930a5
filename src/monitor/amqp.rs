//! amqp:// — configs announced on the `uwsgi.emperor` fanout exchange:
//! `amqp://[USER:PASSWORD@]HOST[:PORT][/VHOST]` (guest:guest, 5672 and `/` by default).
//!
//! Every emperor binds a queue of its own (exclusive, server-named) to the exchange, so every
//! emperor of a fleet hears every message. A message is, as uWSGI's seed describes it:
//! - routing key empty, body an absolute path of a config file: spawn or reload that file (it
//!   goes when the file does);
//! - routing key empty, body an `http://` or `https://` URL ending in a config name: fetch
//!   it; a 200 spawns or reloads its text, any other status removes the vassal;
//! - routing key a config name: the body is that config's text; an empty body removes it.
//!
//! The broker going away stops nothing: the worker reconnects with a backoff and carries on
//! with the vassals it knows (messages published while it was away are not seen: a fanout
//! exchange keeps nothing for an absent consumer).
//!
//! Client: `amqprs` (maintained, pure Rust, tokio-native), on a current-thread runtime of the
//! monitor's own thread; HTTP: `ureq` (blocking, small; https:// checked against the
//! Mozilla roots that webpki-roots bundles).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use amqprs::channel::{
    BasicConsumeArguments, ExchangeDeclareArguments, QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use tracing::{info, warn};

use super::feed::{self, Backoff, FeedMonitor, FeedSender, Record, Source, Update};
use super::MonitorError;

/// The exchange every emperor listens on (uWSGI's name).
const EXCHANGE: &str = "uwsgi.emperor";
/// Seconds of silence after which the broker counts as gone.
const HEARTBEAT: u16 = 10;
/// How long an http:// config may take to arrive.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
enum AmqpError {
    #[error("{what}: {source}")]
    Broker {
        what: &'static str,
        source: amqprs::error::Error,
    },
    #[error("the connection to the broker was lost")]
    Lost,
}

fn broker(what: &'static str) -> impl FnOnce(amqprs::error::Error) -> AmqpError {
    move |source| AmqpError::Broker { what, source }
}

pub(crate) fn open(spec: &str, freq: Duration) -> Result<FeedMonitor, MonitorError> {
    let bad = |reason: String| MonitorError::BadSpec {
        spec: feed::shown(spec),
        reason,
    };
    let mut args = OpenConnectionArguments::try_from(spec).map_err(|e| bad(format!("{e}")))?;
    args.heartbeat(HEARTBEAT);
    let label = feed::shown(spec);
    let worker_label = label.clone();
    FeedMonitor::new(
        spec,
        label,
        move |out| match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(run(args, &worker_label, freq, out)),
            Err(e) => warn!("{worker_label}: tokio runtime: {e}"),
        },
    )
}

/// Connect, consume, and on any failure say so and connect again later.
async fn run(args: OpenConnectionArguments, label: &str, freq: Duration, out: FeedSender) {
    let mut backoff = Backoff::new(freq);
    loop {
        match session(&args, label, &out, &mut backoff).await {
            Ok(()) => return,
            Err(e) => {
                let wait = backoff.next();
                warn!(
                    "{label}: {e}; the vassals keep running; trying again in {} ms",
                    wait.as_millis()
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}

async fn session(
    args: &OpenConnectionArguments,
    label: &str,
    out: &FeedSender,
    backoff: &mut Backoff,
) -> Result<(), AmqpError> {
    let connection = Connection::open(args)
        .await
        .map_err(broker("cannot connect"))?;
    let channel = connection
        .open_channel(None)
        .await
        .map_err(broker("opening a channel"))?;
    channel
        .exchange_declare(ExchangeDeclareArguments::new(EXCHANGE, "fanout"))
        .await
        .map_err(broker("declaring the exchange uwsgi.emperor"))?;
    let (queue, _, _) = channel
        .queue_declare(QueueDeclareArguments::exclusive_server_named())
        .await
        .map_err(broker("declaring this emperor's queue"))?
        .ok_or(AmqpError::Lost)?;
    channel
        .queue_bind(QueueBindArguments::new(&queue, EXCHANGE, ""))
        .await
        .map_err(broker("binding this emperor's queue"))?;
    let mut consume = BasicConsumeArguments::new(&queue, "");
    consume.no_ack = true;
    let (_, mut messages) = channel
        .basic_consume_rx(consume)
        .await
        .map_err(broker("consuming"))?;
    info!("{label}: connected, consuming {EXCHANGE}");
    backoff.reset();
    loop {
        let message = tokio::select! {
            message = messages.recv() => message,
            _ = connection.listen_network_io_failure() => None,
        };
        let Some(message) = message else {
            return Err(AmqpError::Lost);
        };
        let key = message
            .deliver
            .as_ref()
            .map(|d| d.routing_key().to_owned())
            .unwrap_or_default();
        let body = message.content.unwrap_or_default();
        match interpret(&key, &body) {
            Ok(update) => {
                if !out.send(update) {
                    return Ok(());
                }
            }
            Err(reason) => warn!("{label}: message ignored: {reason}"),
        }
    }
}

/// A message -> an update, as the module doc says.
fn interpret(key: &str, body: &[u8]) -> Result<Update, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_string())?;
    if !key.is_empty() {
        feed::check_name(key).map_err(|e| format!("routing key: {e}"))?;
        if text.is_empty() {
            return Ok(Update::Remove(key.to_owned()));
        }
        return Ok(Update::Upsert(text_record(key, text)));
    }
    let body = text.trim();
    if body.starts_with("http://") || body.starts_with("https://") {
        return fetch(body);
    }
    let path = Path::new(body);
    if !path.is_absolute() {
        return Err(format!(
            "{body:?}: neither an absolute config path nor an http:// URL"
        ));
    }
    let name = body.to_owned();
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    feed::check_name(file_name)?;
    if !path.is_file() {
        // As for files in a directory: a config that is not there is no vassal.
        return Ok(Update::Remove(name));
    }
    Ok(Update::Upsert(Record {
        name,
        source: Source::File(PathBuf::from(body)),
        version: SystemTime::now(),
        owner: None,
        socket: None,
    }))
}

/// A config given as text in a message: every message reloads it.
fn text_record(name: &str, text: &str) -> Record {
    Record {
        name: name.to_owned(),
        source: Source::Text(text.into()),
        version: SystemTime::now(),
        owner: None,
        socket: None,
    }
}

/// GET an http(s):// config: 200 -> its text, under the URL's last path segment as its name;
/// any other status -> removed.
fn fetch(url: &str) -> Result<Update, String> {
    let name = url
        .split(['?', '#'])
        .next()
        .and_then(|u| u.rsplit('/').next())
        .unwrap_or("");
    feed::check_name(name).map_err(|e| format!("{url}: {e}"))?;
    let agent = ureq::AgentBuilder::new().timeout(FETCH_TIMEOUT).build();
    match agent.get(url).call() {
        Ok(response) if response.status() == 200 => {
            let text = response
                .into_string()
                .map_err(|e| format!("{url}: reading the body: {e}"))?;
            Ok(Update::Upsert(text_record(name, &text)))
        }
        Ok(response) => {
            info!("{url}: status {}: removed", response.status());
            Ok(Update::Remove(name.to_owned()))
        }
        Err(ureq::Error::Status(status, _)) => {
            info!("{url}: status {status}: removed");
            Ok(Update::Remove(name.to_owned()))
        }
        Err(e) => Err(format!("{url}: {e}: nothing changed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_key_and_body_decide_what_a_message_means() {
        let Update::Upsert(record) = interpret("app.ini", b"[uwsgi]\n").unwrap() else {
            panic!("not an upsert")
        };
        assert_eq!(record.source, Source::Text("[uwsgi]\n".into()));
        assert!(matches!(interpret("app.ini", b"").unwrap(), Update::Remove(n) if n == "app.ini"));
        assert!(matches!(
            interpret("", b"/no/such/app.ini").unwrap(),
            Update::Remove(n) if n == "/no/such/app.ini"
        ));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.xml");
        std::fs::write(&file, "<uwsgi/>").unwrap();
        let Update::Upsert(record) = interpret("", file.to_str().unwrap().as_bytes()).unwrap()
        else {
            panic!("not an upsert")
        };
        assert_eq!(record.source, Source::File(file));
    }

    #[test]
    fn bad_messages_say_why() {
        for (key, body, why) in [
            ("", "relative.ini", "neither"),
            ("x.txt", "a", "routing key"),
            ("", "/etc/passwd", "config extension"),
            ("", "http://h/no-extension", "config extension"),
        ] {
            let err = interpret(key, body.as_bytes()).unwrap_err();
            assert!(err.contains(why), "{key:?} {body:?}: {err}");
        }
    }

    #[test]
    fn a_bad_uri_is_an_error_at_start_without_its_password() {
        let err = open("amqp://u:s3cret@broker:notaport", Duration::from_secs(1))
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("amqp://u:***@broker:notaport: "),
            "{err}"
        );
    }
}
