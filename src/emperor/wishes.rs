//! What a vassal's config asks of the emperor's held sockets (its on-demand and pool
//! sockets), and whether it can start at all (a uWSGI application needs a uWSGI binary): read
//! from one load of the config per event, as its runtime will read it, by the config reader.
//! A [`Judge`] borrows what the reading needs (the settings, the spawner's environment, the
//! reader) and is handed the vassal it reads for.

use super::spawn::Spawner;
use super::table::Vassal;
use super::Settings;
use crate::config;
use crate::config_reader::{ConfigReader, ReadReply, ReadRequest};
use crate::policy::payload;
use crate::policy::{self, JailContext};
use std::cell::RefCell;
use std::path::Path;
use tracing::{debug, warn};

/// The options of a config the emperor itself acts on: all the config reader sends back
/// (its held sockets, and whether it names a binary patch or is a uWSGI application).
const HELD_SOCKET_OPTIONS: [&str; 7] = [
    policy::ON_DEMAND_OPTION,
    policy::IDLE_OPTION,
    policy::POOL_OPTION,
    payload::PAYLOAD_OPTIONS[0],
    payload::PAYLOAD_OPTIONS[1],
    payload::PAYLOAD_OPTIONS[2],
    payload::PAYLOAD_OPTIONS[3],
];

/// What a config asks of the emperor's held sockets (each an error naming the file and
/// option when refused).
pub struct HeldWishes {
    pub on_demand: Result<Option<policy::OnDemand>, String>,
    pub pool: Result<Option<policy::SocketSpec>, String>,
    /// A uWSGI application with no uWSGI binary to run it: why it cannot start.
    pub missing_uwsgi: Option<String>,
}

/// Reads vassals' configs for their held sockets.
pub struct Judge<'a> {
    settings: &'a Settings,
    spawner: &'a Spawner,
    reader: &'a RefCell<ConfigReader>,
}

impl<'a> Judge<'a> {
    pub fn new(
        settings: &'a Settings,
        spawner: &'a Spawner,
        reader: &'a RefCell<ConfigReader>,
    ) -> Self {
        Judge {
            settings,
            spawner,
            reader,
        }
    }

    /// Tyrant mode: a held socket is bound with its tenant's filesystem identity.
    pub fn identity(&self, v: &Vassal) -> Option<(u32, u32)> {
        held_identity(v, self.settings.tyrant)
    }

    /// The config's on-demand and pool sockets, from one load of it per event, read as its
    /// runtime will read it: with the emperor's `vassal-set`s and `vassals-include`s, the
    /// runtime's clean environment, and in tyrant mode the tenant's filesystem identity (so
    /// `@(file)` and includes read only what the tenant may). A config that does not load
    /// asks for neither: its runtime reports why.
    pub fn wishes(&self, v: &Vassal) -> HeldWishes {
        let config = match self.load_as_runtime(v) {
            Ok(Some(config)) => config,
            Ok(None) => {
                return HeldWishes {
                    on_demand: Ok(None),
                    pool: Ok(None),
                    missing_uwsgi: None,
                }
            }
            Err(message) => {
                return HeldWishes {
                    on_demand: Err(message.clone()),
                    pool: Err(message),
                    missing_uwsgi: None,
                }
            }
        };
        let missing_uwsgi = match self.spawner.uwsgi_binary() {
            Err(e) if !payload::has_binary_patch(&config) => Some(format!(
                "{}: a uWSGI application (it names no binary patch): {e}",
                config.path.display()
            )),
            _ => None,
        };
        let context = self.context();
        let on_demand = policy::on_demand(&config, &context).map_err(|e| e.to_string());
        if matches!(on_demand, Ok(None)) {
            if let Some(entry) = config.get(policy::IDLE_OPTION) {
                warn!(vassal = %v.name, "{}: option \"idle\": ignored without on-demand-socket", entry.origin);
            }
        }
        let pool = policy::pool_socket(&config, &context).map_err(|e| e.to_string());
        HeldWishes {
            on_demand,
            pool,
            missing_uwsgi,
        }
    }

    /// What the config reader is asked for the config at `path` (a store's `text`, its
    /// `store_socket` column), read as `owner` in tyrant mode: its runtime's view of it.
    pub fn request(
        &self,
        path: &Path,
        text: Option<&str>,
        store_socket: Option<&str>,
        owner: Option<(u32, u32)>,
    ) -> ReadRequest {
        let mut sets = self.settings.vassal_sets.clone();
        sets.extend(socket_sets(store_socket));
        ReadRequest {
            path: path.to_path_buf(),
            text: text.map(str::to_owned),
            sets,
            includes: self.settings.vassals_include.clone(),
            environment: self.spawner.runtime_env(),
            owner,
            keys: HELD_SOCKET_OPTIONS.iter().map(|k| k.to_string()).collect(),
        }
    }

    /// What the emperor judges a held socket's address with (the tyrant port rule).
    fn context(&self) -> JailContext {
        JailContext {
            tyrant: self.settings.tyrant,
            tyrant_ports: self.settings.tyrant_ports.clone(),
            ..JailContext::default()
        }
    }

    /// The options of the vassal's config that the emperor acts on (its held sockets), as
    /// its runtime will load it (see [`Self::wishes`]), loaded by the config reader, never
    /// here; None when it does not load (its runtime reports why). Err: the config could not
    /// be judged (its worker died, its owner's identity could not be taken): the vassal is
    /// refused with that reason.
    fn load_as_runtime(&self, v: &Vassal) -> Result<Option<config::Config>, String> {
        let request = self.request(
            &v.path,
            v.config.as_deref(),
            v.store_socket.as_deref(),
            self.identity(v),
        );
        let reply = self
            .reader
            .borrow_mut()
            .read(&request)
            .map_err(|e| format!("{}: {e}", v.path.display()))?;
        match reply {
            ReadReply::Loaded(entries) => Ok(Some(config::Config {
                path: v.path.clone(),
                entries,
            })),
            ReadReply::DoesNotLoad(e) => {
                debug!(vassal = %v.name, "not judged for held sockets (its runtime will report): {e}");
                Ok(None)
            }
            ReadReply::Unreadable(e) => Err(format!(
                "{}: reading it as its owner: {e}",
                v.path.display()
            )),
            ReadReply::WorkerFailed(e) => Err(format!("{}: {e}", v.path.display())),
        }
    }
}

/// Tyrant mode: the socket is bound with its tenant's filesystem identity.
pub fn held_identity(v: &Vassal, tyrant: bool) -> Option<(u32, u32)> {
    if tyrant {
        v.owner
    } else {
        None
    }
}

/// The options a store gives besides the config text: its on-demand socket column becomes
/// `on-demand-socket`, set before the config's own lines (so the runtime sees it too).
pub fn store_sets(v: &Vassal) -> Vec<(String, String)> {
    socket_sets(v.store_socket.as_deref())
}

fn socket_sets(store_socket: Option<&str>) -> Vec<(String, String)> {
    store_socket
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| (policy::ON_DEMAND_OPTION.to_string(), s.to_string()))
        .collect()
}
