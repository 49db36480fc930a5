//! What the child of a launch was doing when it failed, as a value: its Display names the call
//! and its argument (`chdir("/srv/app")`, `setresuid(1000)`), so the parent's error says which
//! system call failed on what.
//!
//! The child cannot allocate, so it reports a `ChildStep<()>` (numbers only; a path is `()`)
//! as a fixed-size record of words on its error pipe; the parent decodes it and puts back the
//! paths it already has (the program, the working directory).

use crate::caps::CapSet;
use crate::creds::{DropStep, Ids, Leftover, Resource};
use nix::errno::Errno;
use std::fmt;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

/// One step of the child between clone and execve. `P` holds a path: `()` in the child,
/// which only says which step it was, a `PathBuf` in the parent's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildStep<P = PathBuf> {
    /// close_range(CLOSE_RANGE_UNSHARE): a private fd table of the fds below this one.
    UnshareFds {
        keep_below: u32,
    },
    /// prctl(PR_SET_DUMPABLE, 1) while held, so the parent can write the id maps.
    Dumpable,
    /// Waiting for the parent's go byte (which never came: the parent closed or died).
    WaitForRelease,
    /// setgroups([]), setresgid(0), setresuid(0): becoming root of the new user namespace.
    RootGroups,
    RootGid,
    RootUid,
    /// mount of a procfs on /proc for the child's own pid namespace.
    MountProc,
    /// fcntl(F_DUPFD_CLOEXEC) of a source fd to stage it above every target.
    StageFd {
        source: RawFd,
        target: RawFd,
    },
    /// dup2 of a staged source fd onto its target.
    MapFd {
        source: RawFd,
        target: RawFd,
    },
    /// close_range(CLOSE_RANGE_CLOEXEC) from this fd up.
    CloexecFrom(u32),
    /// close_range from this fd up, but the kept ones (a child running on in process).
    CloseFrom(u32),
    Getrlimit(u32),
    Setrlimit {
        resource: u32,
        soft: u64,
        hard: u64,
    },
    /// A step of the privilege drop ([`crate::creds::PrivilegeDrop`]).
    Drop(DropStep),
    /// prctl(PR_SET_PDEATHSIG) with this signal.
    ParentDeathSignal(i32),
    /// getppid() is no longer the parent that cloned us: it died before the prctl above.
    ParentDied {
        parent: i32,
    },
    Chdir(P),
    /// seccomp(SECCOMP_SET_MODE_FILTER) (and no_new_privs before it).
    Seccomp,
    Execve(P),
    /// A report the parent could not read (short, or an unknown step number).
    Unknown(u64),
}

impl ChildStep<()> {
    /// Put back the paths the parent has.
    pub(super) fn with_paths(self, program: &Path, cwd: Option<&Path>) -> ChildStep {
        let cwd = || cwd.map(Path::to_path_buf).unwrap_or_default();
        use ChildStep::*;
        match self {
            Chdir(()) => Chdir(cwd()),
            Execve(()) => Execve(program.to_path_buf()),
            UnshareFds { keep_below } => UnshareFds { keep_below },
            Dumpable => Dumpable,
            WaitForRelease => WaitForRelease,
            RootGroups => RootGroups,
            RootGid => RootGid,
            RootUid => RootUid,
            MountProc => MountProc,
            StageFd { source, target } => StageFd { source, target },
            MapFd { source, target } => MapFd { source, target },
            CloexecFrom(fd) => CloexecFrom(fd),
            CloseFrom(fd) => CloseFrom(fd),
            Getrlimit(resource) => Getrlimit(resource),
            Setrlimit {
                resource,
                soft,
                hard,
            } => Setrlimit {
                resource,
                soft,
                hard,
            },
            Drop(step) => Drop(step),
            ParentDeathSignal(signal) => ParentDeathSignal(signal),
            ParentDied { parent } => ParentDied { parent },
            Seccomp => Seccomp,
            Unknown(code) => Unknown(code),
        }
    }
}

