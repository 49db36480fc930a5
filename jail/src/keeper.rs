//! Hibernation's system side (docs/PERFORMANCE.md, "Hibernation"): an idle vassal runtime
//! executes `emperor-keeper` (jail/keeper/, built by build.rs and embedded here) in its own
//! process, and the keeper executes the runtime again from an fd when the runtime is needed.
//! This module holds the two images' fds and says whether an execve keeps the process's
//! privileges exactly.

use crate::caps::CapSet;
use crate::error::SysError;
use crate::sys;
use std::os::fd::OwnedFd;

/// The keeper's image, or None where it is not built (an architecture it has no system
/// calls for): runtimes there never hibernate.
pub fn image() -> Option<&'static [u8]> {
    #[cfg(emperor_keeper)]
    return Some(include_bytes!(concat!(env!("OUT_DIR"), "/emperor-keeper")));
    #[cfg(not(emperor_keeper))]
    return None;
}

/// The keeper's image sealed in a memfd (close-on-exec), to execute.
pub fn sealed_image() -> Result<OwnedFd, SysError> {
    let image = image().ok_or_else(|| {
        SysError::new(
            "memfd_create (no emperor-keeper for this architecture)",
            nix::errno::Errno::ENOSYS,
        )
    })?;
    crate::memfd::sealed("emperor-keeper", image)
}

/// This process's own binary, opened (close-on-exec) while /proc/self/exe still names it: in
/// the jail's mount namespace the path may not resolve, the open file always executes.
pub fn open_own_binary() -> Result<OwnedFd, SysError> {
    if let Some(opened) = crate::ahead::take_own_binary() {
        return Ok(opened);
    }
    sys::openat(
        libc::AT_FDCWD,
        c"/proc/self/exe",
        libc::O_RDONLY | libc::O_CLOEXEC,
    )
    .map_err(|e| SysError::with_path("open", "/proc/self/exe", e))
}

/// Whether executing a binary without file capabilities and set-id bits gives this process
/// exactly the privileges it has now (not fewer: it could not set its payload up again; not
/// more): all of its ids root and every capability of the bounding set held, without
/// SECBIT_NOROOT, so the root rule gives the bounding set back. A runtime that is not root
/// never hibernates (see [`payload_cannot_reach`] for why it must hold capabilities).
pub fn exec_keeps_privileges() -> bool {
    let ((ru, eu, su), _) = sys::getres_ids();
    if [ru, eu, su] != [0; 3] {
        return false;
    }
    let Ok((effective, permitted, _)) = sys::capget() else {
        return false;
    };
    const SECURE_NOROOT: i32 = 1 << 0;
    let noroot =
        sys::prctl(libc::PR_GET_SECUREBITS, 0, 0).map_or(true, |bits| bits & SECURE_NOROOT != 0);
    let bounding = crate::creds::bounding_set(crate::caps::last_cap(), CapSet::EMPTY).0;
    !noroot && effective == bounding && permitted == bounding
}

/// Whether process `payload` (this runtime's child) cannot read or trace this process even
/// while it is dumpable: it holds no superset of this process's permitted capabilities, so
/// the kernel's capability rule for ptrace access (which /proc/PID/mem and the fd links
/// follow too) refuses it whatever the dumpable flag says. An execve makes a process
/// dumpable until its first instruction makes it non-dumpable again (the keeper's and the
/// woken runtime's first call); this rule covers that moment. Unknown caps: false.
pub fn payload_cannot_reach(payload: i32) -> bool {
    match (sys::capget(), sys::capget_of(payload)) {
        (Ok((_, ours, _)), Ok((_, theirs, _))) => ours & !theirs != 0,
        _ => false,
    }
}

/// PR_SET_DUMPABLE 0 (the jail's "make the runtime non-dumpable", taken up again after the
/// execve that reset it).
pub fn not_dumpable() -> Result<(), SysError> {
    sys::prctl(libc::PR_SET_DUMPABLE, 0, 0)
        .map(drop)
        .map_err(|e| SysError::new("prctl(PR_SET_DUMPABLE)", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keeper_is_a_static_image_without_relocations() {
        let image = image().expect("built for this architecture");
        assert_eq!(&image[..4], b"\x7fELF");
        // ET_DYN (position-independent: the kernel picks a random address for it).
        assert_eq!(u16::from_le_bytes([image[16], image[17]]), 3);
        // No PT_INTERP: nothing but the kernel loads it.
        let phoff = u64::from_le_bytes(image[32..40].try_into().unwrap()) as usize;
        let phentsize = u16::from_le_bytes([image[54], image[55]]) as usize;
        let phnum = u16::from_le_bytes([image[56], image[57]]) as usize;
        let kinds: Vec<u32> = (0..phnum)
            .map(|i| {
                let at = phoff + i * phentsize;
                u32::from_le_bytes(image[at..at + 4].try_into().unwrap())
            })
            .collect();
        const PT_INTERP: u32 = 3;
        assert!(!kinds.contains(&PT_INTERP), "program headers {kinds:?}");
        assert!(image.len() < 16 << 10, "{} bytes", image.len());
    }

    #[test]
    fn the_sealed_image_and_the_own_binary_open() {
        let sealed = sealed_image().unwrap();
        let bytes = crate::memfd::read_sealed(std::os::fd::AsFd::as_fd(&sealed)).unwrap();
        assert_eq!(bytes, image().unwrap());
        open_own_binary().unwrap();
    }
}
