//! pg:// — a fleet's vassal table in PostgreSQL: `pg://CONNINFO;QUERY[;CHANNEL]`.
//!
//! The query returns 3 to 6 columns: name (with a config extension), config text, modification
//! time (UNIX seconds), uid, gid, on-demand socket. Its whole result is compared with the last
//! one (a snapshot): a new row adds, a changed time reloads, a missing row removes. It runs
//! every `--emperor-freq` seconds and, when CHANNEL is given, at once on every
//! `NOTIFY CHANNEL`. A query that fails changes nothing: the vassals keep running, the worker
//! reconnects with a backoff and the next good query resynchronises.
//!
//! Client: the `postgres` crate (the maintained synchronous client of rust-postgres), on its
//! own thread; `simple_query` returns every column as text, so any column type that prints as
//! a number works for the time and the ids.

use std::str::FromStr;
use std::time::Duration;

use postgres::config::Host;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls, SimpleQueryMessage, SimpleQueryRow};
use tracing::{info, warn};

use super::feed::{self, Backoff, FeedMonitor, FeedSender, Record, Source, Update};
use super::MonitorError;

/// How long a connection attempt may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
enum PgError {
    #[error("cannot connect: {0}")]
    Connect(postgres::Error),
    #[error("LISTEN {channel}: {source}")]
    Listen {
        channel: String,
        source: postgres::Error,
    },
    #[error("query failed: {0}")]
    Query(postgres::Error),
    #[error("the query returns {0} columns: 3 to 6 expected (name, config, mtime[, uid, gid[, socket]])")]
    Columns(usize),
    #[error("connection lost while waiting for notifications: {0}")]
    Wait(postgres::Error),
}

/// A parsed `pg://` spec.
struct PgSpec {
    config: postgres::Config,
    query: String,
    channel: Option<String>,
    label: String,
}

pub(crate) fn open(spec: &str, freq: Duration) -> Result<FeedMonitor, MonitorError> {
    let parsed = parse(spec)?;
    FeedMonitor::new(spec, parsed.label.clone(), move |out| {
        run(parsed, freq, out)
    })
}

fn parse(spec: &str) -> Result<PgSpec, MonitorError> {
    let bad = |reason: String| MonitorError::BadSpec {
        spec: feed::shown(spec),
        reason,
    };
    let rest = spec.strip_prefix("pg://").unwrap_or(spec);
    let (conninfo, rest) = rest
        .split_once(';')
        .ok_or_else(|| bad("expected pg://CONNINFO;QUERY[;CHANNEL]".into()))?;
    let (query, channel) = split_channel(rest);
    if query.trim().is_empty() {
        return Err(bad("the query is empty".into()));
    }
    let mut config =
        postgres::Config::from_str(conninfo).map_err(|e| bad(format!("conninfo: {e}")))?;
    config.connect_timeout(CONNECT_TIMEOUT);
    let label = label_of(&config);
    Ok(PgSpec {
        config,
        query: query.to_owned(),
        channel,
        label,
    })
}

/// `QUERY;CHANNEL` -> the channel when the last part is a plain identifier (a `;` inside the
/// query itself, or a trailing one, leaves the query whole).
fn split_channel(rest: &str) -> (&str, Option<String>) {
    match rest.rsplit_once(';') {
        Some((query, tail)) if tail.trim().is_empty() => (query, None),
        Some((query, tail)) if is_identifier(tail.trim()) => {
            (query, Some(tail.trim().to_ascii_lowercase()))
        }
        _ => (rest, None),
    }
}

