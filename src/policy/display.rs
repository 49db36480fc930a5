//! The jail plan as `emperor check` prints it.

use super::*;

impl fmt::Display for VassalPlan {
    /// The whole jail in the order it is made: the runtime's steps, the start hooks as the
    /// owner, then the payload's child between clone and execve (jail/src/launch/child.rs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "namespaces: {}", self.namespaces)?;
        let mut n = 0;
        let mut step = |f: &mut fmt::Formatter<'_>, text: &dyn fmt::Display| {
            n += 1;
            writeln!(f, "  {n:>2}. {text}")
        };
        for item in &self.setup {
            match item {
                SetupItem::Jail(jail_step) => step(f, jail_step)?,
                SetupItem::HookAsRoot(cmd) => step(f, &format_args!("exec-as-root: {cmd}"))?,
            }
        }
        if self.privileged_payload {
            return step(
                f,
                &"payload: privileged (runs as the jail's root, before the drop)",
            );
        }
        for hook in &self.user_hooks {
            step(f, &format_args!("exec-as-user: {hook}"))?;
        }
        if self.payload_as_owner {
            step(
                f,
                &"payload: clone into a user namespace of its own, as the owner's uid and gid",
            )?;
        } else {
            step(f, &"payload: clone")?;
        }
        step(
            f,
            &"payload: its sockets and 0-2 kept, every other fd closed on exec",
        )?;
        for limit in &self.drop.rlimits {
            let name = rlimit_name(limit.resource);
            step(f, &format_args!("payload: rlimit {name}: {}", limit.hard))?;
        }
        let id = |v: Option<u32>| v.map_or("unchanged".to_string(), |n| n.to_string());
        step(
            f,
            &format_args!(
                "payload: drop: uid {}, gid {}, groups none, caps {}",
                id(self.drop.uid),
                id(self.drop.gid),
                self.drop.keep_caps
            ),
        )?;
        step(f, &"payload: chdir to its working directory")?;
        step(f, &"payload: no_new_privs: yes")?;
        step(
            f,
            &format_args!(
                "payload: seccomp: {}",
                jail::seccomp::describe(self.seccomp)
            ),
        )?;
        step(f, &"payload: execve")?;
        if self.cgroup != jail::cgroup::Limits::default() {
            writeln!(
                f,
                "cgroup (payload, below the admin's ceilings): {:?}",
                self.cgroup
            )?;
        }
        Ok(())
    }
}

fn rlimit_name(resource: u32) -> &'static str {
    match resource {
        r if r == libc::RLIMIT_AS => "address space (limit-as)",
        r if r == libc::RLIMIT_NPROC => "processes (limit-nproc)",
        r if r == libc::RLIMIT_NOFILE => "open files (max-fd)",
        r if r == libc::RLIMIT_FSIZE => "file size (limit-fsize)",
        r if r == libc::RLIMIT_CORE => "core size (limit-core)",
        _ => "other",
    }
}
