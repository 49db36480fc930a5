//! The emperor's options decoded into its [`Settings`]: namespaces, tyrant mode, identity,
//! cgroups and limits, monitors.

use jail::caps::CapSet;
use jail::ns::Namespaces;
use std::path::PathBuf;
use std::time::Duration;

use super::{key_value, CliError, EmperorArgs};
use crate::config;
use crate::emperor::Settings;
use crate::helper_identity::EmperorIdentity;
use crate::policy::{Ceilings, PortList};

impl EmperorArgs {
    /// The emperor's settings; `UWSGI_VASSAL_*` variables become vassal-set options.
    pub fn settings(&self) -> Result<Settings, CliError> {
        let vassal_sets = self.vassal_sets()?;
        let monitors = self.monitors.iter().map(|m| monitor_spec(m)).collect();
        let use_clone = self.use_clone()?;
        Ok(Settings {
            use_clone,
            tyrant: self.emperor_tyrant,
            tyrant_min_id: self.emperor_tyrant_min_id,
            tyrant_ports: self.tyrant_ports()?,
            identity: self.identity()?,
            cgroup_root: self.cgroup_root()?,
            cgroup_ceilings: self.cgroup_ceilings()?,
            tenant_limits: self.tenant_limits()?,
            ceilings: Ceilings {
                address_space: self.vassal_limit_as,
                processes: self.vassal_limit_nproc,
                open_files: self.vassal_max_fd,
            },
            monitors,
            nofollow: self.emperor_nofollow,
            freq: Duration::from_secs(self.emperor_freq.max(1)),
            throttle: Duration::from_millis(self.emperor_throttle),
            max_throttle: Duration::from_millis(self.emperor_max_throttle),
            hibernate_after: (self.emperor_hibernate_after > 0)
                .then(|| Duration::from_millis(self.emperor_hibernate_after)),
            spawn_rate: self.emperor_spawn_rate,
            spawn_burst: self.emperor_spawn_burst,
            tenant_max_vassals: (self.emperor_tenant_max_vassals > 0)
                .then_some(self.emperor_tenant_max_vassals),
            required_heartbeat: Duration::from_secs(self.emperor_required_heartbeat),
            curse_tolerance: Duration::from_secs(self.emperor_curse_tolerance),
            stats: self.emperor_stats.clone(),
            metrics: self.emperor_metrics.clone(),
            control: self.emperor_control.clone(),
            vassal_sets,
            vassals_include: self.vassals_include.iter().map(|p| absolute(p)).collect(),
            runtime_binary: self.vassal_runtime.clone(),
            uwsgi_binary: self.binary_path.as_deref().map(absolute),
            reader_memory_mib: self.emperor_reader_memory,
        })
    }
}

impl EmperorArgs {
    /// `UWSGI_VASSAL_*` variables, then every `--vassal-set`.
    fn vassal_sets(&self) -> Result<Vec<(String, String)>, CliError> {
        let mut vassal_sets = config::vassal_env_sets(std::env::vars());
        for set in &self.vassal_set {
            vassal_sets.push(key_value("--vassal-set", set)?);
        }
        Ok(vassal_sets)
    }

    /// `--emperor-use-clone`: the namespaces every vassal gets.
    fn use_clone(&self) -> Result<Namespaces, CliError> {
        Ok(match &self.emperor_use_clone {
            Some(list) => list.parse::<Namespaces>().map_err(|e| CliError::BadValue {
                option: "--emperor-use-clone",
                value: list.clone(),
                reason: e.to_string(),
            })?,
            None => Namespaces::NONE,
        })
    }

    /// `--emperor-tyrant-ports`: the host ports a tyrant vassal may bind (none by default).
    fn tyrant_ports(&self) -> Result<PortList, CliError> {
        Ok(match &self.emperor_tyrant_ports {
            Some(list) => list.parse().map_err(|reason| CliError::BadValue {
                option: "--emperor-tyrant-ports",
                value: list.clone(),
                reason,
            })?,
            None => Default::default(),
        })
    }

