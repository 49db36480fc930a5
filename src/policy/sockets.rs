//! The listening sockets a config asks for, judged: addresses, tyrant ports, the sockets the
//! emperor holds (on-demand and pools).

use super::*;

/// A set of TCP ports, as `8000-8999,9090`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortList(pub Vec<(u16, u16)>);

impl PortList {
    pub fn contains(&self, port: u16) -> bool {
        self.0
            .iter()
            .any(|&(low, high)| (low..=high).contains(&port))
    }
}

impl std::str::FromStr for PortList {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| format!("{p:?} is not a port number"))
        };
        let mut ranges = Vec::new();
        for item in text.split(',').filter(|i| !i.trim().is_empty()) {
            let range = match item.split_once('-') {
                Some((low, high)) => (port(low)?, port(high)?),
                None => (port(item)?, port(item)?),
            };
            if range.0 > range.1 {
                return Err(format!("{item:?}: the range is empty"));
            }
            ranges.push(range);
        }
        Ok(PortList(ranges))
    }
}

impl fmt::Display for PortList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self
            .0
            .iter()
            .map(|&(low, high)| {
                if low == high {
                    low.to_string()
                } else {
                    format!("{low}-{high}")
                }
            })
            .collect();
        f.write_str(&items.join(","))
    }
}

/// The options that bind a listening socket for the payload. The runtime binds them all the
/// same way (before the net namespace and the drop), so they differ only in name.
pub const SOCKET_OPTIONS: [&str; 3] = ["socket", "http-socket", "shared-socket"];

/// Where a vassal socket listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SocketAddress {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
    /// Linux abstract namespace (`@name`).
    Abstract(String),
}

/// One socket the runtime binds and hands to every payload it starts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SocketSpec {
    /// `file:line`, for errors.
    pub place: String,
    pub option: String,
    pub value: String,
    pub address: SocketAddress,
}

/// `host:port`, `:port` (every IPv4 address), `[v6]:port`, a UNIX path, or `@abstract`.
pub fn parse_socket_address(value: &str) -> Result<SocketAddress, String> {
    if let Some(name) = value.strip_prefix('@') {
        if name.is_empty() {
            return Err("an abstract socket needs a name after @".into());
        }
        return Ok(SocketAddress::Abstract(name.to_string()));
    }
    if value.contains('/') || !value.contains(':') {
        if value.is_empty() {
            return Err("empty address".into());
        }
        return Ok(SocketAddress::Unix(PathBuf::from(value)));
    }
    let (host, port) = value.rsplit_once(':').expect("contains ':'");
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} is not a port number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = match host {
        "" | "*" => std::net::Ipv4Addr::UNSPECIFIED.into(),
        "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
        other => other
            .parse()
            .map_err(|_| format!("{other:?} is not an IP address (host names are not resolved)"))?,
    };
    Ok(SocketAddress::Tcp(std::net::SocketAddr::new(ip, port)))
}

/// The option naming the socket the emperor holds for an on-demand vassal.
pub const ON_DEMAND_OPTION: &str = "on-demand-socket";
/// The option naming a socket the emperor holds and shares between every vassal naming it
/// (a pool): a connection waits in its backlog for whichever vassal accepts first.
pub const POOL_OPTION: &str = "pool-socket";
/// The option giving how long an on-demand vassal may stay idle before the emperor stops it.
pub const IDLE_OPTION: &str = "idle";

/// The vassal's sockets: its `on-demand-socket` first (fd 3 for the payload), then the
/// others in config order; in tyrant mode a TCP port must be in the admin's
/// `--emperor-tyrant-ports`.
pub fn sockets(config: &Config, context: &JailContext) -> Result<Vec<SocketSpec>, PolicyError> {
    let mut specs: Vec<SocketSpec> = on_demand_socket(config, context)?.into_iter().collect();
    if let Some(pool) = pool_socket(config, context)? {
        if let Some(on_demand) = specs.first() {
            let entry = config.get(POOL_OPTION).expect("just read");
            return Err(refuse(
                entry,
                format!(
                    "a vassal is either on demand or in a pool (on-demand-socket at {})",
                    on_demand.place
                ),
            ));
        }
        specs.push(pool);
    }
    let is_socket = |key: &str| SOCKET_OPTIONS.contains(&key.replace('_', "-").as_str());
    for entry in config.entries.iter().filter(|e| is_socket(&e.key)) {
        specs.push(socket_spec(entry, context)?);
    }
    Ok(specs)
}

fn socket_spec(entry: &Entry, context: &JailContext) -> Result<SocketSpec, PolicyError> {
    let address = parse_socket_address(&entry.value).map_err(|e| refuse(entry, e))?;
    if let SocketAddress::Tcp(addr) = &address {
        if context.tyrant && !context.tyrant_ports.contains(addr.port()) {
            return Err(refuse(
                entry,
                format!(
                    "port {} is not allowed in tyrant mode (the emperor's --emperor-tyrant-ports is {:?})",
                    addr.port(),
                    context.tyrant_ports.to_string()
                ),
            ));
        }
    }
    Ok(SocketSpec {
        place: entry.origin.to_string(),
        option: entry.key.clone(),
        value: entry.value.clone(),
        address,
    })
}

/// The config's `on-demand-socket`, judged like any socket option; at most one.
fn on_demand_socket(
    config: &Config,
    context: &JailContext,
) -> Result<Option<SocketSpec>, PolicyError> {
    held_socket(
        config,
        context,
        ON_DEMAND_OPTION,
        "one on-demand socket per vassal",
    )
}

/// The config's `pool-socket` (the socket its pool shares, held by the emperor); at most one.
pub fn pool_socket(
    config: &Config,
    context: &JailContext,
) -> Result<Option<SocketSpec>, PolicyError> {
    held_socket(config, context, POOL_OPTION, "one pool socket per vassal")
}

fn held_socket(
    config: &Config,
    context: &JailContext,
    option: &str,
    one: &str,
) -> Result<Option<SocketSpec>, PolicyError> {
    let mut entries = config.get_all(option);
    let Some(first) = entries.next() else {
        return Ok(None);
    };
    if let Some(second) = entries.next() {
        return Err(refuse(
            second,
            format!("{one} (the first is at {})", first.origin),
        ));
    }
    socket_spec(first, context).map(Some)
}

/// What the emperor needs to run a vassal on demand.
#[derive(Debug, Clone, PartialEq)]
pub struct OnDemand {
    /// The socket the emperor binds and holds, and hands to each payload.
    pub socket: SocketSpec,
    /// Stop the vassal after this long without a connection (`idle`); None: never.
    pub idle: Option<std::time::Duration>,
}

/// The config's on-demand settings, or None for a vassal started at once. `idle` without
/// `on-demand-socket` is ignored (the caller may warn): only a socket the emperor holds lets
/// it start a stopped vassal again.
pub fn on_demand(config: &Config, context: &JailContext) -> Result<Option<OnDemand>, PolicyError> {
    let Some(socket) = on_demand_socket(config, context)? else {
        return Ok(None);
    };
    let idle = match config.get(IDLE_OPTION) {
        Some(entry) => {
            let seconds = entry
                .value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
                .ok_or_else(|| {
                    refuse(
                        entry,
                        format!("{:?} is not a number of seconds above 0", entry.value),
                    )
                })?;
            Some(std::time::Duration::from_secs_f64(seconds))
        }
        None => None,
    };
    Ok(Some(OnDemand { socket, idle }))
}
