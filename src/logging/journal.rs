//! journald's native protocol: under systemd every log record goes to journald's socket as one
//! datagram of fields (`MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER`, and `VASSAL` / `TENANT`
//! when the record is about a vassal), so `journalctl -u emperor VASSAL=app.ini` selects one
//! vassal's lines, its payload's output included. A record too large for a datagram goes as a
//! sealed memfd, as the protocol allows (systemd's "Native Journal Protocol").
//!
//! The socket is connected once, when logging starts: a runtime keeps reaching journald after
//! it has entered its jail. A record that cannot be sent is written to stderr (the journal
//! stream) instead, with its priority prefix: no line is lost.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// journald's socket for native messages.
pub const DEFAULT_SOCKET: &str = "/run/systemd/journal/socket";
/// Names another socket than [`DEFAULT_SOCKET`]: for tests, which listen on a socket of their
/// own. The emperor hands it to its runtimes.
pub const SOCKET_VARIABLE: &str = "EMPEROR_JOURNAL_SOCKET";

/// Where the socket is parked: above every fd a launch maps into a child, so that a copy of
/// this process made by the clone server ([`jail::launch::Launch::fork`]) keeps it at its
/// number and goes on logging through it.
const SOCKET_FLOOR: RawFd = 64;
/// The socket's fd while connected (-1: none).
static SOCKET_FD: AtomicI32 = AtomicI32::new(-1);

/// The journal socket's fd, when this process logs to journald: a copy of the process keeps
/// it (see [`SOCKET_FLOOR`]).
pub fn socket_fd() -> Option<RawFd> {
    Some(SOCKET_FD.load(Ordering::Relaxed)).filter(|&fd| fd >= 0)
}

/// A datagram socket connected to `path`, parked above [`SOCKET_FLOOR`].
fn connected(path: &Path) -> io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    socket.connect(path)?;
    let socket = UnixDatagram::from(jail::fd::park_above(socket.into(), SOCKET_FLOOR));
    SOCKET_FD.store(socket.as_raw_fd(), Ordering::Relaxed);
    Ok(socket)
}

/// The vassal (and its tenant) a runtime serves: every record of the process is about it.
static PROCESS_VASSAL: OnceLock<(String, Option<String>)> = OnceLock::new();

/// Tags every later record of this process with `VASSAL=name` (and `TENANT=tenant`), unless
/// the record names a vassal itself. A vassal runtime calls it once it knows its vassal.
pub fn set_process_vassal(name: String, tenant: Option<String>) {
    let _ = PROCESS_VASSAL.set((name, tenant));
}

/// journald's syslog priority of a level.
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// A datagram socket connected to journald's.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    socket: Mutex<UnixDatagram>,
}

impl Journal {
    /// Connects to `EMPEROR_JOURNAL_SOCKET`, else [`DEFAULT_SOCKET`].
    pub fn connect_default() -> io::Result<Journal> {
        let path = std::env::var_os(SOCKET_VARIABLE)
            .map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from);
        Journal::connect(&path)
    }

    pub fn connect(path: &Path) -> io::Result<Journal> {
        let socket = connected(path)?;
        Ok(Journal {
            path: path.to_path_buf(),
            socket: Mutex::new(socket),
        })
    }

    /// Sends one record (fields encoded by [`encode_field`]): as a datagram, or as a sealed
    /// memfd when it is too large for one. Connects again once if journald went away and came
    /// back (a restarted journald has a new socket at the same path).
    pub fn send(&self, record: &[u8]) -> io::Result<()> {
        let mut socket = self.socket.lock().unwrap_or_else(|e| e.into_inner());
        match send_on(&socket, record) {
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ECONNREFUSED | libc::ENOTCONN | libc::ECONNRESET)
                ) =>
            {
                *socket = connected(&self.path)?;
                send_on(&socket, record)
            }
            result => result,
        }
    }
}

fn send_on(socket: &UnixDatagram, record: &[u8]) -> io::Result<()> {
    match socket.send(record) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EMSGSIZE | libc::ENOBUFS)) => {
            send_as_memfd(socket, record)
        }
        Err(e) => Err(e),
    }
}

