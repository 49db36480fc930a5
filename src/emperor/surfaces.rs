//! The emperor's side of the sockets clients talk to it on, the stats server and the control
//! socket: their wake-ups (write timeouts, idle timeouts, a listener paused for want of fds)
//! are deadlines of the loop like every other.

use super::{metrics, stats, Emperor};
use crate::monitor;
use std::time::Instant;
use tracing::info;

/// Stats documents this large, once freed, are handed back to the kernel. glibc raises its
/// mmap threshold to the size of the first large buffer freed, so the next document of the
/// same size came from the heap and stayed there once freed: 7 MB of the emperor's RSS at
/// 10,000 vassals, for a document nobody held (issue 23).
const TRIM_AFTER_DOCUMENTS: usize = 1 << 20;

impl Emperor {
    /// Accept stats clients and start writing them the document.
    pub(super) fn answer_stats(&mut self) {
        // Out of self while the document is made from the rest of the emperor.
        if let Some(mut server) = self.stats.take() {
            server.accept_pending(&self.epoll, || self.stats_view().document_bytes());
            self.stats = Some(server);
        }
        self.trim_after_stats();
    }

    pub(super) fn on_stats_client(&mut self, token: u64) {
        if let Some(server) = self.stats.as_mut() {
            if let Some(slot) = server.slot_of(token) {
                server.on_writable(slot, &self.epoll);
            }
        }
        self.trim_after_stats();
    }

    /// Once the large documents made are all written (or their clients gone), give their
    /// memory back: a trim of the heap's free pages.
    fn trim_after_stats(&mut self) {
        let freed = self.stats.as_mut().map_or(0, |s| s.freed_documents());
        if freed >= TRIM_AFTER_DOCUMENTS {
            jail::process::trim_heap();
        }
    }

    /// Metrics clients wait for their request to be read (HTTP).
    pub(super) fn answer_metrics(&mut self) {
        if let Some(server) = self.metrics.as_mut() {
            server.accept_pending(&self.epoll, String::new);
        }
    }

    pub(super) fn on_metrics_client(&mut self, token: u64) {
        // Out of self while the document is made from the rest of the emperor.
        let Some(mut server) = self.metrics.take() else {
            return;
        };
        if let Some(slot) = server.slot_of(token) {
            if !server.is_reading(slot) {
                server.on_writable(slot, &self.epoll);
            } else if let Some(target) = server.read_request(slot, &self.epoll) {
                // Else its request is not complete yet: wait for more.
                let response = super::metrics::http_answer(&target, || self.metrics_document());
                server.answer(slot, &self.epoll, response);
            }
        }
        self.metrics = Some(server);
    }

    /// The next moment a stats or control client times out, or a paused listener is due.
    pub(super) fn surfaces_deadline(&self) -> Option<Instant> {
        let stats = self.stats.as_ref().and_then(|s| s.deadline());
        let metrics = self.metrics.as_ref().and_then(|s| s.deadline());
        let control = self.control.as_ref().and_then(|c| c.deadline());
        stats.into_iter().chain(metrics).chain(control).min()
    }

    pub(super) fn surfaces_tick(&mut self, now: Instant) {
        if let Some(server) = self.stats.as_mut() {
            server.tick(&self.epoll, now);
        }
        self.trim_after_stats();
        if let Some(server) = self.metrics.as_mut() {
            server.tick(&self.epoll, now);
        }
        if let Some(control) = self.control.as_mut() {
            control.tick(&self.epoll, now);
        }
    }

    /// The monitors' specs as logs and stats show them: without passwords.
    pub(super) fn shown_monitors(&self) -> Vec<String> {
        self.settings
            .monitors
            .iter()
            .map(|s| monitor::shown(s))
            .collect()
    }

    pub fn stats_document(&self) -> String {
        self.stats_view().document()
    }

    fn stats_view(&self) -> stats::StatsView<'_> {
        stats::StatsView {
            monitors: self.shown_monitors(),
            tyrant: self.settings.tyrant,
            table: &self.table,
            spawn_budget: &self.spawn_budget,
            queue: &self.queue,
            tenant_max_vassals: self.settings.tenant_max_vassals,
            blacklist: &self.blacklist,
            started: self.life.started,
            upgrades: self.life.upgrades,
            upgraded: self.life.upgraded,
        }
    }

    pub fn metrics_document(&mut self) -> String {
        let now = Instant::now();
        metrics::MetricsView {
            table: &self.table,
            tyrant: self.settings.tyrant,
            tenant_max_vassals: self.settings.tenant_max_vassals,
            blacklist: &self.blacklist,
            spawn_tokens: self.spawn_budget.tokens(now),
            spawn_latency: &self.spawn_latency,
            clock: &mut self.loop_clock,
        }
        .document()
    }

    pub(super) fn log_table(&self) {
        info!(
            "{} vassals, {} blacklisted",
            self.table.len(),
            self.blacklist.len()
        );
        for (_, v) in self.table.iter() {
            info!(
                vassal = %v.name,
                state = v.state.name(),
                pid = v.pid().map_or(-1, |p| p.as_raw()),
                loyal = v.history.loyal,
                respawns = v.history.respawns,
                blacklisted = self.blacklist.get(&v.id).is_some(),
                "vassal"
            );
        }
    }
}
