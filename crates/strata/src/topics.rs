//! `strata topics`: kafka-topics.sh over the Kafka protocol: create, list, describe, alter
//! (partitions and configs) and delete topics. `--topic` takes a regular expression everywhere
//! but with `--create`, as Kafka's tool does.

use anyhow::{bail, Context, Result};
use clap::Args;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::client::{error_text, Client};
use crate::configs::{alter_configs, key_value};

#[derive(Debug, Args)]
pub struct TopicsArgs {
    /// The broker to connect to (host:port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// Client settings for the connection (security.protocol, sasl.*, ssl.*), as Kafka's tools.
    #[arg(long)]
    pub command_config: Option<std::path::PathBuf>,
    /// Create a new topic (--topic, optionally --partitions, --replication-factor, --config).
    #[arg(long)]
    pub create: bool,
    /// List the topics (those matching --topic, when given).
    #[arg(long)]
    pub list: bool,
    /// Describe the topics (those matching --topic, when given): partitions, leaders, replicas,
    /// and the configs set on the topic; for a compacted topic, each partition's dirty ratio.
    #[arg(long)]
    pub describe: bool,
    /// Delete the topics matching --topic.
    #[arg(long)]
    pub delete: bool,
    /// Alter the topics matching --topic: their partition count (--partitions, only up) and
    /// configs (--config to set, --delete-config to remove).
    #[arg(long)]
    pub alter: bool,
    /// The topic: a name for --create, a regular expression otherwise (matching whole names).
    #[arg(long)]
    pub topic: Option<String>,
    /// The number of partitions: of a new topic, or the new count with --alter.
    #[arg(long)]
    pub partitions: Option<i32>,
    /// The replication factor of a new topic (a single broker takes 1).
    #[arg(long)]
    pub replication_factor: Option<i16>,
    /// The replicas of each partition of a new topic, instead of --partitions and
    /// --replication-factor: partitions separated by commas, each one's broker ids by colons
    /// (`1:2,2:3`), the first of each its preferred leader.
    #[arg(long)]
    pub replica_assignment: Option<String>,
    /// A topic config, `key=value` (repeatable): for --create and --alter.
    #[arg(long = "config")]
    pub configs: Vec<String>,
    /// A topic config to remove with --alter, back to the broker's default (repeatable).
    #[arg(long = "delete-config")]
    pub delete_configs: Vec<String>,
    /// With --create: do nothing if the topic exists.
    #[arg(long)]
    pub if_not_exists: bool,
    /// With --alter, --describe, --delete: do nothing if no topic matches.
    #[arg(long)]
    pub if_exists: bool,
    /// Leave out internal topics from --list and --describe.
    #[arg(long)]
    pub exclude_internal: bool,
}

