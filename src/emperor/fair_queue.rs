//! The spawn queue, served round-robin across tenants: a tenant who drops a thousand configs
//! at once waits behind itself, while another tenant's next spawn waits for at most one
//! spawn of each other tenant with work queued.

use super::table::{State, Table, Vassal};
use super::throttle::Blacklist;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Whose vassal it is, for fairness and quotas: the config's owner in tyrant mode, else the
/// monitor it came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tenant {
    Owner(u32),
    Monitor(String),
}

impl std::fmt::Display for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tenant::Owner(uid) => write!(f, "uid {uid}"),
            Tenant::Monitor(monitor) => write!(f, "{monitor}"),
        }
    }
}

impl Tenant {
    /// The name of its cgroup slice under the emperor's cgroup root.
    pub fn cgroup_name(&self) -> String {
        match self {
            Tenant::Owner(uid) => format!("tenant-uid-{uid}"),
            Tenant::Monitor(monitor) => format!("tenant-{}", jail::cgroup::sanitize(monitor)),
        }
    }
}

/// Whose vassal it is: its config's owner in tyrant mode, else the monitor it came from.
pub fn tenant_of(v: &Vassal, tyrant: bool) -> Tenant {
    match tenant_owner(v, tyrant) {
        Some(uid) => Tenant::Owner(uid),
        None => Tenant::Monitor(v.monitor.clone()),
    }
}

/// The owner whose tenant the vassal is (tyrant mode); None: its monitor's.
pub fn tenant_owner(v: &Vassal, tyrant: bool) -> Option<u32> {
    match (tyrant, v.owner) {
        (true, Some((uid, _))) => Some(uid),
        _ => None,
    }
}

/// One tenant's vassals, as the stats and the metrics show them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TenantCounts {
    pub vassals: usize,
    pub running: usize,
    pub over_quota: usize,
    pub blacklisted: usize,
}

/// Every tenant with vassals in `table`, in the tenants' order, with their counts.
pub fn count_by_tenant(
    table: &Table,
    tyrant: bool,
    blacklist: &Blacklist,
) -> BTreeMap<Tenant, TenantCounts> {
    let mut tenants = BTreeMap::<Tenant, TenantCounts>::new();
    for (_, v) in table.iter() {
        let counts = tenants.entry(tenant_of(v, tyrant)).or_default();
        counts.vassals += 1;
        counts.running += usize::from(v.pid().is_some());
        counts.over_quota += usize::from(v.state == State::OverQuota);
        counts.blacklisted += usize::from(blacklist.get(&v.id).is_some());
    }
    tenants
}

/// One FIFO queue per tenant and the order in which tenants take their turns.
#[derive(Debug, Default)]
pub struct FairQueue {
    queues: HashMap<Tenant, VecDeque<usize>>,
    /// Tenants with something queued, the next to be served first.
    turns: VecDeque<Tenant>,
    len: usize,
}

impl FairQueue {
    pub fn push(&mut self, tenant: Tenant, slot: usize) {
        let queue = self.queues.entry(tenant.clone()).or_default();
        if queue.is_empty() {
            self.turns.push_back(tenant);
        }
        queue.push_back(slot);
        self.len += 1;
    }

    /// The next slot: the first of the tenant whose turn it is, who then goes to the back.
    pub fn pop(&mut self) -> Option<usize> {
        let tenant = self.turns.pop_front()?;
        let queue = self
            .queues
            .get_mut(&tenant)
            .expect("a tenant in turn has a queue");
        let slot = queue.pop_front().expect("a tenant in turn has work");
        if queue.is_empty() {
            self.queues.remove(&tenant);
        } else {
            self.turns.push_back(tenant);
        }
        self.len -= 1;
        Some(slot)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// How many slots `tenant` has queued (entries that went stale included).
    pub fn queued_for(&self, tenant: &Tenant) -> usize {
        self.queues.get(tenant).map_or(0, VecDeque::len)
    }

    pub fn clear(&mut self) {
        self.queues.clear();
        self.turns.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: u32) -> Tenant {
        Tenant::Owner(uid)
    }

    #[test]
    fn a_flood_waits_behind_itself_and_others_take_turns() {
        let mut queue = FairQueue::default();
        for slot in 0..1000 {
            queue.push(owner(1), slot);
        }
        queue.push(owner(2), 5000);
        queue.push(owner(3), 6000);
        queue.push(owner(2), 5001);
        assert_eq!(queue.len(), 1003);
        let served: Vec<usize> = (0..6).map(|_| queue.pop().unwrap()).collect();
        assert_eq!(served, [0, 5000, 6000, 1, 5001, 2]);
        assert_eq!(queue.queued_for(&owner(2)), 0);
        assert_eq!(queue.queued_for(&owner(1)), 997);
        let rest: Vec<usize> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(rest, (3..1000).collect::<Vec<_>>());
        assert!(queue.is_empty() && queue.pop().is_none());
    }

    #[test]
    fn each_tenant_keeps_its_own_order() {
        let mut queue = FairQueue::default();
        let monitor = Tenant::Monitor("/etc/vassals".into());
        for slot in [7, 3, 9] {
            queue.push(monitor.clone(), slot);
        }
        assert_eq!(queue.pop(), Some(7));
        queue.push(owner(4), 1);
        assert_eq!(
            queue.pop(),
            Some(3),
            "the monitor's turn came before owner 4 queued"
        );
        assert_eq!(queue.pop(), Some(1));
        assert_eq!(queue.pop(), Some(9));
        queue.push(owner(4), 2);
        queue.clear();
        assert!(queue.is_empty() && queue.pop().is_none());
    }
}
