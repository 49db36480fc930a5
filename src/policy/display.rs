//! The jail plan as `emperor check` prints it.

use super::*;

impl fmt::Display for VassalPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "namespaces: {}", self.namespaces)?;
        for (i, item) in self.setup.iter().enumerate() {
            match item {
                SetupItem::Jail(step) => writeln!(f, "  {:>2}. {step}", i + 1)?,
                SetupItem::HookAsRoot(cmd) => writeln!(f, "  {:>2}. exec-as-root: {cmd}", i + 1)?,
            }
        }
        if self.privileged_payload {
            writeln!(
                f,
                "payload: privileged (runs as the jail's root, before the drop)"
            )?;
            return Ok(());
        }
        if self.payload_as_owner {
            writeln!(
                f,
                "payload: in a user namespace of its own, as the owner's uid and gid"
            )?;
        }
        let id = |v: Option<u32>| v.map_or("unchanged".to_string(), |n| n.to_string());
        writeln!(
            f,
            "drop: uid {}, gid {}, groups none, caps {}",
            id(self.drop.uid),
            id(self.drop.gid),
            self.drop.keep_caps
        )?;
        for limit in &self.drop.rlimits {
            writeln!(
                f,
                "  rlimit {}: {}",
                rlimit_name(limit.resource),
                limit.hard
            )?;
        }
        writeln!(f, "no_new_privs: yes")?;
        writeln!(f, "seccomp: {}", jail::seccomp::describe(self.seccomp))?;
        for hook in &self.user_hooks {
            writeln!(f, "exec-as-user: {hook}")?;
        }
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