/// The protocol's way for a large record: the record in a sealed memfd, passed with
/// SCM_RIGHTS in a datagram of its own with no payload.
fn send_as_memfd(socket: &UnixDatagram, record: &[u8]) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    let memfd = jail::memfd::sealed("journal-record", record)
        .map_err(|e| io::Error::from_raw_os_error(e.errno as i32))?;
    let fds = [memfd.as_raw_fd()];
    sendmsg::<UnixAddr>(
        socket.as_raw_fd(),
        &[],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map(drop)
    .map_err(|e| io::Error::from_raw_os_error(e as i32))
}

/// Appends one field: `KEY=value\n`, or for a value with a newline `KEY\n`, its length as a
/// little-endian u64, the value and `\n`.
pub fn encode_field(record: &mut Vec<u8>, key: &str, value: &[u8]) {
    record.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        record.push(b'\n');
        record.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        record.push(b'=');
    }
    record.extend_from_slice(value);
    record.push(b'\n');
}

/// The fields of a record made by [`encode_field`] (for tests: what journald would read); None
/// for a malformed one.
pub fn decode_record(mut record: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut fields = Vec::new();
    while !record.is_empty() {
        let end = record.iter().position(|&b| b == b'\n' || b == b'=')?;
        let key = String::from_utf8(record[..end].to_vec()).ok()?;
        let rest = &record[end + 1..];
        let (value, next) = if record[end] == b'=' {
            let stop = rest.iter().position(|&b| b == b'\n')?;
            (&rest[..stop], stop + 1)
        } else {
            let len = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?) as usize;
            let value = rest.get(8..8 + len)?;
            (rest.get(8 + len) == Some(&b'\n')).then_some(())?;
            (value, 9 + len)
        };
        fields.push((key, value.to_vec()));
        record = &rest[next..];
    }
    Some(fields)
}

/// The tracing layer that sends each event to journald. Its `MESSAGE` reads as the stream
/// format's line (`vassal{config=...}:payload: LINE`); the vassal it is about is taken from a
/// `vassal` field of the event or a span, else the runtime's own (see
/// [`set_process_vassal`]), and its tenant likewise from a `tenant` field.
pub struct JournalLayer {
    journal: Journal,
    identifier: String,
}

