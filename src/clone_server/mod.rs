//! The clone server: a small process the emperor starts before it has any vassal, which
//! clones runtimes on the emperor's behalf: the root emperor's server every runtime, each
//! running in a copy of the server (`--in-process`, see [`in_process`]); the unprivileged
//! emperor's those that get a user namespace, each executing the runtime binary.
//!
//! A runtime entering a new user namespace is held between clone and execve while its parent
//! writes its id maps, so it cannot run in its parent's memory the way other runtimes do
//! (`jail::vfork`): it gets a copy. Cloned by the emperor, that copy is the emperor's page
//! tables, which grow with every vassal it supervises (18 MiB at 5000), and every page the
//! emperor writes afterwards faults once: each spawn would cost more than the one before.
//! Cloned by this server, whose memory stays the same size, it costs the same at any scale.
//!
//! The server clones with CLONE_PARENT, so each runtime is still the emperor's child: the
//! emperor reaps it, gets its SIGCHLD, receives its pidfd over the socket, and its death
//! still sends the runtime its parent-death signal. The server runs with the emperor's own
//! credentials (it drops to the unprivileged emperor's uid, gid and capabilities itself), has
//! no input but the emperor's requests on an inherited socket, and exits when that socket
//! closes. If it is gone, the emperor clones the runtimes itself again.
//!
//! In process, a runtime costs a copy of this small process instead of an execve, the
//! dynamic loader's work and Rust's start-up (the bulk of a runtime's start, see
//! docs/PERFORMANCE.md). The server has one thread (checked before each copy), so the copy
//! may run ordinary code; it shares the server's address-space layout (docs/security.md,
//! "The clone server"). An upgraded emperor starts a new one rather than keep the old
//! binary's code in use.

mod client;
mod in_process;
mod serve;
mod start;
mod starts_mark;

pub use client::{CloneServer, CloneServerError, Failure};
pub use in_process::{TITLE_ROOM_BYTES, TITLE_ROOM_VARIABLE};
pub use serve::serve;
pub use start::{RuntimeStart, StartError, WireMaps};
pub use starts_mark::starts_go_on;

/// Where the server finds its socket to the emperor.
pub const SERVER_FD: i32 = 3;

/// Largest request or reply, in bytes (a runtime's command line and environment).
const MAX_MESSAGE: usize = 256 * 1024;

/// What the server sends once it has taken its identity and is ready for requests.
const READY: &[u8] = b"ready";
