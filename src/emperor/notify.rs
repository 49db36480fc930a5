//! systemd's notify protocol (sd_notify(3)), spoken by the emperor when systemd starts it with
//! `Type=notify`: READY=1 once the first scan's vassals are spawned, STATUS= with the
//! vassals' counts, RELOADING=1 on SIGHUP, STOPPING=1 when told to stop, and WATCHDOG=1 from
//! the event loop itself when `WATCHDOG_USEC` is set, so a stuck loop is caught. Without
//! `NOTIFY_SOCKET` every call does nothing.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};
use tracing::warn;

/// The least time between two STATUS= updates.
const STATUS_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
    /// Half of WATCHDOG_USEC: how often WATCHDOG=1 goes.
    watchdog_every: Option<Duration>,
    next_watchdog: Option<Instant>,
    ready_sent: bool,
    last_status: Option<(Instant, String)>,
    /// The variables it was made from, for the binary that replaces the emperor.
    variables: Vec<(String, String)>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket) and `WATCHDOG_USEC`
    /// (honoured when `WATCHDOG_PID` is unset or names this process). Both are removed from
    /// the environment: they are the emperor's, never a vassal's.
    pub fn from_env() -> Self {
        let address = std::env::var("NOTIFY_SOCKET").ok();
        let watchdog_usec = std::env::var("WATCHDOG_USEC").ok();
        let watchdog_pid = std::env::var("WATCHDOG_PID").ok();
        let mut variables = Vec::new();
        for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            if let Ok(value) = std::env::var(key) {
                variables.push((key.to_string(), value));
            }
            std::env::remove_var(key);
        }
        let socket = address.and_then(|address| match connect(&address) {
            Ok(socket) => Some(socket),
            Err(e) => {
                warn!("NOTIFY_SOCKET={address}: {e}: systemd is not told about this emperor");
                None
            }
        });
        let ours = watchdog_pid.is_none_or(|pid| pid == std::process::id().to_string());
        let watchdog_every = watchdog_usec
            .filter(|_| ours && socket.is_some())
            .and_then(|usec| usec.parse::<u64>().ok())
            .filter(|&usec| usec > 0)
            .map(|usec| Duration::from_micros(usec) / 2);
        Notifier {
            socket,
            watchdog_every,
            next_watchdog: watchdog_every.map(|every| Instant::now() + every),
            variables,
            ..Notifier::default()
        }
    }

    /// systemd's variables as the emperor found them (an upgrade hands them on).
    pub fn variables(&self) -> &[(String, String)] {
        &self.variables
    }

    /// When the loop must wake for the next WATCHDOG=1.
    pub fn deadline(&self) -> Option<Instant> {
        self.next_watchdog
    }

    /// Called once per loop turn: the watchdog ping when due, READY=1 once `ready` first
    /// holds, and STATUS= (`status` made only when one is due) when it changed.
    pub fn tick(&mut self, now: Instant, ready: bool, status: impl FnOnce() -> String) {
        if self.socket.is_none() {
            return;
        }
        if let (Some(every), Some(at)) = (self.watchdog_every, self.next_watchdog) {
            if now >= at {
                self.send("WATCHDOG=1");
                self.next_watchdog = Some(now + every);
            }
        }
        if !ready {
            return;
        }
        let due = self
            .last_status
            .as_ref()
            .is_none_or(|(at, _)| now.duration_since(*at) >= STATUS_EVERY);
        if !due && self.ready_sent {
            return;
        }
        let status = status();
        let changed = self
            .last_status
            .as_ref()
            .is_none_or(|(_, last)| *last != status);
        if !self.ready_sent {
            self.send(&format!("READY=1\nSTATUS={status}"));
            self.ready_sent = true;
        } else if changed {
            self.send(&format!("STATUS={status}"));
        }
        self.last_status = Some((now, status));
    }

    /// SIGHUP: systemd hears of the reload, then that the emperor is ready again (every
    /// vassal has been told by the time this returns to the loop).
    pub fn reloading(&mut self) {
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
        self.ready_sent = false;
    }

    pub fn stopping(&mut self) {
        self.send("STOPPING=1");
    }

    fn send(&self, message: &str) {
        if let Some((socket, address)) = &self.socket {
            // Best effort, as sd_notify: a systemd that stopped listening changes nothing.
            let _ = socket.send_to_addr(message.as_bytes(), address);
        }
    }
}

fn connect(address: &str) -> std::io::Result<(UnixDatagram, SocketAddr)> {
    let socket = UnixDatagram::unbound()?;
    let address = match address.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(address)?,
    };
    Ok((socket, address))
}

/// CLOCK_MONOTONIC in microseconds, as systemd wants it with RELOADING=1.
fn monotonic_usec() -> u64 {
    jail::process::monotonic_now().as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening(watchdog: Option<Duration>) -> (tempfile::TempDir, UnixDatagram, Notifier) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let notifier = Notifier {
            socket: Some(connect(path.to_str().unwrap()).unwrap()),
            watchdog_every: watchdog,
            next_watchdog: watchdog.map(|_| Instant::now()),
            ..Notifier::default()
        };
        (dir, listener, notifier)
    }

    /// Every datagram waiting, in order.
    fn received(listener: &UnixDatagram) -> Vec<String> {
        let mut buf = [0u8; 512];
        let mut messages = Vec::new();
        while let Ok(n) = listener.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        messages
    }

    #[test]
    fn ready_once_then_status_only_when_due_and_changed() {
        let (_dir, listener, mut notifier) = listening(None);
        let start = Instant::now();
        notifier.tick(start, false, || unreachable!("no status before ready"));
        assert!(received(&listener).is_empty());
        notifier.tick(start, true, || "1 running".to_string());
        assert_eq!(received(&listener), ["READY=1\nSTATUS=1 running"]);
        notifier.tick(start, true, || unreachable!("not due within the second"));
        notifier.tick(start + STATUS_EVERY, true, || "1 running".to_string());
        assert!(received(&listener).is_empty(), "unchanged");
        notifier.tick(start + 2 * STATUS_EVERY, true, || "2 running".to_string());
        assert_eq!(received(&listener), ["STATUS=2 running"]);
        notifier.reloading();
        notifier.tick(start + 2 * STATUS_EVERY, true, || "2 running".to_string());
        notifier.stopping();
        let rest = received(&listener);
        assert!(
            rest[0].starts_with("RELOADING=1\nMONOTONIC_USEC="),
            "{rest:?}"
        );
        assert_eq!(rest[1..], ["READY=1\nSTATUS=2 running", "STOPPING=1"]);
    }

    #[test]
    fn the_watchdog_is_pinged_when_due_ready_or_not() {
        let every = Duration::from_millis(100);
        let (_dir, listener, mut notifier) = listening(Some(every));
        let start = notifier.deadline().unwrap();
        notifier.tick(start, false, String::new);
        assert_eq!(received(&listener), ["WATCHDOG=1"]);
        assert_eq!(notifier.deadline(), Some(start + every));
        notifier.tick(start + every / 2, false, String::new);
        assert!(received(&listener).is_empty());
        notifier.tick(start + every, false, String::new);
        assert_eq!(received(&listener), ["WATCHDOG=1"]);
    }
}
