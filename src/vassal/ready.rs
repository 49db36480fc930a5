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
    pub fn probe(&self) -> Result<(), String> {
        match self {
            ReadyCheck::AtStart | ReadyCheck::Payload => Ok(()),
            ReadyCheck::Tcp(addr) => connect(addr).map(drop),
            ReadyCheck::Http { addr, host, path } => {
                http_status(addr, host, path).and_then(|code| {
                    if (200..400).contains(&code) {
                        Ok(())
                    } else {
                        Err(format!("GET {path}: status {code}"))
                    }
                })
            }
        }
    }
}

fn parse(value: &str) -> Result<ReadyCheck, String> {
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
            return Err("the path holds a space or a control character".into());
        }
        return Ok(ReadyCheck::Http {
            addr: resolve(host)?,
            host: host.to_string(),
            path: path.to_string(),
        });
    }
    Err("expected tcp:HOST:PORT, http://HOST:PORT/PATH or payload".into())
}

/// HOST:PORT with an IP address or `localhost` (no DNS: a probe must not wait on a resolver).
fn resolve(target: &str) -> Result<SocketAddr, String> {
    let (host, port) = target
        .rsplit_once(':')
        .ok_or_else(|| format!("\"{target}\" has no :PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("\"{port}\" is not a port number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    let ip: std::net::IpAddr = host
        .parse()
        .map_err(|_| format!("\"{host}\" is not an IP address (or localhost)"))?;
    (ip, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("\"{target}\" is not an address"))
}

fn connect(addr: &SocketAddr) -> Result<TcpStream, String> {
    TcpStream::connect_timeout(addr, PROBE_TIMEOUT).map_err(|e| format!("connect {addr}: {e}"))
}

/// The status code of `GET path` at `addr`.
fn http_status(addr: &SocketAddr, host: &str, path: &str) -> Result<u16, String> {
    let mut stream = connect(addr)?;
    let fail = |e: std::io::Error| format!("GET http://{host}{path}: {e}");
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
    status_code(&head[..got]).ok_or_else(|| format!("GET http://{host}{path}: no HTTP status line"))
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
        assert!(parse("tcp:example.org:80")
            .unwrap_err()
            .contains("not an IP address"));
        assert!(parse("tcp:127.0.0.1").unwrap_err().contains("has no :PORT"));
        assert!(parse("tcp:127.0.0.1:x")
            .unwrap_err()
            .contains("not a port number"));
        assert!(parse("http://127.0.0.1:80/a b").is_err());
        assert!(parse("udp:1.2.3.4:5").unwrap_err().starts_with("expected"));
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
        assert_eq!(check.probe(), Err("GET /: status 503".into()));
        assert_eq!(check.probe(), Ok(()));
        server.join().unwrap();
        assert!(ReadyCheck::Tcp(addr)
            .probe()
            .unwrap_err()
            .starts_with("connect"));
    }
}
