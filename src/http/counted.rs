//! Counting live things by key (connections by client address, WebSockets by account),
//! each count given back when the thing it counts is dropped. A key is forgotten when its
//! count falls to zero, so the map never holds more keys than there are live things,
//! however many distinct keys clients present.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex},
};

/// Live counts by key.
pub struct Counts<K>(Arc<Mutex<HashMap<K, usize>>>);

impl<K> Default for Counts<K> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

/// One counted thing; its count is given back when this is dropped.
pub struct Counted<K: Eq + Hash> {
    counts: Arc<Mutex<HashMap<K, usize>>>,
    key: K,
}

impl<K: Eq + Hash + Clone> Counts<K> {
    /// Counts one more for `key`, unless it has `max` already.
    pub fn take(&self, key: K, max: usize) -> Option<Counted<K>> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(key.clone()).or_insert(0);
        if *count >= max {
            if *count == 0 {
                counts.remove(&key);
            }
            return None;
        }
        *count += 1;
        Some(Counted {
            counts: self.0.clone(),
            key,
        })
    }

    /// How many keys are counted now.
    #[cfg(test)]
    fn keys(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl<K: Eq + Hash> Drop for Counted<K> {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_bounded_and_given_back() {
        let counts = Counts::default();
        let a = counts.take("a", 2).unwrap();
        let b = counts.take("a", 2).unwrap();
        assert!(counts.take("a", 2).is_none());
        drop(a);
        let c = counts.take("a", 2).unwrap();
        assert!(counts.take("b", 0).is_none());
        assert_eq!(counts.keys(), 1);
        drop((b, c));
        assert_eq!(counts.keys(), 0, "a key at zero is forgotten");
    }
}
