//! Refusing replayed sealed requests.
//!
//! HPKE base mode has no replay protection of its own: a relay that recorded a sealed
//! request could send it again and make the enclave run it again (it could never read the
//! answer, which is sealed to the original client's context, but it could make the enclave
//! repeat work, or repeat a side effect of a future API). Every sealed request carries a
//! fresh encapsulated key, so the SHA-256 of its bytes is unique; the enclave remembers the
//! digests of the requests it has opened (the same digest its usage receipts name) and
//! refuses a second use, so a replay costs no work and earns no second receipt. The memory is bounded: the oldest entries are forgotten first, so a replay
//! from further back than [`ReplayGuard::capacity`] requests is not detected — it still
//! yields nothing readable. Keys rotate at every boot, which clears the horizon anyway.

use std::collections::{HashSet, VecDeque};

/// Remembers the digests of opened requests.
pub struct ReplayGuard {
    seen: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
    capacity: usize,
}

impl ReplayGuard {
    /// A guard remembering up to `capacity` requests.
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::with_capacity(capacity.min(1 << 16)),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// How many requests are remembered.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records a request digest; false when it was seen before (a replay).
    pub fn first_use(&mut self, digest: [u8; 32]) -> bool {
        if !self.seen.insert(digest) {
            return false;
        }
        self.order.push_back(digest);
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_use_is_refused_until_forgotten() {
        let mut g = ReplayGuard::new(2);
        assert!(g.first_use([1; 32]));
        assert!(!g.first_use([1; 32]));
        assert!(g.first_use([2; 32]));
        assert!(g.first_use([3; 32])); // forgets [1]
        assert!(g.first_use([1; 32]));
        assert!(!g.first_use([3; 32]));
    }
}
