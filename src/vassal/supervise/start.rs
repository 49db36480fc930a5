//! Starting a payload: its launch (the jail's last steps in the child), its channel, its
//! output and the owner's id maps when it gets a user namespace of its own.

use super::super::channel::PayloadChannel;
use super::super::output::PayloadOutput;
use crate::policy::payload::{Payload, PayloadKind};
use crate::policy::VassalPlan;
use crate::sockets::Bound;
use jail::launch::Launch;
use nix::unistd::Pid;
use std::time::Instant;

use super::*;

impl Supervisor {
    /// Launch the payload in its own session, with a clean environment and signal state, and
    /// SIGKILL if this runtime dies.
    ///
    /// fds: the vassal's sockets at 3, 4, ... (systemd's SD_LISTEN_FDS_START is 3), then the
    /// payload's protocol channel right after them (UWSGI_EMPEROR_FD says where; 3 with no
    /// socket), then a uWSGI payload's config channel (UWSGI_EMPEROR_FD_CONFIG).
    /// A binary patch learns of its sockets two ways: LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID
    /// (systemd; the child writes its own pid into LISTEN_PID, see `Launch::env_own_pid`) and
    /// NGINX="3;4;" (nginx adopts inherited listening sockets whose address matches a
    /// `listen`); uWSGI finds them as `fd://N` in the config it is handed.
    pub fn start(
        &mut self,
        payload: &Payload,
        plan: &VassalPlan,
        config_frame: Option<Vec<u8>>,
        sockets: &[Bound],
        (output, output_end): (PayloadOutput, std::os::fd::OwnedFd),
    ) -> Result<Pid, StartError> {
        let mut launch = Launch::new(&payload.program, &payload.argv)?;
        // Its stdout and stderr: a pipe we read, so its lines are tagged with the vassal.
        let output_fd = std::os::fd::AsRawFd::as_raw_fd(&output_end);
        launch.map_fd(output_fd, 1).map_fd(output_fd, 2);
        let mut namespaces = plan.payload_namespaces.0;
        if plan.payload_as_owner {
            // Its own user namespace, whose maps we write while it is held: the owner's uid
            // there is the jail's root (the owner on the host). A pid namespace's /proc then
            // needs a mount namespace that user namespace owns.
            namespaces |= libc::CLONE_NEWUSER as u64;
            if namespaces & libc::CLONE_NEWPID as u64 != 0 {
                namespaces |= libc::CLONE_NEWNS as u64;
            }
            launch.hold();
        }
        launch.namespaces(namespaces);
        if plan.payload_mounts_proc {
            launch.mount_proc();
        }
        if !plan.privileged_payload {
            launch.drop_privileges(plan.drop.clone());
        }
        if let Some(cgroup) = &self.cgroup {
            jail::cgroup::apply_limits_at(cgroup, &plan.cgroup)?;
            launch.into_cgroup(std::os::fd::AsRawFd::as_raw_fd(cgroup));
        }
        if let Some(filter) = jail::seccomp::build(plan.seccomp) {
            launch.seccomp(filter);
        }
        for (key, value) in &payload.env {
            launch.env(key, value)?;
        }
        let first = crate::protocol::VASSAL_FD;
        for (i, socket) in sockets.iter().enumerate() {
            launch.map_fd(
                std::os::fd::AsRawFd::as_raw_fd(&socket.fd),
                first + i as i32,
            );
        }
        // uWSGI gets its sockets as fd://N in its config: it would adopt LISTEN_FDS twice.
        if !sockets.is_empty() && payload.kind == PayloadKind::Patch {
            let count = sockets.len() as i32;
            let names: Vec<&str> = sockets.iter().map(|s| s.spec.option.as_str()).collect();
            let nginx: String = (first..first + count).map(|fd| format!("{fd};")).collect();
            launch.env("LISTEN_FDS", count.to_string())?;
            launch.env("LISTEN_FDNAMES", names.join(":"))?;
            launch.env_own_pid("LISTEN_PID")?;
            launch.env("NGINX", nginx)?;
        }
        // Its own channel, never the runtime's link: one reader per command byte.
        let mut channel =
            PayloadChannel::new(payload.kind == PayloadKind::Uwsgi).map_err(StartError::Channel)?;
        let (protocol_end, config_end) = channel.payload_ends();
        let target = first + sockets.len() as i32;
        launch.map_fd(
            std::os::fd::AsRawFd::as_raw_fd(&protocol_end.expect("new")),
            target,
        );
        launch.env(crate::protocol::ENV_FD, target.to_string())?;
        if let Some(config_end) = config_end {
            launch.map_fd(std::os::fd::AsRawFd::as_raw_fd(&config_end), target + 1);
            launch.env(
                crate::policy::uwsgi::ENV_CONFIG_FD,
                (target + 1).to_string(),
            )?;
        }
        if let Some(frame) = &config_frame {
            // In the channel before uWSGI starts: it waits at most 5 s for it.
            channel
                .push_config(frame)
                .map_err(StartError::ConfigChannel)?;
        }
        launch
            .new_session()
            .parent_death_signal(libc::SIGKILL)
            .cwd(&payload.cwd)?;
        let launched = launch.start()?;
        if plan.payload_as_owner {
            let maps = owner_maps().map_err(StartError::UserNamespace)?;
            jail::userns::write_maps_from_parent(launched.pid, &maps)
                .map_err(StartError::UserNamespace)?;
        }
        let running = launched.release()?;
        drop(output_end);
        self.output = Some(output);
        channel.handed_over();
        self.channel = Some(channel);
        self.kind = payload.kind;
        self.config_frame = config_frame;
        self.said_ready = false;
        self.pending_stop = None;
        self.payload = Some(running.pid);
        self.payload_status = None;
        self.started_at = Instant::now();
        self.paused = false;
        self.probe_at = self.ready.needs_probing().then_some(self.started_at);
        // uWSGI declares its own loyalty (byte 17 after a worker's first request).
        self.loyal = payload.kind == PayloadKind::Uwsgi;
        self.last_event = self.started_at;
        Ok(running.pid)
    }
}

/// The payload's maps in tyrant mode: the owner's ids (what our root is on the host, read
/// from our own maps) map to our root.
fn owner_maps() -> Result<jail::userns::IdMaps, jail::SysError> {
    let own = jail::userns::own_namespace()?;
    let root_outside = |outside: Option<u32>, file: &str| {
        let path = format!("/proc/self/{file}");
        outside.ok_or_else(|| {
            jail::SysError::with_path("find root in", &path, nix::errno::Errno::ENOENT)
        })
    };
    let range = |owner: u32| jail::userns::IdRange {
        inside: owner,
        outside: 0,
        count: 1,
    };
    Ok(jail::userns::IdMaps {
        uids: vec![range(root_outside(own.outside_uid(0), "uid_map")?)],
        gids: vec![range(root_outside(own.outside_gid(0), "gid_map")?)],
    })
}
