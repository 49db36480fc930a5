//! The part of the stats document (src/emperor/stats.rs) that `emperor top` shows. Fields the
//! emperor always writes default when missing, so a uWSGI Emperor's own document (its vassals
//! have `id` and `monitor`, no `name`, `tenant`, `state` nor `totals`) is shown too.

use serde::Deserialize;
use std::collections::BTreeSet;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Document {
    #[serde(default)]
    pub vassals: Vec<Vassal>,
    #[serde(default)]
    pub tenants: Vec<Tenant>,
    pub totals: Option<Totals>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Vassal {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub monitor: String,
    #[serde(default)]
    pub state: String,
    /// The vassal's runtime, -1 while it has none.
    #[serde(default = "no_pid")]
    pub pid: i32,
    #[serde(default)]
    pub respawns: u64,
    /// 0 or 1 (uWSGI's type).
    #[serde(default)]
    pub loyal: u8,
    /// When its runtime last started, unix seconds (0: never).
    #[serde(default)]
    pub last_run: u64,
    #[serde(default)]
    pub blacklisted: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Tenant {
    pub tenant: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Totals {
    pub vassals: usize,
    pub running: usize,
    pub blacklisted: usize,
}

fn no_pid() -> i32 {
    -1
}

impl Document {
    pub fn parse(text: &str) -> Result<Document, serde_json::Error> {
        let mut document: Document = serde_json::from_str(text)?;
        for v in &mut document.vassals {
            if v.name.is_empty() {
                v.name = v.id.clone();
            }
            if v.tenant.is_empty() {
                v.tenant = v.monitor.clone();
            }
            if v.state.is_empty() {
                v.state = if v.running() { "running" } else { "-" }.to_string();
            }
        }
        Ok(document)
    }

    /// The tenants, sorted: the document's list, or those its vassals name.
    pub fn tenant_names(&self) -> Vec<String> {
        let listed = self.tenants.iter().map(|t| t.tenant.clone());
        let named = self.vassals.iter().map(|v| v.tenant.clone());
        let all: BTreeSet<String> = if self.tenants.is_empty() {
            named.collect()
        } else {
            listed.collect()
        };
        all.into_iter().collect()
    }

    /// The document's totals, or counted from its vassals.
    pub fn totals(&self) -> Totals {
        self.totals.unwrap_or_else(|| Totals {
            vassals: self.vassals.len(),
            running: self.vassals.iter().filter(|v| v.running()).count(),
            blacklisted: self.vassals.iter().filter(|v| v.blacklisted).count(),
        })
    }
}

impl Vassal {
    pub fn running(&self) -> bool {
        self.pid > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An emperor's document, cut down to two vassals (the real one has more fields each).
    const EMPEROR: &str = r#"{
        "pid": 29773, "emperor": ["/tmp/v", "/tmp/v2"],
        "tenants": [
            {"tenant": "/tmp/v2", "vassals": 1, "running": 0, "queued": 0, "blacklisted": 1, "over_quota": 0, "max_vassals": 0},
            {"tenant": "/tmp/v", "vassals": 1, "running": 1, "queued": 0, "blacklisted": 0, "over_quota": 0, "max_vassals": 0}
        ],
        "totals": {"vassals": 2, "running": 1, "blacklisted": 1, "respawns": 7},
        "vassals": [
            {"name": "a.ini", "id": "a.ini", "tenant": "/tmp/v", "monitor": "/tmp/v", "state": "running",
             "pid": 29778, "payload_pid": 29780, "respawns": 0, "loyal": 1, "last_run": 1796589954,
             "blacklisted": false, "throttle": 0},
            {"name": "b.ini", "id": "b.ini", "tenant": "/tmp/v2", "monitor": "/tmp/v2", "state": "waiting",
             "pid": -1, "payload_pid": -1, "respawns": 7, "loyal": 0, "last_run": 1796589950,
             "blacklisted": true, "throttle": 4000}
        ]
    }"#;

    #[test]
    fn an_emperor_document_gives_its_vassals_tenants_and_totals() {
        let doc = Document::parse(EMPEROR).unwrap();
        assert_eq!(doc.vassals.len(), 2);
        let b = &doc.vassals[1];
        assert_eq!(
            (b.name.as_str(), b.tenant.as_str(), b.state.as_str()),
            ("b.ini", "/tmp/v2", "waiting")
        );
        assert_eq!(
            (b.pid, b.respawns, b.loyal, b.blacklisted),
            (-1, 7, 0, true)
        );
        assert_eq!(doc.vassals[0].loyal, 1);
        assert_eq!(doc.tenant_names(), ["/tmp/v", "/tmp/v2"]);
        assert_eq!(
            doc.totals(),
            Totals {
                vassals: 2,
                running: 1,
                blacklisted: 1
            }
        );
    }

    #[test]
    fn a_uwsgi_emperor_document_is_read_by_its_own_field_names() {
        let doc = Document::parse(
            r#"{"vassals": [
                {"id": "app.ini", "monitor": "dir:///etc/uwsgi", "pid": 812, "respawns": 2, "loyal": 1, "last_run": 1},
                {"id": "down.ini", "monitor": "dir:///etc/uwsgi", "pid": 0, "respawns": 0, "loyal": 0, "last_run": 0}
            ]}"#,
        )
        .unwrap();
        assert_eq!(doc.vassals[0].name, "app.ini");
        assert_eq!(doc.vassals[0].tenant, "dir:///etc/uwsgi");
        assert_eq!(doc.vassals[0].state, "running");
        assert_eq!(doc.vassals[1].state, "-");
        assert_eq!(doc.tenant_names(), ["dir:///etc/uwsgi"]);
        assert_eq!(
            doc.totals(),
            Totals {
                vassals: 2,
                running: 1,
                blacklisted: 0
            }
        );
    }

    #[test]
    fn text_that_is_not_a_stats_document_is_an_error() {
        assert!(Document::parse("HTTP/1.0 404 Not Found\r\n").is_err());
        assert!(Document::parse("[1, 2]").is_err());
        assert!(Document::parse(r#"{"vassals": 3}"#).is_err());
    }
}
