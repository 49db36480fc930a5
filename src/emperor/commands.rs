//! What the emperor does for a control-socket request (the transport is in control.rs).

use super::control::{answer_error, answer_ok, answer_with, Request};
use super::Emperor;
use serde_json::{json, Value};

impl Emperor {
    pub(super) fn on_control_listener(&mut self) {
        if let Some(control) = self.control.as_mut() {
            control.accept_pending(&self.epoll);
        }
    }

    pub(super) fn on_control_client(&mut self, token: u64) {
        // Out of self while the emperor answers: a reload needs the emperor mutably.
        let Some(mut control) = self.control.take() else {
            return;
        };
        if let Some(slot) = control.slot_of(token) {
            while let Some(request) = control.next_request(slot, &self.epoll) {
                let answer = self.answer(request);
                control.reply(slot, &self.epoll, answer);
            }
        }
        self.control = Some(control);
    }

    fn answer(&mut self, request: Request) -> Vec<u8> {
        match request {
            Request::Status => answer_with(json!({
                "vassals": self.control_status(),
                "emperor": self.life_status(),
            })),
            Request::Upgrade if self.ragnarok.is_some() => answer_error("the emperor is stopping"),
            Request::Upgrade => {
                // At the end of this loop turn, once this answer is on its way.
                self.upgrade_asked = true;
                answer_ok()
            }
            Request::Reload(name) => {
                let found = self
                    .table
                    .iter()
                    .find(|(_, v)| v.name == name)
                    .map(|(slot, v)| (slot, v.pid().is_some()));
                match found {
                    Some((vassal, true)) => {
                        self.handle(vassal, super::machine::Event::ReloadAsked);
                        answer_ok()
                    }
                    Some(_) => answer_error(&format!("{name}: not running")),
                    None => answer_error(&format!("{name}: no such vassal")),
                }
            }
            // Answered by the control server itself, never handed over.
            Request::Lock | Request::Unlock => answer_ok(),
        }
    }

    /// The emperor's version and upgrades (what `emperor upgrade` waits on).
    pub(super) fn life_status(&self) -> Value {
        let seconds = |t: Option<std::time::SystemTime>| {
            t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs())
        };
        let life = &self.life;
        json!({
            "version": crate::cli::VERSION,
            "started": seconds(Some(life.started)),
            "upgrades": life.upgrades,
            "upgraded": seconds(life.upgraded),
            "last_upgrade_failure": life.last_failure.as_ref().map(|(at, why)| json!({
                "at_ms": at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
                "reason": why,
            })),
        })
    }

    /// Per vassal what a rolling reload needs: is it serving, and which start of its payload.
    fn control_status(&self) -> Vec<Value> {
        self.table
            .iter()
            .map(|(_, v)| {
                json!({
                    "name": v.name,
                    "pid": v.pid().map_or(-1, |p| p.as_raw()),
                    "state": v.state.name(),
                    "accepting": v.history.accepting,
                    "starts": v.history.starts,
                    "pool": v.pool.as_ref().map_or("", |s| s.value.as_str()),
                })
            })
            .collect()
    }
}
