//! The Strata broker: Kafka's wire protocol over Strata's storage engine.

pub mod broker;
pub mod config;
pub mod console;
pub mod failpoint;
pub mod group;
pub mod handlers;
pub mod internal_log;
pub mod meta_properties;
pub mod metrics;
pub mod producer_ids;
pub mod quorum;
pub mod replica;
pub mod security;
pub mod server;
pub mod txn;
pub mod wire;

pub use broker::{Broker, StartError};
pub use config::{BrokerConfig, ConfigError};
pub use server::Server;