fn topic(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// `--topic` as Kafka's tool reads it: a regular expression that must match a whole name.
fn topic_filter(pattern: Option<&str>) -> Result<Option<regex::Regex>> {
    pattern
        .map(|p| {
            regex::Regex::new(&format!("^(?:{p})$"))
                .with_context(|| format!("--topic {p:?} is not a valid regular expression"))
        })
        .transpose()
}

/// Every topic's metadata, sorted by name, filtered by `--topic` and `--exclude-internal`.
async fn matching_topics(
    client: &mut Client,
    args: &TopicsArgs,
) -> Result<Vec<MetadataResponseTopic>> {
    let filter = topic_filter(args.topic.as_deref())?;
    let metadata = client
        .send(
            MetadataRequest::default()
                .with_topics(None)
                .with_allow_auto_topic_creation(false),
        )
        .await?;
    let mut topics: Vec<MetadataResponseTopic> = metadata
        .topics
        .into_iter()
        .filter(|t| t.error_code == 0)
        .filter(|t| !(args.exclude_internal && t.is_internal))
        .filter(|t| {
            let name = t.name.as_ref().map(|n| n.0.as_str()).unwrap_or("");
            filter.as_ref().is_none_or(|f| f.is_match(name))
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(topics)
}

fn name_of(t: &MetadataResponseTopic) -> String {
    t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default()
}

/// The topics an --alter, --describe or --delete acts on: an error when none matches (unless
/// --if-exists), as Kafka's tool says it.
async fn targets(client: &mut Client, args: &TopicsArgs) -> Result<Vec<MetadataResponseTopic>> {
    let topics = matching_topics(client, args).await?;
    if topics.is_empty() && !args.if_exists {
        if let Some(t) = &args.topic {
            bail!("Topic '{t}' does not exist as expected");
        }
    }
    Ok(topics)
}

async fn describe(client: &mut Client, args: &TopicsArgs) -> Result<()> {
    for t in targets(client, args).await? {
        let name = name_of(&t);
        let configs = client
            .send(DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_string(name.clone())),
            ]))
            .await?;
        // As kafka-topics.sh: the configs set on the topic (all of them with
        // `strata configs --describe --all`).
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
        let compacted = configs
            .results
            .iter()
            .flat_map(|r| r.configs.iter())
            .any(|c| {
                c.name.as_str() == "cleanup.policy"
                    && c.value.as_ref().is_some_and(|v| v.contains("compact"))
            });
        let dirty = if compacted {
            dirty_ratios(client, &t).await?
        } else {
            Default::default()
        };
        let moving = reassignments(client, &t).await;
        // A partition being reassigned counts its target replicas (as Kafka's tool).
        let rf = t
            .partitions
            .first()
            .map(|p| {
                let removing = moving
                    .get(&p.partition_index)
                    .map_or(0, |(_, removing)| removing.len());
                p.replica_nodes.len() - removing
            })
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
            let ratio = match dirty.get(&p.partition_index) {
                Some(r) => format!("\tDirtyRatio: {r:.2}"),
                None if compacted => "\tDirtyRatio: -".to_string(),
                None => String::new(),
            };
            let reassigning = match moving.get(&p.partition_index) {
                Some((adding, removing)) => format!(
                    "\tAdding Replicas: {}\tRemoving Replicas: {}",
                    join(adding),
                    join(removing)
                ),
                None => String::new(),
            };
            println!(
                "\tTopic: {name}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}{reassigning}{ratio}",
                p.partition_index,
                p.leader_id.0,
                join(&p.replica_nodes),
                join(&p.isr_nodes)
            );
        }
    }
    Ok(())
}

/// The topic's partitions being reassigned: (adding, removing) replicas, as
/// ListPartitionReassignments tells (nothing when the broker cannot say).
async fn reassignments(
    client: &mut Client,
    t: &MetadataResponseTopic,
) -> std::collections::BTreeMap<i32, (Vec<BrokerId>, Vec<BrokerId>)> {
    use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
    let request = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(Some(vec![ListPartitionReassignmentsTopics::default()
            .with_name(TopicName(StrBytes::from_string(name_of(t))))
            .with_partition_indexes(
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )]));
    let Ok(response) = client.send(request).await else {
        return Default::default();
    };
    response
        .topics
        .into_iter()
        .flat_map(|t| t.partitions)
        .map(|p| (p.partition_index, (p.adding_replicas, p.removing_replicas)))
        .collect()
}

/// Each partition's dirty ratio, as the broker reports it in DescribeLogDirs (a partition the
/// broker did not report is left out).
async fn dirty_ratios(
    client: &mut Client,
    t: &MetadataResponseTopic,
) -> Result<std::collections::BTreeMap<i32, f64>> {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    use strata_broker::handlers::describe_log_dirs::DIRTY_RATIO_TAG;
    let Some(name) = t.name.clone() else {
        return Ok(Default::default());
    };
    let response = client
        .send(DescribeLogDirsRequest::default().with_topics(Some(vec![
                DescribableLogDirTopic::default()
                    .with_topic(name)
                    .with_partitions(t.partitions.iter().map(|p| p.partition_index).collect()),
            ])))
        .await?;
    let mut ratios = std::collections::BTreeMap::new();
    for p in response
        .results
        .iter()
        .flat_map(|r| r.topics.iter())
        .flat_map(|t| t.partitions.iter())
    {
        let Some(raw) = p.unknown_tagged_fields.get(&DIRTY_RATIO_TAG) else {
            continue;
        };
        if let Ok(bytes) = <[u8; 8]>::try_from(raw.as_ref()) {
            ratios.insert(p.partition_index, f64::from_be_bytes(bytes));
        }
    }
    Ok(ratios)
}