impl fmt::Display for ChildStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ChildStep::*;
        const AS_ROOT: &str = "to become root of the user namespace";
        match self {
            UnshareFds { keep_below } => {
                write!(f, "close_range({keep_below}, ~0, CLOSE_RANGE_UNSHARE)")
            }
            Dumpable => f.write_str("prctl(PR_SET_DUMPABLE, 1)"),
            WaitForRelease => f.write_str("read(release pipe): the parent never released it"),
            RootGroups => write!(f, "setgroups([]) {AS_ROOT}"),
            RootGid => write!(f, "setresgid(0) {AS_ROOT}"),
            RootUid => write!(f, "setresuid(0) {AS_ROOT}"),
            MountProc => f.write_str("mount(\"/proc\", \"proc\")"),
            StageFd { source, target } => {
                write!(
                    f,
                    "fcntl({source}, F_DUPFD_CLOEXEC) to pass it as fd {target}"
                )
            }
            MapFd { source, target } => write!(f, "dup2 to pass fd {source} as fd {target}"),
            CloexecFrom(first) => write!(f, "close_range({first}, ~0, CLOSE_RANGE_CLOEXEC)"),
            CloseFrom(first) => write!(f, "close_range({first}, ~0) but the kept fds"),
            Getrlimit(resource) => write!(f, "getrlimit({})", Resource(*resource)),
            Setrlimit {
                resource,
                soft,
                hard,
            } => write!(f, "setrlimit({}, {soft}, {hard})", Resource(*resource)),
            Drop(step) => step.fmt(f),
            ParentDeathSignal(signal) => write!(f, "prctl(PR_SET_PDEATHSIG, {signal})"),
            ParentDied { parent } => write!(
                f,
                "getppid() is not {parent}: the parent died before the child started"
            ),
            Chdir(dir) => write!(f, "chdir({dir:?})"),
            Seccomp => f.write_str("seccomp(SECCOMP_SET_MODE_FILTER)"),
            Execve(program) => write!(f, "execve({program:?})"),
            Unknown(code) => write!(f, "unknown step {code}"),
        }
    }
}

/// Words in the child's report: the step's number, the errno, then the step's arguments.
pub(super) const REPORT_WORDS: usize = 24;
/// The report as the child writes it (its size is well under PIPE_BUF: one atomic write).
pub(super) type Report = [u64; REPORT_WORDS];

/// Fills a report word by word; words past the end are dropped (the parent reads them as 0).
struct Writer {
    words: Report,
    at: usize,
}

impl Writer {
    fn put(&mut self, word: u64) -> &mut Self {
        if let Some(slot) = self.words.get_mut(self.at) {
            *slot = word;
        }
        self.at += 1;
        self
    }

    fn put_all(&mut self, words: &[u64]) -> &mut Self {
        words.iter().for_each(|&word| {
            self.put(word);
        });
        self
    }
}

/// Reads a report word by word; past its end every word is 0.
struct Reader<'a> {
    words: &'a [u64],
}

impl Reader<'_> {
    fn next(&mut self) -> u64 {
        let (&first, rest) = self.words.split_first().unwrap_or((&0, &[]));
        self.words = rest;
        first
    }

    fn next_u32(&mut self) -> u32 {
        self.next() as u32
    }

    fn next_i32(&mut self) -> i32 {
        self.next() as i32
    }
}

/// The child's report of `step` failing with `errno`. No allocation.
pub(super) fn encode(step: ChildStep<()>, errno: Errno) -> Report {
    use ChildStep::*;
    let mut w = Writer {
        words: [0; REPORT_WORDS],
        at: 0,
    };
    let (number, args): (u64, [u64; 3]) = match step {
        UnshareFds { keep_below } => (1, [keep_below.into(), 0, 0]),
        Dumpable => (2, [0; 3]),
        WaitForRelease => (3, [0; 3]),
        RootGroups => (4, [0; 3]),
        RootGid => (5, [0; 3]),
        RootUid => (6, [0; 3]),
        MountProc => (7, [0; 3]),
        StageFd { source, target } => (8, [source as u64, target as u64, 0]),
        MapFd { source, target } => (9, [source as u64, target as u64, 0]),
        CloexecFrom(first) => (10, [first.into(), 0, 0]),
        Getrlimit(resource) => (11, [resource.into(), 0, 0]),
        Setrlimit {
            resource,
            soft,
            hard,
        } => (12, [resource.into(), soft, hard]),
        Drop(_) => (13, [0; 3]),
        ParentDeathSignal(signal) => (14, [signal as u64, 0, 0]),
        ParentDied { parent } => (15, [parent as u64, 0, 0]),
        Chdir(()) => (16, [0; 3]),
        Seccomp => (17, [0; 3]),
        Execve(()) => (18, [0; 3]),
        CloseFrom(first) => (19, [first.into(), 0, 0]),
        Unknown(code) => (code, [0; 3]),
    };
    w.put(number).put(errno as i32 as u64).put_all(&args);
    if let Drop(drop_step) = step {
        encode_drop(&mut w, drop_step);
    }
    w.words
}

