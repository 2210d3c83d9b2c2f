//! A small in-memory cache with a fixed lifetime per entry, a bounded number of entries and a
//! bounded total weight (what the entries hold, as the caller counts it): the oldest entries go
//! first. Time is passed in, so tests move it with their clock.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::clock::UnixTime;

pub struct TtlCache<V> {
    entries: HashMap<String, (UnixTime, usize, Arc<V>)>,
    /// Keys in the order they were stored, with the expiry they were stored with. Every entry
    /// lives as long, so this is also the order in which they expire.
    order: VecDeque<(String, UnixTime)>,
    capacity: usize,
    max_weight: usize,
    weight: usize,
    ttl_seconds: i64,
}

impl<V> TtlCache<V> {
    pub fn new(capacity: usize, max_weight: usize, ttl_seconds: i64) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            max_weight,
            weight: 0,
            ttl_seconds,
        }
    }

    pub fn get(&self, key: &str, now: UnixTime) -> Option<Arc<V>> {
        self.entries.get(key).filter(|(expires, _, _)| now < *expires).map(|(_, _, v)| v.clone())
    }

    /// Stores `value`; one heavier than the whole cache may hold is not stored.
    pub fn insert(&mut self, key: String, value: Arc<V>, weight: usize, now: UnixTime) {
        if weight > self.max_weight {
            return;
        }
        self.evict(now);
        self.remove(&key);
        while self.entries.len() >= self.capacity || self.weight + weight > self.max_weight {
            if !self.pop_oldest() {
                break;
            }
        }
        let expires = now + self.ttl_seconds;
        self.order.push_back((key.clone(), expires));
        self.weight += weight;
        self.entries.insert(key, (expires, weight, value));
    }

    fn remove(&mut self, key: &str) {
        if let Some((_, weight, _)) = self.entries.remove(key) {
            self.weight -= weight;
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn evict(&mut self, now: UnixTime) {
        while self.order.front().is_some_and(|(_, expires)| *expires <= now) {
            self.pop_oldest();
        }
    }

    /// Drops the oldest stored key (unless it was stored again since). False when empty.
    fn pop_oldest(&mut self) -> bool {
        let Some((key, expires)) = self.order.pop_front() else { return false };
        if self.entries.get(&key).is_some_and(|(current, _, _)| *current == expires) {
            self.remove(&key);
        }
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_their_lifetime() {
        let mut cache = TtlCache::new(10, 100, 60);
        cache.insert("a".into(), Arc::new(1), 1, 100);
        assert_eq!(cache.get("a", 159).as_deref(), Some(&1));
        assert_eq!(cache.get("a", 160), None);
        assert_eq!(cache.get("b", 100), None);
        cache.insert("b".into(), Arc::new(2), 1, 200);
        assert_eq!(cache.len(), 1, "the expired entry went");
        assert_eq!(cache.weight, 1);
    }

    #[test]
    fn the_number_of_entries_is_bounded_and_the_oldest_go_first() {
        let mut cache = TtlCache::new(3, 1000, 60);
        for (i, key) in ["a", "b", "c", "d"].iter().enumerate() {
            cache.insert((*key).into(), Arc::new(i), 1, 100);
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get("a", 100).is_none());
        assert!(cache.get("d", 100).is_some());
        // Storing a key again renews it; its older place in line no longer removes it.
        cache.insert("b".into(), Arc::new(9), 1, 110);
        cache.insert("e".into(), Arc::new(5), 1, 110);
        assert_eq!(cache.get("b", 110).as_deref(), Some(&9));
        assert!(cache.len() <= 3);
        for i in 0..10_000 {
            cache.insert(format!("k{i}"), Arc::new(i), 1, 120);
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.weight, 3);
        assert!(cache.order.len() <= 4, "{}", cache.order.len());
    }

    #[test]
    fn the_total_weight_is_bounded() {
        let mut cache = TtlCache::new(100, 10, 60);
        cache.insert("a".into(), Arc::new(()), 4, 0);
        cache.insert("b".into(), Arc::new(()), 4, 0);
        cache.insert("c".into(), Arc::new(()), 4, 0);
        assert!(cache.get("a", 0).is_none(), "the oldest made room");
        assert_eq!(cache.weight, 8);
        cache.insert("huge".into(), Arc::new(()), 11, 0);
        assert!(cache.get("huge", 0).is_none(), "too heavy to keep at all");
        cache.insert("b".into(), Arc::new(()), 2, 0);
        assert_eq!(cache.weight, 6, "a key stored again replaces its weight");
    }
}