async fn create(client: &mut Client, args: &TopicsArgs, name: &str) -> Result<()> {
    let mut configs = Vec::new();
    for c in &args.configs {
        let (k, v) = key_value(c)?;
        configs.push(
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_value(Some(StrBytes::from_string(v.to_string()))),
        );
    }
    let assignments = match &args.replica_assignment {
        None => Vec::new(),
        Some(text) => {
            if args.partitions.is_some() || args.replication_factor.is_some() {
                bail!("--replica-assignment replaces --partitions and --replication-factor");
            }
            text.split(',')
                .enumerate()
                .map(|(i, replicas)| {
                    let ids = replicas
                        .split(':')
                        .map(|b| b.trim().parse::<i32>().map(BrokerId))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|_| anyhow::anyhow!("bad --replica-assignment {text:?}"))?;
                    Ok(CreatableReplicaAssignment::default()
                        .with_partition_index(i as i32)
                        .with_broker_ids(ids))
                })
                .collect::<Result<Vec<_>>>()?
        }
    };
    let (partitions, replication_factor) = if assignments.is_empty() {
        (
            args.partitions.unwrap_or(-1),
            args.replication_factor.unwrap_or(-1),
        )
    } else {
        (-1, -1)
    };
    let response = client
        .send(
            CreateTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(topic(name))
                    .with_num_partitions(partitions)
                    .with_replication_factor(replication_factor)
                    .with_assignments(assignments)
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
    Ok(())
}

async fn delete(client: &mut Client, args: &TopicsArgs) -> Result<()> {
    let names: Vec<String> = targets(client, args).await?.iter().map(name_of).collect();
    if names.is_empty() {
        return Ok(());
    }
    let response = client
        .send(
            DeleteTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topic_names(names.iter().map(|n| topic(n)).collect())
                .with_topics(
                    names
                        .iter()
                        .map(|n| DeleteTopicState::default().with_name(Some(topic(n))))
                        .collect(),
                ),
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
    Ok(())
}

async fn alter(client: &mut Client, args: &TopicsArgs) -> Result<()> {
    if args.partitions.is_none() && args.configs.is_empty() && args.delete_configs.is_empty() {
        bail!("--alter needs --partitions, --config or --delete-config");
    }
    let names: Vec<String> = targets(client, args).await?.iter().map(name_of).collect();
    for name in &names {
        if let Some(count) = args.partitions {
            let response = client
                .send(
                    CreatePartitionsRequest::default()
                        .with_timeout_ms(30_000)
                        .with_topics(vec![CreatePartitionsTopic::default()
                            .with_name(topic(name))
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
        }
        if !args.configs.is_empty() || !args.delete_configs.is_empty() {
            alter_configs(client, 2, name, &args.configs, &args.delete_configs).await?;
            println!("Updated config for topic {name}.");
        }
    }
    Ok(())
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
    let configs_allowed = args.create || args.alter;
    if !args.configs.is_empty() && !configs_allowed {
        bail!("Option --config is only valid with --create or --alter");
    }
    let mut client =
        Client::connect_with(&args.bootstrap_server, args.command_config.as_deref()).await?;
    if args.list {
        for t in matching_topics(&mut client, &args).await? {
            println!("{}", name_of(&t));
        }
        return Ok(());
    }
    if args.describe {
        return describe(&mut client, &args).await;
    }
    let Some(name) = args.topic.clone() else {
        bail!("--topic is required")
    };
    if args.create {
        return create(&mut client, &args, &name).await;
    }
    if args.delete {
        return delete(&mut client, &args).await;
    }
    alter(&mut client, &args).await
}
