//! The command line /proc shows for a process that took over a copy of another
//! ([`crate::launch::Launch::fork`]): the memory that held its parent's argv and environment
//! strings is rewritten with the new title, as setproctitle(3) does. The kernel shows a
//! command line that runs past the end of argv up to its first NUL, within one page; one
//! shorter than the old argv is followed there by NULs, which readers of /proc skip.

use std::ffi::CStr;
#[cfg(test)]
use std::ffi::CString;

/// The bytes of the initial stack where argv and the environment strings were, as
/// /proc/self/stat gives them (arg_start to env_end): room for a title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TitleRoom {
    start: usize,
    /// Bytes of the old argv (arg_start to arg_end).
    argv_len: usize,
    len: usize,
}

impl TitleRoom {
    /// This process's room, read once (a copy of the process has the same).
    pub fn of_this_process() -> Option<TitleRoom> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        let (_, rest) = text.rsplit_once(") ")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Fields 48 (arg_start), 49 (arg_end) and 51 (env_end), counted from 1; `rest`
        // starts at field 3.
        let number = |field: usize| fields.get(field - 3)?.parse::<usize>().ok();
        let (start, argv_end, end) = (number(48)?, number(49)?, number(51)?);
        (start != 0 && argv_end > start && end >= argv_end).then(|| TitleRoom {
            start,
            argv_len: argv_end - start,
            len: end - start,
        })
    }

    /// Bytes a title may have (its NUL not counted).
    pub fn capacity(&self) -> usize {
        self.len - 1
    }

    /// Write `title` (cut to [`TitleRoom::capacity`] and at one page, which is all the kernel
    /// shows) and a NUL over the old strings.
    ///
    /// After this, `std::env::args()` reads the title, and the environment strings the
    /// process started with are gone: the caller must have replaced its environment (glibc's
    /// setenv copies what it is given to the heap) and must not read its argv again.
    pub fn write(&self, title: &CStr) {
        let limit = self.capacity().min(page_size() - 1);
        let bytes = title.to_bytes();
        let len = bytes.len().min(limit);
        // SAFETY: the bytes written, [start, start + max(len + 1, argv_len)), lie in
        // [arg_start, env_end) (len < capacity, argv_len <= the room), which the kernel filled
        // with the argv and environment strings at execve: mapped, writable stack memory
        // above every frame, owned by no Rust value (std keeps raw pointers to argv, read
        // only by `env::args`, which the caller no longer calls). The process has one thread
        // (the caller is a fresh copy), so nothing reads these bytes while they change.
        unsafe {
            let target = self.start as *mut u8;
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), target, len);
            // A title shorter than the old argv: the rest of it is cleared.
            let end = (len + 1).max(self.argv_len);
            std::ptr::write_bytes(target.add(len), 0, end - len);
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf with a valid name has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{expect_eq, in_forked_child};

    /// In a copy of the test (whose argv and environment it may spoil), /proc shows the
    /// written title as the whole command line, and a longer one cut to the room.
    #[test]
    fn proc_shows_the_title_written_over_argv_and_the_environment() {
        in_forked_child(|| {
            let room = TitleRoom::of_this_process().ok_or("no title room")?;
            // What /proc shows, without the NULs after the title.
            let cmdline = || {
                let mut shown = std::fs::read("/proc/self/cmdline").map_err(|e| e.to_string())?;
                while shown.last() == Some(&0) {
                    shown.pop();
                }
                Ok::<_, String>(shown)
            };
            room.write(c"emperor-vassal vassal --name a.ini /srv/a.ini");
            expect_eq(
                "the title",
                cmdline()?,
                b"emperor-vassal vassal --name a.ini /srv/a.ini".to_vec(),
            )?;
            let long = CString::new("x".repeat(room.capacity() + 100)).unwrap();
            room.write(&long);
            expect_eq(
                "a title longer than the room",
                cmdline()?.len(),
                room.capacity().min(page_size() - 1),
            )
        });
    }
}