    /// Where vassal cgroups go: the option (`self`: the emperor's own cgroup, delegated to it),
    /// else /sys/fs/cgroup/emperor on a cgroup v2 host when we are root.
    fn cgroup_root(&self) -> Result<Option<PathBuf>, CliError> {
        let root = std::path::Path::new("/sys/fs/cgroup");
        Ok(match self.emperor_cgroup.as_deref() {
            Some("none") => None,
            Some("self") => Some(own_cgroup(root).map_err(|reason| CliError::BadValue {
                option: "--emperor-cgroup",
                value: "self".into(),
                reason,
            })?),
            Some(dir) => Some(PathBuf::from(dir)),
            None => (nix::unistd::geteuid().is_root() && jail::cgroup::is_cgroup2(root))
                .then(|| root.join("emperor")),
        })
    }

    fn cgroup_ceilings(&self) -> Result<jail::cgroup::Limits, CliError> {
        let memory_max = size_option("--vassal-memory-max", &self.vassal_memory_max)?;
        let pids_max = self.vassal_pids_max.or(self
            .emperor_tyrant
            .then_some(crate::policy::TENANT_DEFAULT_PIDS));
        Ok(jail::cgroup::Limits {
            memory_max,
            pids_max,
            cpu_max: None,
            cpu_weight: self.vassal_cpu_weight,
        })
    }

    fn tenant_limits(&self) -> Result<jail::cgroup::Limits, CliError> {
        Ok(jail::cgroup::Limits {
            memory_max: size_option("--tenant-memory-max", &self.tenant_memory_max)?,
            pids_max: self.tenant_pids_max,
            cpu_max: None,
            cpu_weight: self.tenant_cpu_weight,
        })
    }

    /// `uid`, `gid`, `cap`: who the emperor becomes after start-up.
    fn identity(&self) -> Result<Option<EmperorIdentity>, CliError> {
        let Some(uid) = &self.uid else {
            if let Some(gid) = &self.gid {
                return Err(CliError::BadValue {
                    option: "--gid",
                    value: gid.clone(),
                    reason: "needs --uid too".into(),
                });
            }
            return Ok(None);
        };
        let uid_number = resolve_user(uid)?;
        let gid_number = match &self.gid {
            Some(gid) => resolve_group(gid)?,
            None => uid_number,
        };
        let keep = match &self.cap {
            Some(list) => list.parse::<CapSet>().map_err(|e| CliError::BadValue {
                option: "--cap",
                value: list.clone(),
                reason: e.to_string(),
            })?,
            None => CapSet::EMPTY,
        };
        Ok(Some(EmperorIdentity {
            uid: uid_number,
            gid: gid_number,
            keep,
        }))
    }
}

fn resolve_user(name: &str) -> Result<u32, CliError> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
        .ok_or_else(|| CliError::BadValue {
            option: "--uid",
            value: name.to_string(),
            reason: "no such user".into(),
        })
}

fn resolve_group(name: &str) -> Result<u32, CliError> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
        .ok_or_else(|| CliError::BadValue {
            option: "--gid",
            value: name.to_string(),
            reason: "no such group".into(),
        })
}

/// Relative monitor paths are resolved now: the runtimes do not share our working directory.
fn monitor_spec(spec: &str) -> String {
    if spec.contains("://") || spec.starts_with('/') {
        return spec.to_string();
    }
    absolute(std::path::Path::new(spec)).display().to_string()
}

fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The cgroup v2 directory this process was started in (`0::/system.slice/emperor.service` in
/// /proc/self/cgroup), which must not be the hierarchy's root.
fn own_cgroup(mount: &std::path::Path) -> Result<PathBuf, String> {
    let text = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("read /proc/self/cgroup: {e}"))?;
    let path = text
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or("no cgroup v2 entry in /proc/self/cgroup")?;
    if path == "/" || !jail::cgroup::is_cgroup2(mount) {
        return Err(format!(
            "the emperor was started in the cgroup v2 root ({path}) or without cgroup v2 on {}: \
             \"self\" needs a cgroup delegated to it (Delegate=yes)",
            mount.display()
        ));
    }
    Ok(mount.join(path.trim_start_matches('/')))
}

/// A size option (`512M`), or the error naming it.
fn size_option(option: &'static str, text: &Option<String>) -> Result<Option<u64>, CliError> {
    text.as_ref()
        .map(|text| {
            crate::policy::parse_size(text).ok_or_else(|| CliError::BadValue {
                option,
                value: text.clone(),
                reason: "expected a size such as 512M".into(),
            })
        })
        .transpose()
}
