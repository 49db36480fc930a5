//! A small HTTP/1.0 client for many ports at once, for the uWSGI-application workload: one
//! request in flight per port at most, each on a non-blocking socket, all driven by one
//! poll(2) loop in the benchmark's thread. A request that waits (in the backlog of a socket
//! whose server does not accept yet, or behind a reloading worker) holds up only its own
//! port. Client sockets close with SO_LINGER 0 (a reset, no TIME_WAIT): a request loop of
//! thousands of connections a second leaves no sockets behind to fill the port range.

use crate::interrupt;
use crate::session::BenchResult;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    connect, getsockopt, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

const REQUEST: &[u8] = b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";
/// The longest one poll(2) waits, so that new requests and deadlines are seen in time.
const POLL_SLICE: Duration = Duration::from_millis(5);

/// Why a request did not get a 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Nothing listens on the port.
    Refused,
    /// The connection was reset, or closed before a whole answer.
    Reset,
    /// No answer within the request's patience.
    Timeout,
    /// An answer other than 200 (its status line).
    Status(String),
    Other(String),
}

impl Failure {
    /// A short name for counts in the report.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Reset => "reset",
            Failure::Timeout => "timeout",
            Failure::Status(_) => "not 200",
            Failure::Other(_) => "other",
        }
    }
}

/// What to do with a port after an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Ask it again after this long.
    After(Duration),
    /// Leave it alone.
    Done,
}

/// One port's request in flight.
struct InFlight {
    stream: TcpStream,
    started: Instant,
    connected: bool,
    sent: usize,
    answer: Vec<u8>,
}

enum Slot {
    Idle(Instant),
    Busy(InFlight),
    Done,
}

/// Ask every port in `ports` (`GET /`), first all at once, then as `on_answer` says, until
/// every port is done or `deadline` passes; returns how many ports were not done. `connect_only`
/// makes a connection the whole request: it is an answer ("" as body) as soon as it is
/// established, and closed at once (whether a port still listens). A request without an
/// answer after `patience` is a timeout.
pub fn drive(
    ports: &[u16],
    patience: Duration,
    deadline: Instant,
    connect_only: bool,
    mut on_answer: impl FnMut(Answer) -> Next,
) -> BenchResult<usize> {
    let start = Instant::now();
    let mut slots: Vec<Slot> = ports.iter().map(|_| Slot::Idle(start)).collect();
    loop {
        interrupt::check()?;
        let now = Instant::now();
        let mut finished: Vec<(usize, Result<String, Failure>, Duration)> = Vec::new();
        for (i, slot) in slots.iter_mut().enumerate() {
            if matches!(slot, Slot::Idle(at) if *at <= now) {
                match begin(ports[i]) {
                    Ok(request) => *slot = Slot::Busy(request),
                    Err(failure) => finished.push((i, Err(failure), Duration::ZERO)),
                }
            }
        }
        for (i, answer, took) in finished.drain(..) {
            slots[i] = next_slot(&mut on_answer, i, answer, Instant::now(), took);
        }
        let remaining = slots.iter().filter(|s| !matches!(s, Slot::Done)).count();
        if remaining == 0 || now >= deadline {
            return Ok(remaining);
        }
        let busy: Vec<usize> = (0..slots.len())
            .filter(|&i| matches!(slots[i], Slot::Busy(_)))
            .collect();
        let wait = slots
            .iter()
            .filter_map(|s| match s {
                Slot::Idle(at) => Some(at.saturating_duration_since(now)),
                _ => None,
            })
            .min()
            .unwrap_or(POLL_SLICE)
            .min(POLL_SLICE);
        let ready: Vec<(usize, PollFlags)> = {
            let mut fds: Vec<PollFd> = busy
                .iter()
                .map(|&i| {
                    let Slot::Busy(request) = &slots[i] else {
                        unreachable!()
                    };
                    PollFd::new(request.stream.as_fd(), request.wants())
                })
                .collect();
            let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::ZERO);
            if fds.is_empty() {
                std::thread::sleep(wait);
            } else {
                match poll(&mut fds, timeout) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(format!("poll: {e}")),
                }
            }
            busy.iter()
                .zip(&fds)
                .map(|(&i, fd)| (i, fd.revents().unwrap_or(PollFlags::empty())))
                .collect()
        };
        let now = Instant::now();
        for (i, revents) in ready {
            let Slot::Busy(request) = &mut slots[i] else {
                continue;
            };
            let outcome = if revents.is_empty() {
                (now - request.started >= patience).then_some(Err(Failure::Timeout))
            } else {
                request.advance(connect_only)
            };
            if let Some(answer) = outcome {
                finished.push((i, answer, now - request.started));
            }
        }
        for (i, answer, took) in finished {
            // Dropping the request closes its socket (a reset: SO_LINGER 0).
            slots[i] = next_slot(&mut on_answer, i, answer, now, took);
        }
    }
}

/// One request's outcome, as `drive` hands it over.
pub struct Answer<'a> {
    /// The port's index in `ports`.
    pub index: usize,
    /// The body of a 200, or why there was none.
    pub result: Result<&'a str, Failure>,
    /// When the outcome was seen.
    pub at: Instant,
    /// How long the request took (zero when refused at once).
    pub took: Duration,
}

fn next_slot(
    on_answer: &mut impl FnMut(Answer) -> Next,
    index: usize,
    answer: Result<String, Failure>,
    at: Instant,
    took: Duration,
) -> Slot {
    let answer = Answer {
        index,
        result: answer.as_deref().map_err(Clone::clone),
        at,
        took,
    };
    match on_answer(answer) {
        Next::After(wait) => Slot::Idle(at + wait),
        Next::Done => Slot::Done,
    }
}

