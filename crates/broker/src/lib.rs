//! The Strata broker: Kafka's wire protocol over Strata's storage engine.

pub mod broker;
pub mod config;
pub mod group;
pub mod handlers;
pub mod metrics;
pub mod replica;
pub mod server;
pub mod wire;

pub use broker::{Broker, StartError};
pub use config::{BrokerConfig, ConfigError};
pub use server::Server;