impl JournalLayer {
    pub fn new(journal: Journal) -> Self {
        let identifier = std::env::args_os()
            .next()
            .and_then(|arg0| {
                Path::new(&arg0)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "emperor".to_string());
        JournalLayer {
            journal,
            identifier,
        }
    }

    /// The record of one event: its fields in journald's encoding.
    fn record(
        &self,
        priority: u8,
        message: &str,
        vassal: Option<&str>,
        tenant: Option<&str>,
    ) -> Vec<u8> {
        let mut record = Vec::with_capacity(message.len() + 128);
        encode_field(&mut record, "MESSAGE", message.as_bytes());
        encode_field(&mut record, "PRIORITY", priority.to_string().as_bytes());
        encode_field(&mut record, "SYSLOG_IDENTIFIER", self.identifier.as_bytes());
        if let Some(vassal) = vassal {
            encode_field(&mut record, "VASSAL", vassal.as_bytes());
        }
        if let Some(tenant) = tenant {
            encode_field(&mut record, "TENANT", tenant.as_bytes());
        }
        record
    }
}

/// A span's fields as the stream format shows them, and the vassal and tenant among them.
#[derive(Default)]
struct Fields {
    message: String,
    others: String,
    vassal: Option<String>,
    tenant: Option<String>,
}

impl Fields {
    fn add(&mut self, field: &Field, value: String, shown: String) {
        match field.name() {
            "message" => {
                self.message = value;
                return;
            }
            "vassal" => self.vassal = Some(value),
            "tenant" => self.tenant = Some(value),
            _ => {}
        }
        if !self.others.is_empty() {
            self.others.push(' ');
        }
        self.others.push_str(&format!("{}={shown}", field.name()));
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, value.to_string(), format!("{value:?}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let shown = format!("{value:?}");
        self.add(field, shown.clone(), shown);
    }
}

impl<S> Layer<S> for JournalLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<Fields>() {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let process = PROCESS_VASSAL.get();
        let mut vassal = process.map(|(name, _)| name.clone());
        let mut tenant = process.and_then(|(_, tenant)| tenant.clone());
        // The spans, outermost first, as the stream format shows them: `name{fields}:`.
        let mut message = String::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                message.push_str(span.name());
                if let Some(fields) = span.extensions().get::<Fields>() {
                    if !fields.others.is_empty() {
                        message.push_str(&format!("{{{}}}", fields.others));
                    }
                    vassal = fields.vassal.clone().or(vassal);
                    tenant = fields.tenant.clone().or(tenant);
                }
                message.push(':');
            }
            message.push(' ');
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        message.push_str(&fields.message);
        if !fields.others.is_empty() {
            if !fields.message.is_empty() {
                message.push(' ');
            }
            message.push_str(&fields.others);
        }
        let vassal = fields.vassal.or(vassal);
        let tenant = fields.tenant.or(tenant);
        let priority = priority(event.metadata().level());
        let record = self.record(priority, &message, vassal.as_deref(), tenant.as_deref());
        if self.journal.send(&record).is_err() {
            let _ = writeln!(io::stderr(), "<{priority}>{message}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    use std::io::IoSliceMut;

    #[test]
    fn a_value_with_a_newline_gets_a_length_and_others_an_equals_sign() {
        let mut record = Vec::new();
        encode_field(&mut record, "MESSAGE", b"two\nlines");
        encode_field(&mut record, "PRIORITY", b"6");
        let mut expected = b"MESSAGE\n".to_vec();
        expected.extend_from_slice(&9u64.to_le_bytes());
        expected.extend_from_slice(b"two\nlines\nPRIORITY=6\n");
        assert_eq!(record, expected);
        assert_eq!(
            decode_record(&record).unwrap(),
            [
                ("MESSAGE".to_string(), b"two\nlines".to_vec()),
                ("PRIORITY".to_string(), b"6".to_vec())
            ]
        );
    }

    /// A socket listening as journald's, in a temp dir at `journal.sock`, and a journal
    /// connected to it.
    fn listening_journal() -> (tempfile::TempDir, UnixDatagram, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        let journal = Journal::connect(&path).unwrap();
        (dir, listener, journal)
    }

    #[test]
    fn a_record_too_large_for_a_datagram_goes_as_a_sealed_memfd() {
        let (_dir, listener, journal) = listening_journal();

        journal.send(b"MESSAGE=small\n").unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"MESSAGE=small\n");

        // Far above any datagram the socket's send buffer takes.
        let mut large = Vec::new();
        encode_field(&mut large, "MESSAGE", &vec![b'x'; 4 << 20]);
        journal.send(&large).unwrap();
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<UnixAddr>(
            listener.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .unwrap();
        assert_eq!(msg.bytes, 0, "no payload beside the fd");
        let fd = msg
            .cmsgs()
            .unwrap()
            .find_map(|c| match c {
                ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                _ => None,
            })
            .expect("an fd");
        let seals = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GET_SEALS).unwrap();
        let wanted = nix::fcntl::SealFlag::F_SEAL_SEAL
            | nix::fcntl::SealFlag::F_SEAL_SHRINK
            | nix::fcntl::SealFlag::F_SEAL_GROW
            | nix::fcntl::SealFlag::F_SEAL_WRITE;
        assert!(nix::fcntl::SealFlag::from_bits_truncate(seals).contains(wanted));
        let text = std::fs::read(format!("/proc/self/fd/{fd}")).unwrap();
        nix::unistd::close(fd).unwrap();
        assert_eq!(text, large);
    }

    #[test]
    fn a_restarted_journal_is_connected_again() {
        let (dir, first, journal) = listening_journal();
        let path = dir.path().join("journal.sock");
        drop(first);
        std::fs::remove_file(&path).unwrap();
        let second = UnixDatagram::bind(&path).unwrap();
        journal.send(b"MESSAGE=again\n").unwrap();
        let mut buf = [0u8; 64];
        let n = second.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"MESSAGE=again\n");
    }
}
