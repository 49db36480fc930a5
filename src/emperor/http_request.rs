//! The head of an HTTP request, read without blocking by the metrics endpoint: only its
//! target matters, and a client may send at most [`MAX_REQUEST`] bytes before it ends.

use std::io::{ErrorKind, Read};

/// The most an HTTP client may send before its request head ends.
pub const MAX_REQUEST: usize = 8192;

/// How far an HTTP request head has come.
pub enum Request {
    Incomplete,
    /// Too long, not HTTP, or the client went away.
    Bad,
    /// Complete: the request target (`/metrics`).
    Target(String),
}

/// Read what the client sent so far into `head`; the request target once the head ends.
pub fn read_request(stream: &mut dyn Read, head: &mut Vec<u8>) -> Request {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Request::Bad,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Request::Bad,
        }
        if head.len() > MAX_REQUEST {
            return Request::Bad;
        }
    }
    if !head.windows(4).any(|w| w == b"\r\n\r\n") {
        return if head.len() > MAX_REQUEST {
            Request::Bad
        } else {
            Request::Incomplete
        };
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split(' ');
    match (words.next(), words.next(), words.next()) {
        (Some(_method), Some(target), Some(version)) if version.starts_with("HTTP/") => {
            Request::Target(target.to_string())
        }
        _ => Request::Bad,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its chunks, then would block.
    struct Chunks(Vec<&'static [u8]>);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.first_mut() {
                None => Err(ErrorKind::WouldBlock.into()),
                Some(chunk) => {
                    let n = chunk.len().min(buf.len());
                    buf[..n].copy_from_slice(&chunk[..n]);
                    *chunk = &chunk[n..];
                    if chunk.is_empty() {
                        self.0.remove(0);
                    }
                    Ok(n)
                }
            }
        }
    }

    #[test]
    fn a_head_in_pieces_gives_its_target_once_complete() {
        let mut head = Vec::new();
        let mut first = Chunks(vec![b"GET /metrics HT"]);
        assert!(matches!(
            read_request(&mut first, &mut head),
            Request::Incomplete
        ));
        let mut rest = Chunks(vec![b"TP/1.1\r\nHost: x\r\n\r\n"]);
        assert!(
            matches!(read_request(&mut rest, &mut head), Request::Target(t) if t == "/metrics")
        );
    }

    #[test]
    fn too_long_or_not_http_is_refused() {
        let long: &'static [u8] = Box::leak(vec![b'a'; MAX_REQUEST + 1].into_boxed_slice());
        assert!(matches!(
            read_request(&mut Chunks(vec![long]), &mut Vec::new()),
            Request::Bad
        ));
        let junk = Chunks(vec![b"hello\r\n\r\n"]);
        assert!(matches!(
            read_request(&mut { junk }, &mut Vec::new()),
            Request::Bad
        ));
    }
}