/// A non-blocking connect to 127.0.0.1:`port`; refused at once when nothing listens.
fn begin(port: u16) -> Result<InFlight, Failure> {
    let fd: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Failure::Other(format!("socket: {e}")))?;
    let linger = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(&fd, sockopt::Linger, &linger)
        .map_err(|e| Failure::Other(format!("SO_LINGER: {e}")))?;
    let address = SockaddrIn::new(127, 0, 0, 1, port);
    use std::os::fd::AsRawFd;
    let connected = match connect(fd.as_raw_fd(), &address) {
        Ok(()) => true,
        Err(Errno::EINPROGRESS) => false,
        Err(Errno::ECONNREFUSED) => return Err(Failure::Refused),
        Err(e) => return Err(Failure::Other(format!("connect: {e}"))),
    };
    Ok(InFlight {
        stream: TcpStream::from(fd),
        started: Instant::now(),
        connected,
        sent: 0,
        answer: Vec::new(),
    })
}

impl InFlight {
    fn wants(&self) -> PollFlags {
        if !self.connected || self.sent < REQUEST.len() {
            PollFlags::POLLOUT
        } else {
            PollFlags::POLLIN
        }
    }

    /// Go as far as the socket lets; Some once the request has its outcome.
    fn advance(&mut self, connect_only: bool) -> Option<Result<String, Failure>> {
        if !self.connected {
            match getsockopt(&self.stream, sockopt::SocketError) {
                Ok(0) => self.connected = true,
                Ok(e) if e == Errno::ECONNREFUSED as i32 => return Some(Err(Failure::Refused)),
                Ok(e) => return Some(Err(Failure::Other(Errno::from_raw(e).to_string()))),
                Err(e) => return Some(Err(Failure::Other(e.to_string()))),
            }
        }
        if connect_only {
            return Some(Ok(String::new()));
        }
        while self.sent < REQUEST.len() {
            match self.stream.write(&REQUEST[self.sent..]) {
                Ok(k) => self.sent += k,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                Err(e) => return Some(Err(io_failure(&e))),
            }
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Some(parse(&self.answer)),
                Ok(k) => self.answer.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Some(Err(io_failure(&e))),
            }
        }
    }
}

fn io_failure(e: &std::io::Error) -> Failure {
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted => {
            Failure::Reset
        }
        ErrorKind::ConnectionRefused => Failure::Refused,
        _ => Failure::Other(e.to_string()),
    }
}

/// A whole answer: its body when the status is 200.
fn parse(answer: &[u8]) -> Result<String, Failure> {
    let text = String::from_utf8_lossy(answer);
    if text.is_empty() {
        return Err(Failure::Reset);
    }
    let status = text.lines().next().unwrap_or_default();
    if !(status.starts_with("HTTP/1.") && status.split_whitespace().nth(1) == Some("200")) {
        return Err(Failure::Status(status.to_string()));
    }
    Ok(text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn parses_answers() {
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nhello"),
            Ok("hello".into())
        );
        assert_eq!(
            parse(b"HTTP/1.0 502 Bad Gateway\r\n\r\n"),
            Err(Failure::Status("HTTP/1.0 502 Bad Gateway".into()))
        );
        assert_eq!(parse(b""), Err(Failure::Reset));
    }

    /// A server thread answering `answers` requests with `body`.
    fn serve(body: &'static str, answers: usize) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(answers) {
                let mut stream = stream.unwrap();
                let mut buf = [0u8; 1024];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let k = stream.read(&mut buf).unwrap();
                    got.extend_from_slice(&buf[..k]);
                }
                let _ = write!(stream, "HTTP/1.0 200 OK\r\n\r\n{body}");
            }
        });
        port
    }

    #[test]
    fn asks_every_port_and_again_when_told() {
        let a = serve("a", 3);
        let b = serve("b", 1);
        // A port nothing listens on: bound, then closed.
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut seen: Vec<(usize, Result<String, Failure>)> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let left = drive(
            &[a, b, closed],
            Duration::from_secs(5),
            deadline,
            false,
            |a| {
                let i = a.index;
                seen.push((i, a.result.map(str::to_string)));
                let asked = seen.iter().filter(|(j, _)| *j == i).count();
                if i == 0 && asked < 3 {
                    Next::After(Duration::from_millis(1))
                } else {
                    Next::Done
                }
            },
        )
        .unwrap();
        assert_eq!(left, 0);
        let of = |i| -> Vec<Result<String, Failure>> {
            seen.iter()
                .filter(|(j, _)| *j == i)
                .map(|(_, a)| a.clone())
                .collect()
        };
        assert_eq!(of(0), vec![Ok("a".to_string()); 3]);
        assert_eq!(of(1), vec![Ok("b".to_string())]);
        assert_eq!(of(2), vec![Err(Failure::Refused)]);
    }

    #[test]
    fn a_silent_server_times_out_and_connect_only_needs_no_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut answers = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        drive(&[port], Duration::from_millis(50), deadline, false, |a| {
            answers.push(a.result.map(str::to_string));
            Next::Done
        })
        .unwrap();
        assert_eq!(answers, vec![Err(Failure::Timeout)]);
        answers.clear();
        drive(&[port], Duration::from_millis(50), deadline, true, |a| {
            answers.push(a.result.map(str::to_string));
            Next::Done
        })
        .unwrap();
        assert_eq!(answers, vec![Ok(String::new())]);
    }
}