/// The parent's reading of a report: which step, which errno.
pub(super) fn decode(words: &[u64]) -> (ChildStep<()>, Errno) {
    use ChildStep::*;
    let mut r = Reader { words };
    let number = r.next();
    let errno = Errno::from_raw(r.next_i32());
    let (a, b, c) = (r.next(), r.next(), r.next());
    let step = match number {
        1 => UnshareFds {
            keep_below: a as u32,
        },
        2 => Dumpable,
        3 => WaitForRelease,
        4 => RootGroups,
        5 => RootGid,
        6 => RootUid,
        7 => MountProc,
        8 => StageFd {
            source: a as i32,
            target: b as i32,
        },
        9 => MapFd {
            source: a as i32,
            target: b as i32,
        },
        10 => CloexecFrom(a as u32),
        11 => Getrlimit(a as u32),
        12 => Setrlimit {
            resource: a as u32,
            soft: b,
            hard: c,
        },
        13 => decode_drop(&mut r).map_or(Unknown(number), Drop),
        14 => ParentDeathSignal(a as i32),
        15 => ParentDied { parent: a as i32 },
        16 => Chdir(()),
        17 => Seccomp,
        18 => Execve(()),
        19 => CloseFrom(a as u32),
        other => Unknown(other),
    };
    (step, errno)
}

fn encode_drop(w: &mut Writer, step: DropStep) {
    use DropStep::*;
    let (number, args): (u64, [u64; 3]) = match step {
        Getrlimit(resource) => (1, [resource.into(), 0, 0]),
        Setrlimit {
            resource,
            soft,
            hard,
        } => (2, [resource.into(), soft, hard]),
        Capget => (3, [0; 3]),
        BoundingDrop(cap) => (4, [cap.into(), 0, 0]),
        AmbientClear => (5, [0; 3]),
        KeepCaps(on) => (6, [on.into(), 0, 0]),
        Setgroups(n) => (7, [n as u64, 0, 0]),
        Setresgid(gid) => (8, [gid.into(), 0, 0]),
        Setresuid(uid) => (9, [uid.into(), 0, 0]),
        Capset(kept) => (10, [kept.0, 0, 0]),
        AmbientRaise(cap) => (11, [cap.into(), 0, 0]),
        NoNewPrivs => (12, [0; 3]),
        Verify(_) => (13, [0; 3]),
    };
    w.put(number).put_all(&args);
    if let Verify(left) = step {
        for ids in [left.uids, left.gids] {
            let Ids { asked, held } = ids.unwrap_or(Ids {
                asked: 0,
                held: [0; 3],
            });
            w.put(ids.is_some().into()).put(asked.into());
            w.put_all(&held.map(u64::from));
        }
        let caps = [
            left.effective,
            left.permitted,
            left.inheritable,
            left.bounding,
            left.missing,
        ];
        w.put_all(&caps.map(|set| set.0));
    }
}

fn decode_drop(r: &mut Reader<'_>) -> Option<DropStep> {
    use DropStep::*;
    let number = r.next();
    let (a, b, c) = (r.next(), r.next(), r.next());
    Some(match number {
        1 => Getrlimit(a as u32),
        2 => Setrlimit {
            resource: a as u32,
            soft: b,
            hard: c,
        },
        3 => Capget,
        4 => BoundingDrop(a as u32),
        5 => AmbientClear,
        6 => KeepCaps(a != 0),
        7 => Setgroups(a as usize),
        8 => Setresgid(a as u32),
        9 => Setresuid(a as u32),
        10 => Capset(CapSet(a)),
        11 => AmbientRaise(a as u32),
        12 => NoNewPrivs,
        13 => Verify(decode_leftover(r)),
        _ => return None,
    })
}

fn decode_leftover(r: &mut Reader<'_>) -> Leftover {
    let mut ids = || {
        let present = r.next() != 0;
        let asked = r.next_u32();
        let held = [r.next_u32(), r.next_u32(), r.next_u32()];
        present.then_some(Ids { asked, held })
    };
    let (uids, gids) = (ids(), ids());
    let mut caps = || CapSet(r.next());
    Leftover {
        uids,
        gids,
        effective: caps(),
        permitted: caps(),
        inheritable: caps(),
        bounding: caps(),
        missing: caps(),
    }
}
