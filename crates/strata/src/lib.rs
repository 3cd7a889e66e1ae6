//! The `strata` tools: a small Kafka client for the admin commands, and the commands themselves.

pub mod acls;
pub mod client;
pub mod cluster;
pub mod configs;
pub mod console;
pub mod delete_records;
pub mod dump_log;
pub mod elect_leaders;
pub mod groups;
pub mod log_dirs;
pub mod metadata_quorum;
pub mod perf;
pub mod reassign;
pub mod storage;
pub mod tiers;
pub mod topics;
pub mod transactions;
