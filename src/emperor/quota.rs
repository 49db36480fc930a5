//! Tenant quotas, set by the hosting provider on the emperor's side and never in a tenant's
//! config: at most `--emperor-tenant-max-vassals` vassals per tenant. A config over the quota
//! is kept, shown `over-quota`, and starts when one of its tenant's vassals goes: nothing is
//! lost, and no other vassal is touched.

use super::fair_queue::{tenant_of, Tenant};
use super::machine::Event;
use super::table::State;
use super::Emperor;
use tracing::error;

impl Emperor {
    /// Whether `slot`'s tenant has room for it (if not, the table parks it `over-quota`).
    pub(super) fn within_quota(&mut self, slot: usize) -> bool {
        let Some(max) = self.settings.tenant_max_vassals else {
            return true;
        };
        let tyrant = self.settings.tyrant;
        let Some(tenant) = self.table.get(slot).map(|v| tenant_of(v, tyrant)) else {
            return false;
        };
        let others = self
            .table
            .iter()
            .filter(|&(other, v)| {
                other != slot && v.state != State::OverQuota && tenant_of(v, tyrant) == tenant
            })
            .count();
        if others < max {
            return true;
        }
        let v = self.table.get(slot).expect("slot");
        if v.state != State::OverQuota {
            error!(
                vassal = %v.name,
                %tenant,
                "not started: its tenant has {others} vassals, the most \
                 --emperor-tenant-max-vassals allows; it starts when one of them goes"
            );
        }
        false
    }

    /// A vassal of `tenant` is gone: one of its configs waiting over quota starts.
    pub(super) fn admit_one_over_quota(&mut self, tenant: &Tenant) {
        if self.settings.tenant_max_vassals.is_none() || self.ragnarok.is_some() {
            return;
        }
        let tyrant = self.settings.tyrant;
        let waiting = self
            .table
            .iter()
            .find(|(_, v)| v.state == State::OverQuota && tenant_of(v, tyrant) == *tenant)
            .map(|(slot, _)| slot);
        if let Some(slot) = waiting {
            self.handle(slot, Event::QuotaRoom);
        }
    }
}
