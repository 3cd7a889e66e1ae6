//! The partition log: segments, their indexes, recovery and retention.

pub mod cleaner;
pub mod index;
pub mod leader_epoch;
pub mod partition;
pub mod producer_state;
pub mod segment;
pub mod segment_dirs;
pub mod txn_index;
