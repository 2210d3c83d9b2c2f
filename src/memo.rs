//! A bounded in-memory map for values that are only an optimisation: when it is full it starts
//! over, so it never grows without limit and never needs an eviction policy.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

#[derive(Debug)]
pub struct Memo<K, V> {
    entries: Mutex<HashMap<K, V>>,
    limit: usize,
}

impl<K: Hash + Eq, V: Clone> Memo<K, V> {
    pub fn new(limit: usize) -> Self {
        Self { entries: Mutex::new(HashMap::new()), limit }
    }

    pub fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.lock().get(key).cloned()
    }

    pub fn insert(&self, key: K, value: V) {
        let mut entries = self.lock();
        if entries.len() >= self.limit {
            entries.clear();
        }
        entries.insert(key, value);
    }

    pub fn remove<Q: Hash + Eq + ?Sized>(&self, key: &Q)
    where
        K: Borrow<Q>,
    {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, V>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::Memo;

    #[test]
    fn it_starts_over_when_full() {
        let memo = Memo::new(2);
        memo.insert("a".to_owned(), 1);
        memo.insert("b".to_owned(), 2);
        assert_eq!((memo.get("a"), memo.get("b")), (Some(1), Some(2)));
        memo.insert("c".to_owned(), 3);
        assert_eq!((memo.get("a"), memo.get("b"), memo.get("c")), (None, None, Some(3)));
        memo.remove("c");
        assert_eq!(memo.get("c"), None);
    }
}
