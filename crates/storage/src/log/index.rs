//! Sparse indexes of a segment: `.index` (offset -> file position) and `.timeindex`
//! (max timestamp so far -> offset).
//!
//! ```text
//! .index      entry = relative_offset u32 | position u32            (8 bytes, big-endian)
//! .timeindex  entry = timestamp i64       | relative_offset u32     (12 bytes, big-endian)
//! ```
//! Both are append-only and sorted by their first field. An entry is added every
//! `index.interval.bytes` of log, so an index is about 0.2% of its segment. The active segment
//! keeps its entries in memory and writes them out when it is flushed, rolled or closed; a closed
//! segment's lookups binary-search the file through the page cache. Indexes carry no checksum:
//! after an unclean shutdown the segments past the recovery point are scanned and their indexes
//! rebuilt from the log itself.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::io::{Io, IoFile};

/// One kind of sparse index entry.
pub trait Entry: Copy + std::fmt::Debug {
    const SIZE: usize;
    fn key(&self) -> i64;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(bytes: &[u8]) -> Self;
}

/// `.index` entry: an offset relative to the segment's base offset and its byte position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

impl Entry for OffsetEntry {
    const SIZE: usize = 8;
    fn key(&self) -> i64 {
        self.relative_offset as i64
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes(b[0..4].try_into().expect("4 bytes")),
            position: u32::from_be_bytes(b[4..8].try_into().expect("4 bytes")),
        }
    }
}

/// `.timeindex` entry: the largest timestamp seen so far and the relative offset of the batch
/// that ends where it was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl Entry for TimeEntry {
    const SIZE: usize = 12;
    fn key(&self) -> i64 {
        self.timestamp
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        TimeEntry {
            timestamp: i64::from_be_bytes(b[0..8].try_into().expect("8 bytes")),
            relative_offset: u32::from_be_bytes(b[8..12].try_into().expect("4 bytes")),
        }
    }
}

/// A sparse index file.
#[derive(Debug)]
pub struct SparseIndex<E: Entry> {
    path: PathBuf,
    file: Arc<dyn IoFile>,
    /// Entries already in the file.
    persisted: usize,
    /// All entries, while the segment is active; `None` once sealed.
    mirror: Option<Vec<E>>,
    max_entries: usize,
}

impl<E: Entry> SparseIndex<E> {
    /// Opens (or creates) an index. `active` keeps its entries in memory for appends.
    pub fn open(io: &dyn Io, path: &Path, active: bool, max_bytes: usize) -> io::Result<Self> {
        let file = io.open(path, true)?;
        let len = file.len()? as usize;
        let persisted = len / E::SIZE;
        if !len.is_multiple_of(E::SIZE) {
            file.set_len((persisted * E::SIZE) as u64)?;
        }
        let mut index = SparseIndex {
            path: path.to_path_buf(),
            file,
            persisted,
            mirror: None,
            max_entries: (max_bytes / E::SIZE).max(1),
        };
        if active {
            index.mirror = Some(index.read_all()?);
        }
        Ok(index)
    }

    fn read_all(&self) -> io::Result<Vec<E>> {
        let mut buf = vec![0u8; self.persisted * E::SIZE];
        self.file.read_exact_at(&mut buf, 0)?;
        Ok(buf.chunks_exact(E::SIZE).map(E::decode).collect())
    }

