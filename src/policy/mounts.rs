//! The mounts a config asks for, as jail steps.

use super::*;

/// `bind-mount[-ro] = SRC[:DST]`, `tmpfs = DST[:SIZE]`, `pivot-root`/`chroot = DIR`, and /proc
/// for a pid namespace the runtime is pid 1 of. Targets are under the new root if any.
pub(super) fn mounts(
    config: &Config,
    namespaces: Namespaces,
    cloned: Namespaces,
    tyrant: bool,
) -> Result<Vec<Step>, PolicyError> {
    let mount_options = [
        "bind-mount",
        "bind-mount-ro",
        "tmpfs",
        "pivot-root",
        "chroot",
    ];
    let wanted: Vec<&Entry> = config
        .entries
        .iter()
        .filter(|e| mount_options.contains(&crate::config::normalize_key(&e.key).as_str()))
        .collect();
    let own_proc = cloned.contains(Namespaces::PID) && namespaces.contains(Namespaces::MOUNT);
    if wanted.is_empty() && !own_proc {
        return Ok(Vec::new());
    }
    if !namespaces.contains(Namespaces::MOUNT) {
        return Err(refuse(
            wanted[0],
            "needs a mount namespace (emperor-use-clone or unshare = fs)",
        ));
    }
    let new_root = config
        .get("pivot-root")
        .or_else(|| config.get("chroot"))
        .map(|e| PathBuf::from(&e.value));
    let inside = |path: &str| -> PathBuf {
        match &new_root {
            Some(root) => root.join(path.trim_start_matches('/')),
            None => PathBuf::from(path),
        }
    };
    let mut steps = vec![Step::MakeMountsPrivate];
    for entry in &wanted {
        let key = crate::config::normalize_key(&entry.key);
        match key.as_str() {
            "bind-mount" | "bind-mount-ro" => {
                let (source, target) = entry
                    .value
                    .split_once(':')
                    .unwrap_or((&entry.value, &entry.value));
                if !Path::new(source).is_absolute() || !Path::new(target).is_absolute() {
                    return Err(refuse(entry, "paths must be absolute (SRC[:DST])"));
                }
                steps.push(Step::BindMount {
                    source: PathBuf::from(source),
                    target: inside(target),
                    read_only: key == "bind-mount-ro",
                    nosuid_nodev: tyrant,
                });
            }
            "tmpfs" => {
                let (target, size) = match entry.value.split_once(':') {
                    Some((t, s)) => (
                        t,
                        Some(
                            parse_size(s)
                                .ok_or_else(|| refuse(entry, format!("bad size {s:?}")))?,
                        ),
                    ),
                    None => (entry.value.as_str(), None),
                };
                steps.push(Step::Tmpfs {
                    target: inside(target),
                    size,
                });
            }
            _ => {}
        }
    }
    if let Some(root) = &new_root {
        steps.push(Step::PivotRoot(root.clone()));
    }
    if own_proc {
        steps.push(Step::MountProc(PathBuf::from("/proc")));
    }
    Ok(steps)
}
