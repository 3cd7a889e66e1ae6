//! The perf tools: Kafka's producer and consumer perf tests and Pafka's multi-client bench, on
//! librdkafka so that they measure any Kafka broker.

pub mod bench;
pub mod chart;
pub mod consumer;
pub mod hosts;
pub mod producer;
pub mod stats;
