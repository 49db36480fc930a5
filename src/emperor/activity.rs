//! Whether a socket the emperor holds is in use, judged from the kernel's socket tables
//! (/proc/net/tcp, tcp6 and unix of the emperor's network namespace, where the held socket
//! and every connection accepted from it live, whatever namespace the payload runs in). No
//! help from the payload is needed, so any program can be an on-demand vassal.
//!
//! A socket is busy when a connection waits in its accept queue or an accepted one is still
//! open. A sample is a snapshot: a connection that opens and closes between two samples is not
//! seen (it is served, it just does not postpone the idle stop).

use procfs::net::{TcpNetEntry, TcpState, UnixNetEntry, UnixState};
use std::net::{IpAddr, SocketAddr};

/// The tables one sample reads, each only when a held socket of its kind needs it.
#[derive(Debug, Default)]
pub struct Snapshot {
    tcp: Option<Vec<TcpNetEntry>>,
    unix: Option<Vec<UnixNetEntry>>,
}

impl Snapshot {
    /// Whether anyone uses the TCP listener bound to `bound`. An unreadable table counts as
    /// busy: the emperor never stops a vassal on a guess.
    pub fn tcp_busy(&mut self, bound: SocketAddr) -> bool {
        let table = self.tcp.get_or_insert_with(|| {
            let mut rows = procfs::net::tcp().unwrap_or_default();
            rows.extend(procfs::net::tcp6().unwrap_or_default());
            rows
        });
        table.is_empty() || tcp_busy(table, bound)
    }

    /// Whether anyone uses the UNIX listener at `name` (a path, or `@name` when abstract).
    pub fn unix_busy(&mut self, name: &str) -> bool {
        let table = self
            .unix
            .get_or_insert_with(|| procfs::net::unix().unwrap_or_default());
        table.is_empty() || unix_busy(table, name)
    }
}

/// A connection waits in the listener's accept queue (its LISTEN row's rx_queue), or a
/// connection on its port is open: established, half-open, or closing while a process still
/// holds it (an orphan, inode 0, lingering in FIN_WAIT after the payload closed it, is not).
pub fn tcp_busy(rows: &[TcpNetEntry], bound: SocketAddr) -> bool {
    rows.iter().any(|row| {
        if row.local_address.port() != bound.port()
            || !same_host(bound.ip(), row.local_address.ip())
        {
            return false;
        }
        match row.state {
            TcpState::Listen => row.rx_queue > 0,
            TcpState::TimeWait | TcpState::Close | TcpState::SynSent => false,
            TcpState::FinWait1 | TcpState::FinWait2 | TcpState::Closing | TcpState::LastAck => {
                row.inode != 0
            }
            TcpState::Established
            | TcpState::SynRecv
            | TcpState::NewSynRecv
            | TcpState::CloseWait => true,
        }
    })
}

/// `local` is an address the listener bound to `bound` answers on: any address when it is
/// unspecified, else the same one (an IPv4 address also in its IPv6-mapped form).
fn same_host(bound: IpAddr, local: IpAddr) -> bool {
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    bound.is_unspecified() || canonical(bound) == canonical(local)
}

