//! `strata log-dirs` (kafka-log-dirs.sh): `--describe` asks each broker (all, or those of
//! `--broker-list`) for its log directories (DescribeLogDirs) and prints Kafka's two lines and its
//! JSON: every directory with its error and the partitions it holds (size, offset lag, future).

use anyhow::{bail, Context, Result};
use clap::Args;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::{DescribeLogDirsRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};

use crate::client::{error_name, Client};

#[derive(Debug, Args)]
pub struct LogDirsArgs {
    /// A broker to connect to (host:port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// Client settings for the connections (security.protocol, sasl.*, ssl.*).
    #[arg(long)]
    pub command_config: Option<std::path::PathBuf>,
    /// Describe the brokers' log directories (the only action, as in Kafka).
    #[arg(long)]
    pub describe: bool,
    /// The brokers to ask (comma-separated ids); all by default.
    #[arg(long)]
    pub broker_list: Option<String>,
    /// The topics to report (comma-separated); all by default.
    #[arg(long)]
    pub topic_list: Option<String>,
}

fn list<T: std::str::FromStr>(raw: &str, what: &str) -> Result<Vec<T>> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| anyhow::anyhow!("bad {what} {s:?}")))
        .collect()
}

pub async fn run(args: LogDirsArgs) -> Result<()> {
    if !args.describe {
        bail!("give --describe (the only action of log-dirs)");
    }
    let config = args.command_config.as_deref();
    let mut client = Client::connect_with(&args.bootstrap_server, config).await?;
    let metadata = client
        .send(MetadataRequest::default().with_topics(None))
        .await?;
    let mut brokers: Vec<(i32, String)> = metadata
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    brokers.sort();
    if let Some(raw) = &args.broker_list {
        let wanted: Vec<i32> = list(raw, "broker id")?;
        for id in &wanted {
            if !brokers.iter().any(|(b, _)| b == id) {
                bail!(
                    "broker {id} is not in the cluster (brokers: {:?})",
                    brokers.iter().map(|(b, _)| *b).collect::<Vec<_>>()
                );
            }
        }
        brokers.retain(|(b, _)| wanted.contains(b));
    }
    let topics: Option<Vec<String>> = match &args.topic_list {
        Some(raw) => Some(list(raw, "topic")?),
        None => None,
    };
    // Every partition of the topics asked for (None: all of every topic).
    let request = DescribeLogDirsRequest::default().with_topics(topics.as_ref().map(|names| {
        names
            .iter()
            .map(|t| {
                let partitions = metadata
                    .topics
                    .iter()
                    .find(|m| m.name.as_ref().is_some_and(|n| n.as_str() == t))
                    .map(|m| m.partitions.iter().map(|p| p.partition_index).collect())
                    .unwrap_or_default();
                DescribableLogDirTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(t.clone())))
                    .with_partitions(partitions)
            })
            .collect()
    }));
    println!("Querying brokers for log directories information");
    let mut described = Vec::new();
    for (id, addr) in &brokers {
        let mut broker = Client::connect_with(addr, config)
            .await
            .with_context(|| format!("cannot reach broker {id} at {addr}"))?;
        let response = broker.send(request.clone()).await?;
        if response.error_code != 0 {
            bail!(
                "DescribeLogDirs of broker {id} failed: {}",
                error_name(response.error_code).unwrap_or_else(|| response.error_code.to_string())
            );
        }
        let dirs: Vec<Value> = response
            .results
            .iter()
            .map(|dir| {
                let mut partitions: Vec<(String, i32, Value)> = dir
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions.iter().map(move |p| {
                            (
                                t.name.as_str().to_string(),
                                p.partition_index,
                                json!({
                                    "partition": format!("{}-{}", t.name.as_str(), p.partition_index),
                                    "size": p.partition_size,
                                    "offsetLag": p.offset_lag,
                                    "isFuture": p.is_future_key,
                                }),
                            )
                        })
                    })
                    .collect();
                partitions.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
                json!({
                    "partitions": partitions.into_iter().map(|(_, _, v)| v).collect::<Vec<_>>(),
                    "error": error_name(dir.error_code).filter(|_| dir.error_code != 0),
                    "logDir": dir.log_dir.as_str(),
                })
            })
            .collect();
        described.push(json!({"broker": id, "logDirs": dirs}));
    }
    println!(
        "Received log directory information from brokers {}",
        brokers
            .iter()
            .map(|(id, _)| id.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    println!("{}", json!({"brokers": described, "version": 1}));
    Ok(())
}
