//! The emperor <-> vassal protocol: single bytes over a socketpair whose vassal end is fd 3 in
//! the vassal, named by `UWSGI_EMPEROR_FD` (uWSGI-compatible, so a uWSGI-aware payload that
//! inherits the fd can speak it too).

/// The runtime's exit status when it fails (uWSGI's status 1: the config is unusable, or the
/// jail or the payload could not be set up), as `vassal::RuntimeError::exit_code` gives it.
/// uWSGI runs `fallback-config` on it; the runtime does for the failures
/// `RuntimeError::may_fall_back` names.
pub const EXIT_CONFIG_ERROR: i32 = 1;
/// The runtime's exit status asking the emperor to start the vassal afresh: a reload changed
/// its jail, which a running runtime cannot redo.
pub const EXIT_RESPAWN: i32 = 75;

/// This protocol's version. An emperor upgraded in place keeps talking to the runtimes the
/// old binary started, so a new binary speaking another version refuses to take over (its
/// probe says why) and the old emperor goes on: bump it with any change of a byte's meaning.
pub const PROTOCOL_VERSION: u32 = 1;

/// Environment variable naming the vassal's end of the protocol socket.
pub const ENV_FD: &str = "UWSGI_EMPEROR_FD";
/// Where the vassal's end of the protocol socket lives in the vassal runtime and its payload.
pub const VASSAL_FD: i32 = 3;

/// The runtime's own binary, found beside the emperor's (`emperor-vassal vassal CONFIG`).
pub const RUNTIME_BINARY: &str = "emperor-vassal";
/// A hash of the sources this binary was built from (see build.rs): the emperor runs
/// runtimes from [`RUNTIME_BINARY`] only when it prints the same stamp.
pub const SOURCE_STAMP: &str = env!("EMPEROR_SOURCE_STAMP");
/// `emperor-vassal --source-stamp` prints [`SOURCE_STAMP`].
pub const SOURCE_STAMP_FLAG: &str = "--source-stamp";

/// Emperor -> vassal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Stop gracefully and exit.
    Stop,
    /// Reload: restart the payload on a freshly read config.
    Reload,
}

impl Command {
    pub fn byte(self) -> u8 {
        match self {
            Command::Stop => 0,
            Command::Reload => 1,
        }
    }

    pub fn from_byte(byte: u8) -> Option<Command> {
        match byte {
            0 => Some(Command::Stop),
            1 => Some(Command::Reload),
            _ => None,
        }
    }
}

/// Vassal -> emperor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// 1: the payload is started (uWSGI's "ready" field).
    Spawned,
    /// 2: the vassal asks for its config again (config-through-the-socket monitors).
    ConfigRequest,
    /// 5: the payload accepts requests (uWSGI's "accepting").
    Ready,
    /// 17: the vassal proved it works; it leaves the blacklist.
    Loyal,
    /// 22: the vassal stops on its own and must not be respawned.
    VoluntaryShutdown,
    /// 26: still alive (once sent, the emperor expects one every required-heartbeat seconds).
    Heartbeat,
    /// 30: the vassal asks for reinforcements (broodlord).
    Broodlord,
    /// 40 (ours, not uWSGI's): the payload failed to start in a jail already set up; start the
    /// vassal afresh on its `fallback-config` (a new jail), not throttled as a crash.
    FallBack,
    /// Anything else: logged and ignored.
    Unknown(u8),
}

impl Message {
    pub fn from_byte(byte: u8) -> Message {
        match byte {
            1 => Message::Spawned,
            2 => Message::ConfigRequest,
            5 => Message::Ready,
            17 => Message::Loyal,
            22 => Message::VoluntaryShutdown,
            26 => Message::Heartbeat,
            30 => Message::Broodlord,
            40 => Message::FallBack,
            other => Message::Unknown(other),
        }
    }

    pub fn byte(self) -> u8 {
        match self {
            Message::Spawned => 1,
            Message::ConfigRequest => 2,
            Message::Ready => 5,
            Message::Loyal => 17,
            Message::VoluntaryShutdown => 22,
            Message::Heartbeat => 26,
            Message::Broodlord => 30,
            Message::FallBack => 40,
            Message::Unknown(byte) => byte,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips_and_exactly_the_known_ones_have_a_meaning() {
        const KNOWN: [u8; 8] = [1, 2, 5, 17, 22, 26, 30, 40];
        for byte in 0..=u8::MAX {
            let message = Message::from_byte(byte);
            assert_eq!(message.byte(), byte, "{message:?}");
            assert_eq!(
                !matches!(message, Message::Unknown(_)),
                KNOWN.contains(&byte),
                "byte {byte}"
            );
        }
    }

    #[test]
    fn unknown_bytes_are_kept_for_the_log() {
        assert_eq!(Message::from_byte(99), Message::Unknown(99));
        assert_eq!(Message::from_byte(0), Message::Unknown(0));
    }

    #[test]
    fn commands_use_uwsgi_bytes() {
        assert_eq!(Command::Stop.byte(), 0);
        assert_eq!(Command::Reload.byte(), 1);
        assert_eq!(Command::from_byte(1), Some(Command::Reload));
        assert_eq!(Command::from_byte(7), None);
    }
}
