//! Who the emperor's helpers (the clone server, the config reader) become: the unprivileged
//! emperor's identity, passed on their command line, and the start every helper shares.
//! Below the emperor: the helpers import this, never the emperor itself.

/// The unprivileged emperor's identity: uid, gid and the capabilities it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmperorIdentity {
    pub uid: u32,
    pub gid: u32,
    pub keep: jail::caps::CapSet,
}

impl EmperorIdentity {
    /// `--uid U --gid G --keep-caps BITS`: how a helper process (the clone server, the config
    /// reader) started by the emperor is told to take this identity.
    pub fn helper_args(&self) -> [String; 6] {
        [
            "--uid".to_string(),
            self.uid.to_string(),
            "--gid".to_string(),
            self.gid.to_string(),
            "--keep-caps".to_string(),
            self.keep.0.to_string(),
        ]
    }
}

/// A helper process's start: adopt its socket to the emperor at `fd`, then take the
/// unprivileged emperor's `identity` when given. None (the failure logged, naming `helper`)
/// when either fails.
pub fn begin_helper(
    helper: &str,
    fd: std::os::fd::RawFd,
    identity: Option<EmperorIdentity>,
) -> Option<std::os::fd::OwnedFd> {
    let socket = match jail::fd::adopt_inherited(fd) {
        Ok(socket) => socket,
        Err(e) => {
            tracing::error!("{helper}: its socket to the emperor (fd {fd}): {e}");
            return None;
        }
    };
    if let Some(id) = identity {
        if let Err(e) =
            jail::creds::become_unprivileged(id.uid, id.gid, id.keep, jail::caps::last_cap())
        {
            tracing::error!(
                uid = id.uid,
                "{helper}: cannot take the emperor's identity: {e}"
            );
            return None;
        }
    }
    Some(socket)
}
