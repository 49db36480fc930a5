//! A store's fields checked as a vassal's: its name, its modification time, its owner.

use std::time::{Duration, SystemTime};

use crate::config::is_config_name;

/// A vassal name a store may give: a config extension, no `/`, not hidden.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.contains('/') || name.starts_with('.') || name.contains('\0') {
        return Err(format!(
            "vassal name {name:?}: must not contain '/' or start with '.'"
        ));
    }
    if !is_config_name(name) {
        return Err(format!(
            "vassal name {name:?}: needs a config extension (.ini, .json, .yml, .yaml, .xml)"
        ));
    }
    Ok(())
}

/// UNIX seconds (fractions allowed) as a time.
pub(crate) fn unix_time(text: &str) -> Result<SystemTime, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("modification time {text:?}: not a number of UNIX seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!(
            "modification time {text:?}: not a number of UNIX seconds"
        ));
    }
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs))
}

/// A uid or gid field: absent or empty is none.
pub(crate) fn id_field(what: &str, text: Option<&str>) -> Result<Option<u32>, String> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| format!("{what} {text:?}: not a number")),
    }
}

/// uid and gid together, or neither.
pub(crate) fn owner_of(uid: Option<u32>, gid: Option<u32>) -> Result<Option<(u32, u32)>, String> {
    match (uid, gid) {
        (Some(uid), Some(gid)) => Ok(Some((uid, gid))),
        (None, None) => Ok(None),
        _ => Err("uid and gid must be given together".into()),
    }
}
