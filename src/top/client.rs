//! The stats server's client: connect, read the one document the server writes, and tell
//! whether the emperor is on this host (so /proc shows its vassals).

use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// Where the stats server listens: `host:port` is TCP, anything else a UNIX socket path (the
/// rule the emperor binds `--emperor-stats` by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsAddr {
    Unix(PathBuf),
    Tcp(String),
}

/// One answer of the stats server.
#[derive(Debug)]
pub struct Fetched {
    pub body: String,
    /// The emperor runs on this host: a UNIX socket, or a TCP peer on a loopback address.
    pub local: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("resolving {addr}: {source}")]
    Resolve {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr} resolves to no address")]
    NoAddress { addr: String },
    #[error("connecting: {0}")]
    Connect(std::io::Error),
    #[error("reading the answer: {0}")]
    Read(std::io::Error),
}

impl StatsAddr {
    pub fn parse(addr: &str) -> StatsAddr {
        if addr.contains(':') && !addr.starts_with('/') {
            StatsAddr::Tcp(addr.to_string())
        } else {
            StatsAddr::Unix(PathBuf::from(addr))
        }
    }

    /// Read one document. `timeout` bounds the connect (TCP) and each read, so a server that
    /// hangs cannot hold the caller forever.
    pub fn fetch(&self, timeout: Duration) -> Result<Fetched, FetchError> {
        let mut body = String::new();
        let local = match self {
            StatsAddr::Unix(path) => {
                let mut stream = UnixStream::connect(path).map_err(FetchError::Connect)?;
                stream
                    .set_read_timeout(Some(timeout))
                    .map_err(FetchError::Read)?;
                stream.read_to_string(&mut body).map_err(FetchError::Read)?;
                true
            }
            StatsAddr::Tcp(addr) => {
                let mut stream = connect_tcp(addr, timeout)?;
                stream
                    .set_read_timeout(Some(timeout))
                    .map_err(FetchError::Read)?;
                let local = stream.peer_addr().is_ok_and(|peer| peer.ip().is_loopback());
                stream.read_to_string(&mut body).map_err(FetchError::Read)?;
                local
            }
        };
        Ok(Fetched { body, local })
    }
}

/// The first of the address's resolutions that accepts, else the last refusal.
fn connect_tcp(addr: &str, timeout: Duration) -> Result<TcpStream, FetchError> {
    let resolved = addr
        .to_socket_addrs()
        .map_err(|source| FetchError::Resolve {
            addr: addr.to_string(),
            source,
        })?;
    let mut refused = None;
    for candidate in resolved {
        match TcpStream::connect_timeout(&candidate, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => refused = Some(e),
        }
    }
    Err(refused.map_or_else(
        || FetchError::NoAddress {
            addr: addr.to_string(),
        },
        FetchError::Connect,
    ))
}

impl std::fmt::Display for StatsAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatsAddr::Unix(path) => write!(f, "{}", path.display()),
            StatsAddr::Tcp(addr) => f.write_str(addr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn host_and_port_is_tcp_and_a_path_is_a_unix_socket() {
        let tcp = |a: &str| StatsAddr::Tcp(a.into());
        let unix = |p: &str| StatsAddr::Unix(p.into());
        for (addr, expected) in [
            ("127.0.0.1:9191", tcp("127.0.0.1:9191")),
            ("localhost:9191", tcp("localhost:9191")),
            ("/run/emperor/stats.sock", unix("/run/emperor/stats.sock")),
            // A path with a colon in it is still a path.
            ("/tmp/a:b.sock", unix("/tmp/a:b.sock")),
            ("stats.sock", unix("stats.sock")),
        ] {
            assert_eq!(StatsAddr::parse(addr), expected, "{addr}");
        }
    }

    #[test]
    fn a_loopback_server_is_local_and_its_document_is_read_whole() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.write_all(b"{\"vassals\": []}").unwrap();
        });
        let fetched = StatsAddr::parse(&addr)
            .fetch(Duration::from_secs(5))
            .unwrap();
        server.join().unwrap();
        assert_eq!(fetched.body, "{\"vassals\": []}");
        assert!(fetched.local);
    }

    #[test]
    fn a_missing_socket_is_a_connect_error() {
        let dir = tempfile::tempdir().unwrap();
        let addr = StatsAddr::parse(&dir.path().join("none.sock").display().to_string());
        let error = addr.fetch(Duration::from_secs(1)).unwrap_err();
        assert!(matches!(error, FetchError::Connect(_)), "{error}");
        assert!(error.to_string().contains("No such file"), "{error}");
    }
}
