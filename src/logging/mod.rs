//! Log lines go to stderr; `EMPEROR_LOG` (or `RUST_LOG`) sets the filter, `info` by default.
//! The emperor and its runtimes log the same way, in one of three formats
//! (`EMPEROR_LOG_FORMAT`, which `--log-format` sets):
//! - `text`: a timestamp, the level, the message and its fields (the default on a terminal or
//!   a file);
//! - `journal`: chosen by default when stderr is the journal stream systemd named in
//!   `JOURNAL_STREAM`. Each record then goes to journald's socket in its native protocol, with
//!   the vassal it is about as a field (`journalctl VASSAL=app.ini`, see [`journal`]); where
//!   that socket cannot be reached (or stderr is not the journal), a line on stderr with no
//!   timestamp (journald adds its own) and a syslog priority prefix (`<3>` error to `<7>`
//!   debug) that journald reads;
//! - `json`: one JSON object per line, for log shippers.

pub mod journal;

use std::fmt;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The variable that carries the format to the emperor's runtimes.
pub const FORMAT_VARIABLE: &str = "EMPEROR_LOG_FORMAT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Journal,
    Json,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "text" => Some(Format::Text),
            "journal" => Some(Format::Journal),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// `EMPEROR_LOG_FORMAT` when it names one, else `journal` when stderr is the journal.
    fn from_env() -> Format {
        std::env::var(FORMAT_VARIABLE)
            .ok()
            .and_then(|name| Format::parse(&name))
            .unwrap_or_else(|| match stderr_is_the_journal() {
                true => Format::Journal,
                false => Format::Text,
            })
    }
}

pub fn init() {
    let filter = std::env::var("EMPEROR_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_string());
    let format = Format::from_env();
    if format == Format::Journal && stderr_is_the_journal() {
        if let Ok(socket) = journal::Journal::connect_default() {
            use tracing_subscriber::layer::SubscriberExt;
            use tracing_subscriber::util::SubscriberInitExt;
            tracing_subscriber::registry()
                .with(tracing_subscriber::EnvFilter::new(filter))
                .with(journal::JournalLayer::new(socket))
                .init();
            return;
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false);
    match format {
        Format::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        Format::Journal => builder
            .with_ansi(false)
            .event_format(Priority(
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_level(false)
                    .with_target(false),
            ))
            .init(),
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// systemd sets `JOURNAL_STREAM=DEV:INODE` for a service whose stderr is the journal; a
/// process whose stderr was redirected since has other numbers.
fn stderr_is_the_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&std::io::stderr()))
    else {
        return false;
    };
    dev.parse::<u64>().is_ok_and(|d| d == stat.st_dev)
        && ino.parse::<u64>().is_ok_and(|i| i == stat.st_ino)
}

/// A line format with the syslog priority of its level in front, as journald reads it.
struct Priority<F>(F);

impl<S, N, F> FormatEvent<S, N> for Priority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let priority = journal::priority(event.metadata().level());
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}
