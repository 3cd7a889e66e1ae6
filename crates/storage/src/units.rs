//! Values that must not mix where they cross module boundaries: a log offset, a leader epoch, a
//! byte position in a segment file and a producer id are all integers, and a call that passed
//! one for another (an epoch as an offset, a file position as an offset) would serve or truncate
//! the wrong records without any error. Each is its own type here; arithmetic on them is limited
//! to what the log does (the next offset, the distance between two) and checked.
//!
//! Inside a module, and on the wire (`batch`, the protocol), the raw integers stay: a batch
//! header is Kafka's bytes, decoded as they are. The conversion happens where a value enters or
//! leaves the log's API.

use std::fmt;

/// Each unit prints as its number.
macro_rules! display_as_number {
    ($($unit:ty),*) => {
        $(impl fmt::Display for $unit {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        })*
    };
}
display_as_number!(Offset, LeaderEpoch, FilePosition, ProducerId);

/// A record's offset in a partition's log (Kafka's `long` offsets; -1 is "none" on the wire,
/// never a valid `Offset` in the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub i64);

impl Offset {
    pub const ZERO: Offset = Offset(0);
    /// Larger than any offset a log holds (an unbounded read).
    pub const MAX: Offset = Offset(i64::MAX);

    pub const fn get(self) -> i64 {
        self.0
    }

    /// The offset after this one. Panics past `i64::MAX`: offsets read from disk or the wire are
    /// checked against the log's range before they get here.
    pub fn next(self) -> Offset {
        Offset(self.0.checked_add(1).expect("offset overflow"))
    }

    /// This offset moved by `delta` records, or None when that leaves `i64`'s range.
    pub fn checked_add(self, delta: i64) -> Option<Offset> {
        self.0.checked_add(delta).map(Offset)
    }

    /// How many offsets lie in `[earlier, self)` (0 when `earlier` is not earlier).
    pub fn since(self, earlier: Offset) -> u64 {
        self.0.saturating_sub(earlier.0).max(0) as u64
    }
}

/// A partition's leader epoch (Kafka's `int32`, -1 on the wire for "unknown").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LeaderEpoch(pub i32);

impl LeaderEpoch {
    /// The epoch a log is written with before any leader was elected (a single broker).
    pub const INITIAL: LeaderEpoch = LeaderEpoch(0);
    /// OffsetForLeaderEpoch's "unknown epoch".
    pub const UNDEFINED: LeaderEpoch = LeaderEpoch(-1);

    pub const fn get(self) -> i32 {
        self.0
    }
}

/// A byte position in a segment's `.log` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FilePosition(pub u64);

impl FilePosition {
    pub const START: FilePosition = FilePosition(0);
    /// Past the end of any file (an unbounded read).
    pub const END: FilePosition = FilePosition(u64::MAX);

    pub const fn get(self) -> u64 {
        self.0
    }
}

/// An idempotent or transactional producer's id (Kafka's `int64`, -1 for none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ProducerId(pub i64);

impl ProducerId {
    /// A batch from a producer that is neither idempotent nor transactional.
    pub const NONE: ProducerId = ProducerId(-1);

    pub const fn get(self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_and_refuse_to_overflow() {
        assert_eq!(Offset(5).next(), Offset(6));
        assert_eq!(Offset(10).since(Offset(4)), 6);
        assert_eq!(Offset(4).since(Offset(10)), 0);
        assert_eq!(Offset(i64::MAX).checked_add(1), None);
        assert!(std::panic::catch_unwind(|| Offset::MAX.next()).is_err());
    }
}
