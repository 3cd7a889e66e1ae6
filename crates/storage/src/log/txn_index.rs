//! The aborted-transaction index of a segment (Kafka's `.txnindex`): one entry per transaction
//! that was aborted and whose abort marker lies in the segment, so that a `read_committed` fetch
//! can tell the client which records to drop without reading them.
//!
//! ```text
//! <base offset>.txnindex: entries of 34 bytes, in the order the aborts were written
//!     version            i16   0
//!     producer id        i64
//!     first offset       i64   the transaction's first record
//!     last offset        i64   its abort marker
//!     last stable offset i64   the partition's LSO once the abort completed
//! ```
//! Entries are ordered by last offset, strictly increasing (an assertion: an index out of order
//! would hide aborted records). Recovery rebuilds the index of every segment it scans, so a torn
//! entry is simply dropped at open.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::io::{Io, IoFile};
use crate::units::{Offset, ProducerId};

/// One aborted transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: ProducerId,
    pub first_offset: Offset,
    pub last_offset: Offset,
    pub last_stable_offset: Offset,
}

impl AbortedTxn {
    pub const SIZE: usize = 34;
    const VERSION: i16 = 0;

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..2].copy_from_slice(&Self::VERSION.to_be_bytes());
        b[2..10].copy_from_slice(&self.producer_id.get().to_be_bytes());
        b[10..18].copy_from_slice(&self.first_offset.get().to_be_bytes());
        b[18..26].copy_from_slice(&self.last_offset.get().to_be_bytes());
        b[26..34].copy_from_slice(&self.last_stable_offset.get().to_be_bytes());
        b
    }

    /// An entry read from disk; None for an unknown version or offsets out of order.
    pub fn decode(b: &[u8]) -> Option<AbortedTxn> {
        let long = |at: usize| i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        if b.len() < Self::SIZE || i16::from_be_bytes([b[0], b[1]]) != Self::VERSION {
            return None;
        }
        let txn = AbortedTxn {
            producer_id: ProducerId(long(2)),
            first_offset: Offset(long(10)),
            last_offset: Offset(long(18)),
            last_stable_offset: Offset(long(26)),
        };
        (txn.first_offset <= txn.last_offset && txn.first_offset.get() >= 0).then_some(txn)
    }
}

/// What a fetch needs from the indexes: the aborted transactions that overlap its range, and
/// whether the search may stop (an entry's LSO reached the range's end: later segments cannot
/// hold an abort of a transaction that began below it).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AbortedSearch {
    pub aborted: Vec<AbortedTxn>,
    pub complete: bool,
}

#[derive(Debug)]
pub struct TransactionIndex {
    path: PathBuf,
    file: Arc<dyn IoFile>,
    entries: Vec<AbortedTxn>,
}

