//! A hash map kept in shards that builds share: cloning it copies a few pointers, and a change
//! copies only the shard it touches. The build's bookkeeping (backends by Service port, their
//! users, the Ingresses of ours) is as large as the cluster, and a partial build changes a
//! handful of entries of it.

use rustc_hash::{FxHashMap, FxHasher};
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Enough that a shard of a 100k-entry map copies in microseconds.
const SHARDS: usize = 256;

#[derive(Clone)]
pub struct ShardedMap<K, V> {
    shards: Arc<[Arc<FxHashMap<K, V>>]>,
    len: usize,
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        ShardedMap {
            shards: (0..SHARDS)
                .map(|_| Arc::new(FxHashMap::default()))
                .collect(),
            len: 0,
        }
    }
}

impl<K: std::fmt::Debug + Hash + Eq + Clone, V: std::fmt::Debug + Clone> std::fmt::Debug
    for ShardedMap<K, V>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

fn shard_of<Q: Hash + ?Sized>(key: &Q) -> usize {
    let mut h = FxHasher::default();
    key.hash(&mut h);
    // Middle bits: the shard's own map hashes the same way, and hashbrown takes a bucket
    // from the low bits and a 7-bit tag from the top ones. Shards by the top bits gave every
    // key of a shard the same tag, so each probe compared keys slot by slot.
    (h.finish() >> 32) as usize % SHARDS
}

impl<K: Hash + Eq + Clone, V: Clone> ShardedMap<K, V> {
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[shard_of(key)].get(key)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// The shard of `key`, copied first if another map shares it.
    fn shard_mut<Q: Hash + ?Sized>(&mut self, key: &Q) -> &mut FxHashMap<K, V> {
        let i = shard_of(key);
        if Arc::get_mut(&mut self.shards).is_none() {
            self.shards = self.shards.iter().cloned().collect();
        }
        let shards = Arc::get_mut(&mut self.shards).expect("not shared");
        Arc::make_mut(&mut shards[i])
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = self.shard_mut(&key).insert(key, value);
        self.len += usize::from(old.is_none());
        old
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // Look before copying: removing what is not there copies nothing.
        if !self.contains_key(key) {
            return None;
        }
        let old = self.shard_mut(key).remove(key);
        self.len -= usize::from(old.is_some());
        old
    }

    /// The value of `key` to change in place (copying its shard if shared), if present.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.contains_key(key) {
            return None;
        }
        self.shard_mut(key).get_mut(key)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// The entries of the shards this map and `other` do not share: where they may differ.
    /// (`self`'s entries, then `other`'s.)
    pub fn unshared<'m>(
        &'m self,
        other: &'m ShardedMap<K, V>,
    ) -> (
        impl Iterator<Item = (&'m K, &'m V)>,
        impl Iterator<Item = (&'m K, &'m V)>,
    ) {
        let differ = |i: &usize| !Arc::ptr_eq(&self.shards[*i], &other.shards[*i]);
        let mine = (0..SHARDS)
            .filter(differ)
            .flat_map(|i| self.shards[i].iter());
        let theirs = (0..SHARDS)
            .filter(differ)
            .flat_map(|i| other.shards[i].iter());
        (mine, theirs)
    }
}

impl<K: Hash + Eq + Clone, V: Clone> FromIterator<(K, V)> for ShardedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut shards: Vec<FxHashMap<K, V>> = (0..SHARDS).map(|_| FxHashMap::default()).collect();
        let mut len = 0;
        for (k, v) in iter {
            if shards[shard_of(&k)].insert(k, v).is_none() {
                len += 1;
            }
        }
        ShardedMap {
            shards: shards.into_iter().map(Arc::new).collect(),
            len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_of_one_shard_keep_distinct_tags_and_buckets_in_its_map() {
        // hashbrown probes by the low bits of the hash and compares keys only where the
        // 7-bit tag of the top bits matches: a shard must not fix either of them.
        let hash = |k: &String| {
            let mut h = FxHasher::default();
            k.hash(&mut h);
            h.finish()
        };
        let keys: Vec<String> = (0..20_000).map(|i| format!("app{i}.scale.test")).collect();
        let in_shard: Vec<u64> = keys
            .iter()
            .filter(|k| shard_of(*k) == 7)
            .map(hash)
            .collect();
        assert!(in_shard.len() > 20_000 / SHARDS / 2, "{}", in_shard.len());
        let tags: std::collections::BTreeSet<u64> = in_shard.iter().map(|h| h >> 57).collect();
        let buckets: std::collections::BTreeSet<u64> = in_shard.iter().map(|h| h & 63).collect();
        assert!(tags.len() > 32, "{} tags", tags.len());
        assert!(buckets.len() > 32, "{} buckets", buckets.len());
    }

    #[test]
    fn a_change_copies_one_shard_and_leaves_the_clone_as_it_was() {
        let a: ShardedMap<u32, u32> = (0..10_000).map(|i| (i, i)).collect();
        let mut b = a.clone();
        assert_eq!(b.insert(5, 50), Some(5));
        assert_eq!(b.remove(&6), Some(6));
        assert_eq!(b.remove(&100_000), None);
        assert_eq!(b.insert(20_000, 1), None);
        *b.get_mut(&7).unwrap() = 70;
        assert_eq!(
            (a.get(&5), a.get(&6), a.get(&7)),
            (Some(&5), Some(&6), Some(&7))
        );
        assert_eq!(
            (b.get(&5), b.get(&6), b.get(&7)),
            (Some(&50), None, Some(&70))
        );
        assert_eq!((a.len(), b.len()), (10_000, 10_000));
        let (mine, theirs) = b.unshared(&a);
        // At most the four shards touched differ.
        assert!(mine.count() <= 4 * 10_000 / SHARDS * 2);
        assert!(theirs.count() > 0);
        let copy = a.clone();
        let (same, _) = a.unshared(&copy);
        assert_eq!(same.count(), 0);
    }
}
