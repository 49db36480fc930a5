//! The control socket's requests (one line each) and its answers (one JSON line each).

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Lock,
    Unlock,
    Status,
    Reload(String),
    /// Execute the binary at the emperor's path in its place (an upgrade).
    Upgrade,
}

impl Request {
    pub(super) fn parse(line: &str) -> Result<Request, String> {
        let mut words = line.split_whitespace();
        let request = match (words.next(), words.next()) {
            (Some("lock"), None) => Request::Lock,
            (Some("unlock"), None) => Request::Unlock,
            (Some("status"), None) => Request::Status,
            (Some("upgrade"), None) => Request::Upgrade,
            (Some("reload"), Some(name)) => Request::Reload(name.to_string()),
            _ => {
                return Err(format!(
                    "unknown request \"{line}\" (lock, unlock, status, reload NAME, upgrade)"
                ))
            }
        };
        match words.next() {
            None => Ok(request),
            Some(_) => Err(format!("unknown request \"{line}\"")),
        }
    }
}

pub fn answer_ok() -> Vec<u8> {
    b"{\"ok\":true}\n".to_vec()
}

pub fn answer_error(message: &str) -> Vec<u8> {
    let mut line = serde_json::json!({ "ok": false, "error": message }).to_string();
    line.push('\n');
    line.into_bytes()
}

/// A successful answer carrying `fields` besides `"ok": true`.
pub fn answer_with(mut fields: serde_json::Value) -> Vec<u8> {
    fields["ok"] = serde_json::Value::Bool(true);
    let mut line = fields.to_string();
    line.push('\n');
    line.into_bytes()
}