impl TransactionIndex {
    /// Opens (creating when missing) the index at `path`. A trailing partial or unreadable entry
    /// (a torn write) is cut off.
    pub fn open(io: &dyn Io, path: &Path) -> io::Result<TransactionIndex> {
        let file = io.open(path, true)?;
        let len = file.len()? as usize;
        let mut bytes = vec![0u8; len];
        file.read_exact_at(&mut bytes, 0)?;
        let mut entries = Vec::new();
        for chunk in bytes.chunks_exact(AbortedTxn::SIZE) {
            match AbortedTxn::decode(chunk) {
                Some(e)
                    if entries
                        .last()
                        .is_none_or(|l: &AbortedTxn| l.last_offset < e.last_offset) =>
                {
                    entries.push(e)
                }
                _ => break,
            }
        }
        let valid = (entries.len() * AbortedTxn::SIZE) as u64;
        if valid != len as u64 {
            file.set_len(valid)?;
        }
        Ok(TransactionIndex {
            path: path.to_path_buf(),
            file,
            entries,
        })
    }

    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records an aborted transaction whose marker was just written (its last offset beyond
    /// every entry's). Durable with the segment's next sync.
    pub fn append(&mut self, txn: AbortedTxn) -> io::Result<()> {
        if let Some(last) = self.entries.last() {
            assert!(
                txn.last_offset > last.last_offset,
                "{}: aborted transaction ending at {} appended after one ending at {}",
                self.path.display(),
                txn.last_offset,
                last.last_offset
            );
        }
        let at = (self.entries.len() * AbortedTxn::SIZE) as u64;
        if let Err(e) = self.file.write_vectored_at(&[&txn.encode()], at) {
            // A torn entry must not stay behind: cut it. If even that fails, its error is the
            // one returned (and the caller stops the log).
            self.file.set_len(at)?;
            return Err(e);
        }
        self.entries.push(txn);
        Ok(())
    }

    /// The aborted transactions with records in `[fetch_offset, upper_bound)`, as Kafka's
    /// `collectAbortedTxns`.
    pub fn collect_aborted(&self, fetch_offset: Offset, upper_bound: Offset) -> AbortedSearch {
        let mut search = AbortedSearch::default();
        for txn in &self.entries {
            if txn.last_offset >= fetch_offset && txn.first_offset < upper_bound {
                search.aborted.push(*txn);
            }
            if txn.last_stable_offset >= upper_bound {
                search.complete = true;
                break;
            }
        }
        search
    }

    /// Drops the entries of aborts at or after `offset` (the log was truncated there).
    pub fn truncate_to(&mut self, offset: Offset) -> io::Result<()> {
        let keep = self
            .entries
            .iter()
            .take_while(|e| e.last_offset < offset)
            .count();
        if keep < self.entries.len() {
            self.file.set_len((keep * AbortedTxn::SIZE) as u64)?;
            self.entries.truncate(keep);
        }
        Ok(())
    }

    /// Drops every entry (a segment being recovered rebuilds its index).
    pub fn reset(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.entries.clear();
        Ok(())
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// The file, for a flush.
    pub fn file(&self) -> Arc<dyn IoFile> {
        self.file.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::sim::SimIo;

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: ProducerId(pid),
            first_offset: Offset(first),
            last_offset: Offset(last),
            last_stable_offset: Offset(lso),
        }
    }

    /// The index of segment 0 in `/p`, its directory entry durable (as a segment's creation
    /// makes it).
    fn index(io: &SimIo) -> TransactionIndex {
        io.create_dir_durable(Path::new("/p")).unwrap();
        let idx =
            TransactionIndex::open(io, Path::new("/p/00000000000000000000.txnindex")).unwrap();
        io.sync_dir(Path::new("/p")).unwrap();
        idx
    }

    #[test]
    fn entries_have_kafkas_34_byte_layout() {
        let e = txn(7, 100, 120, 95);
        let b = e.encode();
        assert_eq!(&b[0..2], &[0, 0], "version 0");
        assert_eq!(i64::from_be_bytes(b[2..10].try_into().unwrap()), 7);
        assert_eq!(i64::from_be_bytes(b[26..34].try_into().unwrap()), 95);
        assert_eq!(AbortedTxn::decode(&b), Some(e));
        let mut bad = b;
        bad[1] = 9;
        assert_eq!(AbortedTxn::decode(&bad), None, "unknown version");
    }

    #[test]
    fn a_fetch_collects_the_aborts_that_overlap_it_and_knows_when_to_stop() {
        let io = SimIo::new();
        let mut idx = index(&io);
        idx.append(txn(1, 0, 10, 0)).unwrap();
        idx.append(txn(2, 5, 20, 11)).unwrap();
        idx.append(txn(3, 30, 40, 41)).unwrap();
        let s = idx.collect_aborted(Offset(12), Offset(35));
        assert_eq!(
            s.aborted
                .iter()
                .map(|t| t.producer_id.get())
                .collect::<Vec<_>>(),
            [2, 3]
        );
        assert!(s.complete, "the last entry's LSO passed the range's end");
        let s = idx.collect_aborted(Offset(0), Offset(100));
        assert_eq!(s.aborted.len(), 3);
        assert!(!s.complete, "later segments may hold more");
    }

    #[test]
    fn the_index_survives_a_crash_loses_a_torn_entry_and_truncates() {
        let io = SimIo::new();
        let mut idx = index(&io);
        idx.append(txn(1, 0, 10, 0)).unwrap();
        idx.append(txn(2, 11, 20, 11)).unwrap();
        idx.sync().unwrap();
        // A third entry torn by a crash: only half of it reached the disk.
        let f = io
            .open(Path::new("/p/00000000000000000000.txnindex"), false)
            .unwrap();
        f.write_vectored_at(&[&txn(3, 21, 30, 21).encode()[..17]], 68)
            .unwrap();
        f.sync_data().unwrap();
        io.crash();
        let mut idx = index(&io);
        assert_eq!(idx.entries().len(), 2);
        idx.truncate_to(Offset(15)).unwrap();
        assert_eq!(idx.entries(), &[txn(1, 0, 10, 0)]);
        idx.sync().unwrap();
        assert_eq!(index(&io).entries().len(), 1);
    }

    #[test]
    #[should_panic(expected = "appended after one ending at")]
    fn entries_out_of_order_are_refused() {
        let io = SimIo::new();
        let mut idx = index(&io);
        idx.append(txn(1, 0, 10, 0)).unwrap();
        let _ = idx.append(txn(2, 3, 9, 0));
    }
}
