//! The partition log: segments, their indexes, recovery and retention.

pub mod index;
pub mod partition;
pub mod producer_state;
pub mod segment;
