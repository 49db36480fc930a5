//! Credentials: capabilities (capget, capset), groups, uids and gids (raw, per thread, so
//! async-signal-safe), and the filesystem ids.

use nix::errno::Errno;

/// The kernel's capability header and data (linux/capability.h, version 3: two data words).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// capset(2) on the calling thread: effective, permitted and inheritable as 64-bit masks.
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let split = |m: u64| [m as u32, (m >> 32) as u32];
    let (e, p, i) = (split(effective), split(permitted), split(inheritable));
    let data = [
        CapData {
            effective: e[0],
            permitted: p[0],
            inheritable: i[0],
        },
        CapData {
            effective: e[1],
            permitted: p[1],
            inheritable: i[1],
        },
    ];
    // SAFETY: header and a two-element data array of the v3 layout, both alive for the call.
    let ret =
        unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    Errno::result(ret).map(drop)
}

/// capget(2) on the calling thread: (effective, permitted, inheritable).
pub fn capget() -> Result<(u64, u64, u64), Errno> {
    capget_of(0)
}

/// capget(2) on process `pid` (0: the calling thread).
pub fn capget_of(pid: i32) -> Result<(u64, u64, u64), Errno> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and a two-element data array of the v3 layout the kernel fills.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    Errno::result(ret)?;
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
        join(data[0].inheritable, data[1].inheritable),
    ))
}

/// setgroups(2) with a prepared list (empty = no supplementary groups).
pub fn setgroups(groups: &[libc::gid_t]) -> Result<(), Errno> {
    // SAFETY: pointer and length of a live slice.
    let ret = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    Errno::result(ret).map(drop)
}

/// setresgid(2) for the calling thread only (raw syscall: no glibc cross-thread broadcast,
/// which is not async-signal-safe; the child of a clone has a single thread anyway).
pub fn setresgid(gid: u32) -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    let ret = unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) };
    Errno::result(ret).map(drop)
}

/// setresuid(2), raw for the same reason as [`setresgid`].
pub fn setresuid(uid: u32) -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    let ret = unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
    Errno::result(ret).map(drop)
}

/// getresuid(2) and getresgid(2): ((ruid, euid, suid), (rgid, egid, sgid)).
pub fn getres_ids() -> ((u32, u32, u32), (u32, u32, u32)) {
    let (mut ru, mut eu, mut su, mut rg, mut eg, mut sg) = (0, 0, 0, 0, 0, 0);
    // SAFETY: pointers to six live locals of the right type.
    unsafe {
        libc::getresuid(&mut ru, &mut eu, &mut su);
        libc::getresgid(&mut rg, &mut eg, &mut sg);
    }
    ((ru, eu, su), (rg, eg, sg))
}

/// setfsuid(2) for the calling thread; returns the previous fsuid (the call reports no error:
/// the caller reads the result back to see whether it took).
pub fn setfsuid(uid: u32) -> u32 {
    // SAFETY: integer argument only; setfsuid cannot fail in a way that breaks memory safety.
    unsafe { libc::syscall(libc::SYS_setfsuid, uid) as u32 }
}

/// setfsgid(2) for the calling thread; returns the previous fsgid.
pub fn setfsgid(gid: u32) -> u32 {
    // SAFETY: integer argument only.
    unsafe { libc::syscall(libc::SYS_setfsgid, gid) as u32 }
}