fn is_identifier(word: &str) -> bool {
    let mut chars = word.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `pg://HOST:PORT/DBNAME`: what logs and config names show (never the password).
fn label_of(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string().replace('/', "_"),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("pg://{host}:{port}/{db}")
}

/// The worker: connect, query, wait for a notification or the period, query again; on any
/// failure, say so and try again later. Returns when the emperor is gone.
fn run(spec: PgSpec, freq: Duration, out: FeedSender) {
    let mut backoff = Backoff::new(freq);
    loop {
        match session(&spec, freq, &out, &mut backoff) {
            Ok(()) => return,
            Err(e) => {
                let wait = backoff.next();
                warn!(
                    "{}: {e}; the vassals keep running; trying again in {} ms",
                    spec.label,
                    wait.as_millis()
                );
                std::thread::sleep(wait);
            }
        }
    }
}

fn session(
    spec: &PgSpec,
    freq: Duration,
    out: &FeedSender,
    backoff: &mut Backoff,
) -> Result<(), PgError> {
    let mut client = spec.config.connect(NoTls).map_err(PgError::Connect)?;
    if let Some(channel) = &spec.channel {
        client
            .batch_execute(&format!("LISTEN \"{channel}\""))
            .map_err(|source| PgError::Listen {
                channel: channel.clone(),
                source,
            })?;
    }
    match &spec.channel {
        Some(channel) => info!("{}: connected, listening on {channel}", spec.label),
        None => info!("{}: connected", spec.label),
    }
    let mut first = true;
    loop {
        let update = query(&mut client, spec)?;
        if first {
            // Only a query that worked proves the store is back.
            backoff.reset();
            first = false;
        }
        if !out.send(update) {
            return Ok(());
        }
        wait(&mut client, freq)?;
    }
}

/// Until a notification arrives (then also every other one already queued: a burst of
/// changes costs one query) or `freq` passes.
fn wait(client: &mut Client, freq: Duration) -> Result<(), PgError> {
    let mut notifications = client.notifications();
    if notifications
        .timeout_iter(freq)
        .next()
        .map_err(PgError::Wait)?
        .is_some()
    {
        while notifications
            .iter()
            .next()
            .map_err(PgError::Wait)?
            .is_some()
        {}
    }
    Ok(())
}

fn query(client: &mut Client, spec: &PgSpec) -> Result<Update, PgError> {
    let messages = client.simple_query(&spec.query).map_err(PgError::Query)?;
    let mut records = Vec::new();
    let mut keep = Vec::new();
    for message in messages {
        let SimpleQueryMessage::Row(row) = message else {
            continue;
        };
        if !(3..=6).contains(&row.len()) {
            return Err(PgError::Columns(row.len()));
        }
        match record_of(&row) {
            Ok(record) => records.push(record),
            Err(reason) => {
                let name = row.get(0).unwrap_or("NULL");
                warn!("{}: row {name:?}: {reason}: left as it was", spec.label);
                keep.extend(row.get(0).map(str::to_owned));
            }
        }
    }
    Ok(Update::Snapshot { records, keep })
}

fn record_of(row: &SimpleQueryRow) -> Result<Record, String> {
    let field = |i: usize| if i < row.len() { row.get(i) } else { None };
    let name = field(0).ok_or("the name is NULL")?;
    feed::check_name(name)?;
    let config = field(1).ok_or("the config is NULL")?;
    let version = feed::unix_time(field(2).ok_or("the modification time is NULL")?)?;
    let owner = feed::owner_of(
        feed::id_field("uid", field(3))?,
        feed::id_field("gid", field(4))?,
    )?;
    Ok(Record {
        name: name.to_owned(),
        source: Source::Text(config.into()),
        version,
        owner,
        socket: field(5).filter(|s| !s.trim().is_empty()).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_splits_conninfo_query_and_channel() {
        let spec = parse("pg://host=db.example port=6000 dbname=fleet user=e password=x;SELECT name, config, ts FROM vassals;vassals_changed").unwrap();
        assert_eq!(spec.query, "SELECT name, config, ts FROM vassals");
        assert_eq!(spec.channel.as_deref(), Some("vassals_changed"));
        assert_eq!(spec.label, "pg://db.example:6000/fleet");
        let spec = parse("pg://host=h;SELECT 'a;b', c, d FROM t;").unwrap();
        assert_eq!(spec.query, "SELECT 'a;b', c, d FROM t");
        assert_eq!(spec.channel, None);
        let spec = parse("pg://host=h;SELECT 'a;b c', d FROM t").unwrap();
        assert_eq!(spec.query, "SELECT 'a;b c', d FROM t");
    }

    #[test]
    fn bad_specs_are_refused_without_showing_the_password() {
        let err = parse("pg://host=h password=s3cret").err().unwrap();
        assert_eq!(
            err.to_string(),
            "pg://host=h password=***: expected pg://CONNINFO;QUERY[;CHANNEL]"
        );
        assert!(parse("pg://host=h;  ").is_err());
        let err = parse("pg://nonsense password=s3cret;SELECT 1")
            .err()
            .unwrap();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
