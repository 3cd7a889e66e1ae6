//! Strata's storage engine: Kafka's segmented log on an abstract file system.
//!
//! No networking and no async runtime here: the broker calls into this crate from its handlers.

pub mod batch;
pub mod clock;
pub mod config;
pub mod control;
pub mod error;
pub mod failure;
pub mod io;
pub mod log;
pub mod log_manager;
pub mod model;
pub mod records;
pub mod tier;
pub mod units;

pub use config::{LogConfig, TimestampType};
pub use error::{AppendError, LogError, ReadError};
pub use log::partition::{AppendInfo, PartitionLog, ReadInfo};
pub use log::segment::{now_ms, SegmentSlice};
pub use log_manager::{LogManager, LogManagerConfig, Partition, Topic};
pub use units::{FilePosition, LeaderEpoch, Offset, ProducerId};
