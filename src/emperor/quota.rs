//! Tenant quotas, set by the hosting provider on the emperor's side and never in a tenant's
//! config: at most `--emperor-tenant-max-vassals` vassals per tenant. A config over the quota
//! is kept, shown `over-quota`, and starts when one of its tenant's vassals goes: nothing is
//! lost, and no other vassal is touched.
//!
//! [`Quota`] is a component: it keeps the limit and how tenants are told apart, and is handed
//! the table it counts in.

use super::fair_queue::{tenant_of, Tenant};
use super::table::{State, Table};
use super::Settings;
use tracing::error;

/// The most vassals a tenant may have (None: no quota), and whether tenants are owners.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    max: Option<usize>,
    tyrant: bool,
}

impl Quota {
    pub fn new(settings: &Settings) -> Self {
        Quota {
            max: settings.tenant_max_vassals,
            tyrant: settings.tyrant,
        }
    }

    /// Whether `slot`'s tenant has room for it (if not, the table parks it `over-quota`,
    /// said once in the log).
    pub fn admits(&self, table: &Table, slot: usize) -> bool {
        let Some(max) = self.max else {
            return true;
        };
        let Some(v) = table.get(slot) else {
            return false;
        };
        let tenant = tenant_of(v, self.tyrant);
        let others = table
            .iter()
            .filter(|&(other, v)| {
                other != slot && v.state != State::OverQuota && tenant_of(v, self.tyrant) == tenant
            })
            .count();
        if others < max {
            return true;
        }
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

    /// A vassal of `tenant` is gone: the one of its configs waiting over quota to start.
    pub fn next_admitted(&self, table: &Table, tenant: &Tenant) -> Option<usize> {
        self.max?;
        table
            .iter()
            .find(|(_, v)| v.state == State::OverQuota && tenant_of(v, self.tyrant) == *tenant)
            .map(|(slot, _)| slot)
    }
}
