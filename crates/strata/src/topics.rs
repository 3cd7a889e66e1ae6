//! `strata topics`: kafka-topics.sh's main operations over the Kafka protocol.

use anyhow::{bail, Result};
use clap::Args;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::client::Client;

#[derive(Debug, Args)]
pub struct TopicsArgs {
    /// The broker to connect to (host:port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    #[arg(long)]
    pub create: bool,
    #[arg(long)]
    pub list: bool,
    #[arg(long)]
    pub describe: bool,
    #[arg(long)]
    pub delete: bool,
    #[arg(long)]
    pub alter: bool,
    #[arg(long)]
    pub topic: Option<String>,
    #[arg(long)]
    pub partitions: Option<i32>,
    #[arg(long)]
    pub replication_factor: Option<i16>,
    /// A topic config override, `key=value` (repeatable).
    #[arg(long = "config")]
    pub configs: Vec<String>,
    #[arg(long)]
    pub if_not_exists: bool,
    #[arg(long)]
    pub if_exists: bool,
    /// Leave out internal topics from --list and --describe.
    #[arg(long)]
    pub exclude_internal: bool,
}

fn error_text(code: i16, message: Option<&StrBytes>) -> String {
    let name = crate::client::error_name(code).unwrap_or_default();
    match message {
        Some(m) => format!("{name}: {}", m.as_str()),
        None => name,
    }
}

fn topic(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub async fn run(args: TopicsArgs) -> Result<()> {
    let actions = [
        args.create,
        args.list,
        args.describe,
        args.delete,
        args.alter,
    ]
    .iter()
    .filter(|a| **a)
    .count();
    if actions != 1 {
        bail!("Command must include exactly one action: --list, --describe, --create, --alter or --delete");
    }
    let mut client = Client::connect(&args.bootstrap_server).await?;
    if args.list {
        let metadata = client
            .send(MetadataRequest::default().with_topics(None))
            .await?;
        let mut names: Vec<String> = metadata
            .topics
            .iter()
            .filter(|t| !(args.exclude_internal && t.is_internal))
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect();
        names.sort();
        for n in names {
            println!("{n}");
        }
        return Ok(());
    }
    if args.describe {
        let request = match &args.topic {
            Some(t) => MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic(t))),
            ])),
            None => MetadataRequest::default().with_topics(None),
        };
        let metadata = client
            .send(request.with_allow_auto_topic_creation(false))
            .await?;
        let mut topics = metadata.topics;
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        for t in topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            if t.error_code != 0 {
                if args.if_exists && t.error_code == ResponseError::UnknownTopicOrPartition.code() {
                    continue;
                }
                bail!(
                    "Topic '{name}' does not exist as expected ({})",
                    error_text(t.error_code, None)
                );
            }
            if args.exclude_internal && t.is_internal {
                continue;
            }
            let configs = client
                .send(DescribeConfigsRequest::default().with_resources(
                    vec![DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_string(name.clone()))],
                ))
                .await?;
            let overrides: Vec<String> = configs
                .results
                .iter()
                .flat_map(|r| r.configs.iter())
                .filter(|c| c.config_source == 1)
                .map(|c| {
                    format!(
                        "{}={}",
                        c.name.as_str(),
                        c.value.as_ref().map(|v| v.as_str()).unwrap_or("")
                    )
                })
                .collect();
            let rf = t
                .partitions
                .first()
                .map(|p| p.replica_nodes.len())
                .unwrap_or(0);
            println!(
                "Topic: {name}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {}",
                strata_broker::broker::base64_url(t.topic_id.as_bytes()),
                t.partitions.len(),
                overrides.join(",")
            );
            let mut parts = t.partitions.clone();
            parts.sort_by_key(|p| p.partition_index);
            for p in parts {
                let join = |v: &[BrokerId]| {
                    v.iter()
                        .map(|b| b.0.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                println!(
                    "\tTopic: {name}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
                    p.partition_index,
                    p.leader_id.0,
                    join(&p.replica_nodes),
                    join(&p.isr_nodes)
                );
            }
        }
        return Ok(());
    }
    let Some(name) = args.topic.clone() else {
        bail!("--topic is required")
    };
    if args.create {
        let mut configs = Vec::new();
        for c in &args.configs {
            let Some((k, v)) = c.split_once('=') else {
                bail!("Invalid topic config: all configs to be added must be in the format \"key=val\", got {c}")
            };
            configs.push(
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(k.to_string()))
                    .with_value(Some(StrBytes::from_string(v.to_string()))),
            );
        }
        let response = client
            .send(
                CreateTopicsRequest::default()
                    .with_timeout_ms(30_000)
                    .with_topics(vec![CreatableTopic::default()
                        .with_name(topic(&name))
                        .with_num_partitions(args.partitions.unwrap_or(-1))
                        .with_replication_factor(args.replication_factor.unwrap_or(-1))
                        .with_configs(configs)]),
            )
            .await?;
        for r in response.topics {
            if r.error_code == ResponseError::TopicAlreadyExists.code() && args.if_not_exists {
                continue;
            }
            if r.error_code != 0 {
                bail!(
                    "Error while executing topic command : {}",
                    error_text(r.error_code, r.error_message.as_ref())
                );
            }
            println!("Created topic {name}.");
        }
        return Ok(());
    }
    if args.delete {
        let response = client
            .send(
                DeleteTopicsRequest::default()
                    .with_timeout_ms(30_000)
                    .with_topic_names(vec![topic(&name)])
                    .with_topics(vec![
                        DeleteTopicState::default().with_name(Some(topic(&name)))
                    ]),
            )
            .await?;
        for r in response.responses {
            if r.error_code == ResponseError::UnknownTopicOrPartition.code() && args.if_exists {
                continue;
            }
            if r.error_code != 0 {
                bail!(
                    "Error while executing topic command : {}",
                    error_text(r.error_code, r.error_message.as_ref())
                );
            }
        }
        return Ok(());
    }
    if args.alter {
        let Some(count) = args.partitions else {
            bail!("--alter needs --partitions")
        };
        let response = client
            .send(
                CreatePartitionsRequest::default()
                    .with_timeout_ms(30_000)
                    .with_topics(vec![CreatePartitionsTopic::default()
                        .with_name(topic(&name))
                        .with_count(count)
                        .with_assignments(None)]),
            )
            .await?;
        for r in response.results {
            if r.error_code != 0 {
                bail!(
                    "Error while executing topic command : {}",
                    error_text(r.error_code, r.error_message.as_ref())
                );
            }
        }
        return Ok(());
    }
    Ok(())
}
