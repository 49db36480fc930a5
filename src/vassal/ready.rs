//! When a payload counts as ready (protocol byte 5, uWSGI's "accepting"): the `ready-check`
//! option. The runtime probes from its own network namespace (the payload's), so a check
//! reaches nothing the payload could not reach itself.

use crate::config::{Config, ConfigError};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long one probe may take: the runtime's loop waits on it.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause between failed probes.
pub const PROBE_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyCheck {
    /// No check named: ready as soon as it is started.
    AtStart,
    /// `ready-check = payload`: the payload sends byte 5 itself (a uWSGI-aware program).
    Payload,
    /// `ready-check = tcp:HOST:PORT`: something accepts connections there.
    Tcp(SocketAddr),
    /// `ready-check = http://HOST:PORT/PATH`: a GET there answers 2xx or 3xx.
    Http {
        addr: SocketAddr,
        host: String,
        path: String,
    },
}

/// Why a `ready-check` value is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadReadyCheck {
    #[error("expected tcp:HOST:PORT, http://HOST:PORT/PATH or payload")]
    UnknownForm,
    #[error("the path holds a space or a control character")]
    BadPath,
    #[error("\"{0}\" has no :PORT")]
    NoPort(String),
    #[error("\"{0}\" is not a port number")]
    BadPort(String),
    #[error("\"{0}\" is not an IP address (or localhost)")]
    NotIp(String),
    #[error("\"{0}\" is not an address")]
    NotAddress(String),
}

/// Why one probe found the payload not ready yet.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("connect {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("GET http://{host}{path}: {source}")]
    Request {
        host: String,
        path: String,
        source: std::io::Error,
    },
    #[error("GET http://{host}{path}: no HTTP status line")]
    NoStatusLine { host: String, path: String },
    #[error("GET {path}: status {code}")]
    Status { path: String, code: u16 },
}

impl ReadyCheck {
    /// The config's `ready-check`, or the first thing wrong with it.
    pub fn from_config(config: &Config) -> Result<ReadyCheck, ConfigError> {
        let Some(entry) = config.get("ready-check") else {
            return Ok(ReadyCheck::AtStart);
        };
        parse(entry.value.trim()).map_err(|message| ConfigError::BadOption {
            path: entry.origin.file.clone(),
            line: entry.origin.line,
            key: entry.key.clone(),
            message: format!("invalid value \"{}\": {message}", entry.value),
        })
    }

    /// Whether the runtime must probe (rather than declare readiness at start, or leave it to
    /// the payload).
    pub fn needs_probing(&self) -> bool {
        matches!(self, ReadyCheck::Tcp(_) | ReadyCheck::Http { .. })
    }

    /// One attempt; `Err` says why it is not ready yet.
    pub fn probe(&self) -> Result<(), NotReady> {
        match self {
            ReadyCheck::AtStart | ReadyCheck::Payload => Ok(()),
            ReadyCheck::Tcp(addr) => connect(addr).map(drop),
            ReadyCheck::Http { addr, host, path } => {
                http_status(addr, host, path).and_then(|code| {
                    if (200..400).contains(&code) {
                        Ok(())
                    } else {
                        Err(NotReady::Status {
                            path: path.clone(),
                            code,
                        })
                    }
                })
            }
        }
    }
}

fn parse(value: &str) -> Result<ReadyCheck, BadReadyCheck> {
    if value == "payload" {
        return Ok(ReadyCheck::Payload);
    }
    if let Some(target) = value.strip_prefix("tcp:") {
        return resolve(target).map(ReadyCheck::Tcp);
    }
    if let Some(rest) = value.strip_prefix("http://") {
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(BadReadyCheck::BadPath);
        }
        return Ok(ReadyCheck::Http {
            addr: resolve(host)?,
            host: host.to_string(),
            path: path.to_string(),
        });
    }
    Err(BadReadyCheck::UnknownForm)
}