/// A connection on the UNIX listener at `name`: the kernel shows the listener's path on each
/// connection it accepted (state connected) and on each still in its queue (connecting).
pub fn unix_busy(rows: &[UnixNetEntry], name: &str) -> bool {
    rows.iter().any(|row| {
        matches!(row.state, UnixState::CONNECTING | UnixState::CONNECTED)
            && row.path.as_deref().is_some_and(|p| p.as_os_str() == name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use procfs::{ExplicitSystemInfo, FromBufRead, FromBufReadSI};

    const TCP_HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

    fn tcp(rows: &str) -> Vec<TcpNetEntry> {
        let info = ExplicitSystemInfo {
            boot_time_secs: 0,
            ticks_per_second: 100,
            page_size: 4096,
            is_little_endian: cfg!(target_endian = "little"),
        };
        let text = format!("{TCP_HEADER}{rows}");
        procfs::net::TcpNetEntries::from_buf_read(text.as_bytes(), &info)
            .unwrap()
            .0
    }

    fn unix(rows: &str) -> Vec<UnixNetEntry> {
        let text = format!("Num       RefCount Protocol Flags    Type St Inode Path\n{rows}");
        procfs::net::UnixNetEntries::from_buf_read(text.as_bytes())
            .unwrap()
            .0
    }

    // Rows as a 6.x kernel wrote them for a listener on 127.0.0.1:37603 (0x92E3).
    const LISTEN_IDLE: &str = "   1: 0100007F:92E3 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 33128137 2 000000008777a775 100 0 0 10 0\n";
    const LISTEN_QUEUED: &str = "   1: 0100007F:92E3 00000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 33128137 2 000000008777a775 100 0 0 10 0\n";
    const CLIENT_SIDE: &str = "   4: 0100007F:C782 0100007F:92E3 01 00000000:00000000 00:00000000 00000000     0        0 33128138 2 0000000038fc602d 20 0 0 10 -1\n";
    const ACCEPTED: &str = "  31: 0100007F:92E3 0100007F:C782 01 00000000:00000000 00:00000000 00000000     0        0 33128140 1 00000000afbcbfb3 20 0 0 10 -1\n";
    const ORPHAN_FIN_WAIT2: &str = "  31: 0100007F:92E3 0100007F:C782 05 00000000:00000000 03:00001766 00000000     0        0 0 3 00000000c130b83d\n";
    const TIME_WAIT: &str = "  32: 0100007F:92E3 0100007F:C790 06 00000000:00000000 03:00000538 00000000     0        0 0 3 000000006d8831fc\n";

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_listener_with_no_connection_is_idle_and_its_clients_do_not_count() {
        let rows = tcp(&format!(
            "{LISTEN_IDLE}{CLIENT_SIDE}{TIME_WAIT}{ORPHAN_FIN_WAIT2}"
        ));
        assert!(!tcp_busy(&rows, addr("127.0.0.1:37603")));
        assert!(!tcp_busy(&rows, addr("0.0.0.0:37603")));
    }

    #[test]
    fn a_queued_or_an_accepted_connection_makes_it_busy() {
        assert!(tcp_busy(&tcp(LISTEN_QUEUED), addr("127.0.0.1:37603")));
        let accepted = tcp(&format!("{LISTEN_IDLE}{ACCEPTED}"));
        assert!(tcp_busy(&accepted, addr("127.0.0.1:37603")));
        assert!(tcp_busy(&accepted, addr("0.0.0.0:37603")), "any address");
        assert!(tcp_busy(&accepted, addr("[::]:37603")), "dual stack");
        assert!(
            !tcp_busy(&accepted, addr("127.0.0.2:37603")),
            "another host"
        );
        assert!(
            !tcp_busy(&accepted, addr("127.0.0.1:37604")),
            "another port"
        );
    }

    #[test]
    fn an_ipv4_connection_to_an_ipv6_listener_is_seen_in_its_mapped_form() {
        // tcp6: [::ffff:127.0.0.1]:8080 <- [::ffff:127.0.0.1]:50000, established.
        let row = "   0: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 20 0 0 10 -1\n";
        let rows = tcp(row);
        assert!(tcp_busy(&rows, addr("127.0.0.1:8080")));
        assert!(tcp_busy(&rows, addr("[::]:8080")));
    }

    // A listener, a connection it accepted, one still in its queue (as a 6.x kernel wrote them).
    const UNIX_LISTENER: &str =
        "00000000fb7a5a4c: 00000002 00000000 00010000 0001 01 33128131 /tmp/od-probe.sock\n";
    const UNIX_ACCEPTED: &str =
        "0000000098826c2d: 00000003 00000000 00000000 0001 03 33128134 /tmp/od-probe.sock\n";
    const UNIX_QUEUED: &str =
        "0000000010eac0c9: 00000003 00000000 00000000 0001 02     0 /tmp/od-probe.sock\n";
    const UNIX_OTHER: &str = "000000001cf3f611: 00000003 00000000 00000000 0001 03 33127958\n";

    #[test]
    fn a_unix_listener_is_busy_with_a_queued_or_accepted_connection_only() {
        let name = "/tmp/od-probe.sock";
        assert!(!unix_busy(
            &unix(&format!("{UNIX_LISTENER}{UNIX_OTHER}")),
            name
        ));
        assert!(unix_busy(
            &unix(&format!("{UNIX_LISTENER}{UNIX_ACCEPTED}")),
            name
        ));
        assert!(unix_busy(
            &unix(&format!("{UNIX_LISTENER}{UNIX_QUEUED}")),
            name
        ));
        assert!(!unix_busy(&unix(UNIX_ACCEPTED), "/tmp/other.sock"));
    }

    #[test]
    fn the_live_tables_see_a_connection_to_a_listener_of_ours() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let bound = listener.local_addr().unwrap();
        assert!(
            !Snapshot::default().tcp_busy(bound),
            "nothing connected yet"
        );
        let _client = std::net::TcpStream::connect(bound).unwrap();
        assert!(Snapshot::default().tcp_busy(bound), "a queued connection");
    }
}