    pub fn file(&self) -> Arc<dyn IoFile> {
        self.file.clone()
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn len(&self) -> usize {
        match &self.mirror {
            Some(m) => m.len(),
            None => self.persisted,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn is_full(&self) -> bool {
        self.len() >= self.max_entries
    }
    pub fn size_bytes(&self) -> u64 {
        (self.len() * E::SIZE) as u64
    }

    /// Adds an entry; keys must not go backwards (an equal key is skipped).
    pub fn append(&mut self, entry: E) -> io::Result<()> {
        if self.mirror.is_none() {
            self.mirror = Some(self.read_all()?);
        }
        let mirror = self.mirror.as_mut().expect("mirror loaded above");
        if let Some(last) = mirror.last() {
            if entry.key() <= last.key() {
                return Ok(());
            }
        }
        mirror.push(entry);
        Ok(())
    }

    pub fn last(&self) -> io::Result<Option<E>> {
        match &self.mirror {
            Some(m) => Ok(m.last().copied()),
            None if self.persisted == 0 => Ok(None),
            None => self.entry_at(self.persisted - 1).map(Some),
        }
    }

    fn entry_at(&self, i: usize) -> io::Result<E> {
        if let Some(m) = &self.mirror {
            return Ok(m[i]);
        }
        let mut buf = [0u8; 16];
        self.file
            .read_exact_at(&mut buf[..E::SIZE], (i * E::SIZE) as u64)?;
        Ok(E::decode(&buf[..E::SIZE]))
    }

    /// The entry with the greatest key <= `key`, if any.
    pub fn floor(&self, key: i64) -> io::Result<Option<E>> {
        let (mut lo, mut hi) = (0usize, self.len());
        // Invariant: entries [0, lo) have key <= `key`; entries [hi, len) have key > `key`.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry_at(mid)?.key() <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            Ok(None)
        } else {
            self.entry_at(lo - 1).map(Some)
        }
    }

    /// Writes the in-memory entries that are not yet in the file.
    pub fn persist(&mut self) -> io::Result<()> {
        if let Some(m) = &self.mirror {
            if m.len() > self.persisted {
                let mut buf = Vec::with_capacity((m.len() - self.persisted) * E::SIZE);
                for e in &m[self.persisted..] {
                    e.encode(&mut buf);
                }
                self.file
                    .write_vectored_at(&[&buf], (self.persisted * E::SIZE) as u64)?;
                self.persisted = m.len();
            }
        }
        Ok(())
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Persists and drops the in-memory copy: the segment is no longer appended to.
    pub fn seal(&mut self) -> io::Result<()> {
        self.persist()?;
        self.mirror = None;
        Ok(())
    }

    /// Removes every entry (recovery rebuilds from scratch).
    pub fn reset(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.persisted = 0;
        self.mirror = Some(Vec::new());
        Ok(())
    }

    /// Drops entries with key > `key` (truncation).
    pub fn truncate_above(&mut self, key: i64) -> io::Result<()> {
        let mut entries = match self.mirror.take() {
            Some(m) => m,
            None => self.read_all()?,
        };
        entries.retain(|e| e.key() <= key);
        let keep_persisted = entries.len().min(self.persisted);
        self.file.set_len((keep_persisted * E::SIZE) as u64)?;
        self.persisted = keep_persisted;
        self.mirror = Some(entries);
        Ok(())
    }
}

pub type OffsetIndex = SparseIndex<OffsetEntry>;
pub type TimeIndex = SparseIndex<TimeEntry>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::RealIo;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn floor_returns_greatest_entry_not_above_target(
            mut keys in proptest::collection::btree_set(0u32..10_000, 0..200),
            target in 0i64..11_000,
            sealed in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut index = OffsetIndex::open(&RealIo, &dir.path().join("x.index"), true, 1 << 20).unwrap();
            for (i, k) in keys.iter().enumerate() {
                index.append(OffsetEntry { relative_offset: *k, position: i as u32 }).unwrap();
            }
            if sealed {
                index.seal().unwrap();
                index = OffsetIndex::open(&RealIo, &dir.path().join("x.index"), false, 1 << 20).unwrap();
            }
            let expected = keys.iter().rev().find(|k| **k as i64 <= target).copied();
            let got = index.floor(target).unwrap().map(|e| e.relative_offset);
            prop_assert_eq!(got, expected);
            keys.clear();
        }
    }

    #[test]
    fn truncate_above_drops_later_entries_on_disk_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.timeindex");
        let mut index = TimeIndex::open(&RealIo, &path, true, 1 << 20).unwrap();
        for i in 0..10 {
            index
                .append(TimeEntry {
                    timestamp: 100 + i,
                    relative_offset: i as u32,
                })
                .unwrap();
        }
        index.persist().unwrap();
        index.truncate_above(104).unwrap();
        index.seal().unwrap();
        let reopened = TimeIndex::open(&RealIo, &path, false, 1 << 20).unwrap();
        assert_eq!(reopened.len(), 5);
        assert_eq!(reopened.last().unwrap().unwrap().timestamp, 104);
    }
}