/// HOST:PORT with an IP address or `localhost` (no DNS: a probe must not wait on a resolver).
fn resolve(target: &str) -> Result<SocketAddr, BadReadyCheck> {
    let (host, port) = target
        .rsplit_once(':')
        .ok_or_else(|| BadReadyCheck::NoPort(target.to_string()))?;
    let port: u16 = port
        .parse()
        .map_err(|_| BadReadyCheck::BadPort(port.to_string()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    let ip: std::net::IpAddr = host
        .parse()
        .map_err(|_| BadReadyCheck::NotIp(host.to_string()))?;
    (ip, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| BadReadyCheck::NotAddress(target.to_string()))
}

fn connect(addr: &SocketAddr) -> Result<TcpStream, NotReady> {
    TcpStream::connect_timeout(addr, PROBE_TIMEOUT).map_err(|source| NotReady::Connect {
        addr: *addr,
        source,
    })
}

/// The status code of `GET path` at `addr`.
fn http_status(addr: &SocketAddr, host: &str, path: &str) -> Result<u16, NotReady> {
    let mut stream = connect(addr)?;
    let fail = |source| NotReady::Request {
        host: host.to_string(),
        path: path.to_string(),
        source,
    };
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).map_err(fail)?;
    stream
        .set_write_timeout(Some(PROBE_TIMEOUT))
        .map_err(fail)?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(fail)?;
    // The status line fits in the first read of any real server; 64 bytes are plenty.
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match stream.read(&mut head[got..]).map_err(fail)? {
            0 => break,
            n => got += n,
        }
    }
    status_code(&head[..got]).ok_or_else(|| NotReady::NoStatusLine {
        host: host.to_string(),
        path: path.to_string(),
    })
}

fn status_code(head: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(head.get(..12)?).ok()?;
    let mut words = line.split(' ');
    words.next().filter(|w| w.starts_with("HTTP/"))?;
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_of_ready_check() {
        assert_eq!(parse("payload"), Ok(ReadyCheck::Payload));
        assert_eq!(
            parse("tcp:127.0.0.1:8080"),
            Ok(ReadyCheck::Tcp("127.0.0.1:8080".parse().unwrap()))
        );
        assert_eq!(
            parse("tcp:localhost:80"),
            Ok(ReadyCheck::Tcp("127.0.0.1:80".parse().unwrap()))
        );
        assert_eq!(
            parse("http://[::1]:8080/health"),
            Ok(ReadyCheck::Http {
                addr: "[::1]:8080".parse().unwrap(),
                host: "[::1]:8080".into(),
                path: "/health".into()
            })
        );
        assert!(
            matches!(parse("http://127.0.0.1:80"), Ok(ReadyCheck::Http { path, .. }) if path == "/")
        );
        let refused = [
            (
                "tcp:example.org:80",
                BadReadyCheck::NotIp("example.org".into()),
            ),
            ("tcp:127.0.0.1", BadReadyCheck::NoPort("127.0.0.1".into())),
            ("tcp:127.0.0.1:x", BadReadyCheck::BadPort("x".into())),
            ("http://127.0.0.1:80/a b", BadReadyCheck::BadPath),
            ("udp:1.2.3.4:5", BadReadyCheck::UnknownForm),
        ];
        for (value, why) in refused {
            assert_eq!(parse(value), Err(why), "{value}");
        }
        assert_eq!(
            BadReadyCheck::NotIp("example.org".into()).to_string(),
            "\"example.org\" is not an IP address (or localhost)"
        );
    }

    #[test]
    fn a_status_line_gives_its_code() {
        assert_eq!(status_code(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_code(b"HTTP/1.0 503 "), Some(503));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(status_code(b"HTTP/1.1"), None);
    }

    #[test]
    fn a_probe_fails_until_something_listens_then_passes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let check = ReadyCheck::Http {
            addr,
            host: addr.to_string(),
            path: "/".into(),
        };
        let server = std::thread::spawn(move || {
            for answer in ["HTTP/1.0 503 Busy\r\n\r\n", "HTTP/1.0 200 OK\r\n\r\n"] {
                let (mut c, _) = listener.accept().unwrap();
                let mut buf = [0u8; 512];
                let _ = c.read(&mut buf);
                c.write_all(answer.as_bytes()).unwrap();
            }
        });
        let busy = check.probe().unwrap_err();
        assert!(
            matches!(busy, NotReady::Status { code: 503, .. }),
            "{busy:?}"
        );
        assert_eq!(busy.to_string(), "GET /: status 503");
        assert!(check.probe().is_ok());
        server.join().unwrap();
        let refused = ReadyCheck::Tcp(addr).probe().unwrap_err();
        assert!(matches!(refused, NotReady::Connect { .. }), "{refused:?}");
        assert!(refused.to_string().starts_with("connect"), "{refused}");
    }
}
