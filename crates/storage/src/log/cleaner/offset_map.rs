//! The cleaner's dedupe map: key -> the latest offset seen for it, in a fixed buffer.
//!
//! As Kafka's `SkimpyOffsetMap`: a key is stored as a 128-bit hash (XXH3 here, MD5 there) next
//! to its offset, 24 bytes a slot, in an open-addressing table of `buffer / 24` slots filled to
//! at most the load factor. The buffer is allocated zeroed and untouched pages cost nothing, so
//! the resident memory grows with the keys held, up to the buffer. A full map ends a pass: the
//! cleaning covers the offsets the map reached, and the next pass takes the rest.

use xxhash_rust::xxh3::xxh3_128;

/// Bytes per slot: a 128-bit hash and an offset.
pub const SLOT_BYTES: usize = 24;

pub struct OffsetMap {
    /// `[hash low, hash high, offset]` per slot; a zero hash marks an empty slot.
    slots: Vec<[u64; 3]>,
    used: usize,
    max_entries: usize,
    latest_offset: i64,
}

impl std::fmt::Debug for OffsetMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsetMap")
            .field("slots", &self.slots.len())
            .field("used", &self.used)
            .field("latest_offset", &self.latest_offset)
            .finish()
    }
}

fn hash(key: &[u8]) -> (u64, u64) {
    let h = xxh3_128(key);
    let (lo, hi) = (h as u64, (h >> 64) as u64);
    // Zero marks an empty slot.
    if lo == 0 && hi == 0 {
        (1, 0)
    } else {
        (lo, hi)
    }
}

impl OffsetMap {
    /// A map in `buffer_bytes` (at least one slot), filled to at most `load_factor`.
    pub fn new(buffer_bytes: usize, load_factor: f64) -> OffsetMap {
        let n = (buffer_bytes / SLOT_BYTES).max(2);
        OffsetMap {
            // Zeroed by the allocator: pages are touched only when a key lands in them.
            slots: vec![[0u64; 3]; n],
            used: 0,
            max_entries: ((n as f64 * load_factor.clamp(0.01, 1.0)) as usize).clamp(1, n - 1),
            latest_offset: -1,
        }
    }

    /// How many distinct keys the map holds at most.
    pub fn capacity(&self) -> usize {
        self.max_entries
    }
    pub fn len(&self) -> usize {
        self.used
    }
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }
    pub fn is_full(&self) -> bool {
        self.used >= self.max_entries
    }
    /// The last offset the map has seen (every record up to it is in the map); -1 when none.
    pub fn latest_offset(&self) -> i64 {
        self.latest_offset
    }
    pub fn set_latest_offset(&mut self, offset: i64) {
        self.latest_offset = self.latest_offset.max(offset);
    }

    fn slot_of(&self, (lo, hi): (u64, u64)) -> usize {
        let n = self.slots.len();
        let mut i = (lo % n as u64) as usize;
        loop {
            let s = &self.slots[i];
            if (s[0] == 0 && s[1] == 0) || (s[0] == lo && s[1] == hi) {
                return i;
            }
            i = if i + 1 == n { 0 } else { i + 1 };
        }
    }

    /// Records `offset` as the latest for `key`. False, changing nothing, when the key is new and
    /// the map is full.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let h = hash(key);
        let i = self.slot_of(h);
        let slot = &mut self.slots[i];
        if slot[0] == 0 && slot[1] == 0 {
            if self.used >= self.max_entries {
                return false;
            }
            self.used += 1;
            *slot = [h.0, h.1, offset as u64];
        } else if offset > slot[2] as i64 {
            slot[2] = offset as u64;
        }
        self.latest_offset = self.latest_offset.max(offset);
        true
    }

    /// The latest offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        let h = hash(key);
        let s = &self.slots[self.slot_of(h)];
        (s[0] != 0 || s[1] != 0).then_some(s[2] as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_offset_per_key() {
        let mut m = OffsetMap::new(24 * 100, 0.9);
        assert!(m.put(b"a", 1));
        assert!(m.put(b"b", 2));
        assert!(m.put(b"a", 7));
        assert!(
            m.put(b"a", 5),
            "an older offset is accepted but does not win"
        );
        assert_eq!(m.get(b"a"), Some(7));
        assert_eq!(m.get(b"b"), Some(2));
        assert_eq!(m.get(b"c"), None);
        assert_eq!(m.len(), 2);
        assert_eq!(m.latest_offset(), 7);
    }

    #[test]
    fn a_full_map_refuses_new_keys_but_updates_old_ones() {
        let mut m = OffsetMap::new(24 * 10, 0.5);
        let mut n = 0;
        while m.put(format!("k{n}").as_bytes(), n) {
            n += 1;
        }
        assert_eq!(n as usize, m.capacity());
        assert!(m.is_full());
        assert!(m.put(b"k0", 1000));
        assert_eq!(m.get(b"k0"), Some(1000));
        for i in 1..n {
            assert_eq!(m.get(format!("k{i}").as_bytes()), Some(i));
        }
    }
}
