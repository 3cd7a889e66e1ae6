//! `strata delete-records` (kafka-delete-records.sh): moves the log start offset of the
//! partitions of `--offset-json-file` (`{"partitions":[{"topic":"t","partition":0,
//! "offset":10}],"version":1}`; offset -1: the high watermark) up to the offset given, asking
//! each partition's leader (DeleteRecords), and prints Kafka's lines: each partition's new low
//! watermark or its error. Fails when some partition's records could not be deleted.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::{DeleteRecordsRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::client::{error_name, Client};

#[derive(Debug, Args)]
pub struct DeleteRecordsArgs {
    /// A broker to connect to (host:port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// Client settings for the connections (security.protocol, sasl.*, ssl.*).
    #[arg(long)]
    pub command_config: Option<std::path::PathBuf>,
    /// The partitions and offsets: {"partitions":[{"topic":"t","partition":0,"offset":10}],"version":1}
    #[arg(long)]
    pub offset_json_file: std::path::PathBuf,
}

fn read_plan(path: &std::path::Path) -> Result<Vec<(String, i32, i64)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).context("not JSON")?;
    let partitions = json["partitions"]
        .as_array()
        .ok_or_else(|| anyhow!("the file has no \"partitions\" array"))?;
    let plan: Vec<(String, i32, i64)> = partitions
        .iter()
        .map(|p| {
            let topic = p["topic"]
                .as_str()
                .ok_or_else(|| anyhow!("a partition without \"topic\""))?;
            let partition = p["partition"]
                .as_i64()
                .ok_or_else(|| anyhow!("a partition without \"partition\""))?;
            let offset = p["offset"]
                .as_i64()
                .ok_or_else(|| anyhow!("a partition without \"offset\""))?;
            Ok((topic.to_string(), partition as i32, offset))
        })
        .collect::<Result<_>>()?;
    let mut seen = std::collections::BTreeSet::new();
    for (t, p, _) in &plan {
        if !seen.insert((t, p)) {
            bail!("Offset json file contains duplicate topic partitions: {t}-{p}");
        }
    }
    Ok(plan)
}

pub async fn run(args: DeleteRecordsArgs) -> Result<()> {
    let plan = read_plan(&args.offset_json_file)?;
    let config = args.command_config.as_deref();
    let mut client = Client::connect_with(&args.bootstrap_server, config).await?;
    let metadata = client
        .send(MetadataRequest::default().with_topics(None))
        .await?;
    let addr_of: BTreeMap<i32, String> = metadata
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    println!("Executing records delete operation");
    // Each partition goes to its leader; one it cannot be sent to gets its error at once.
    let mut by_leader: BTreeMap<i32, Vec<(String, i32, i64)>> = BTreeMap::new();
    let mut outcome: BTreeMap<(String, i32), Result<i64, String>> = BTreeMap::new();
    for (topic, partition, offset) in plan {
        let leader = metadata
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
            .and_then(|t| t.partitions.iter().find(|p| p.partition_index == partition))
            .map(|p| p.leader_id.0);
        match leader {
            Some(l) if addr_of.contains_key(&l) => by_leader
                .entry(l)
                .or_default()
                .push((topic, partition, offset)),
            Some(_) => {
                outcome.insert((topic, partition), Err("LeaderNotAvailable".to_string()));
            }
            None => {
                outcome.insert(
                    (topic, partition),
                    Err("UnknownTopicOrPartition".to_string()),
                );
            }
        }
    }
    for (leader, partitions) in by_leader {
        let mut topics: BTreeMap<String, Vec<DeleteRecordsPartition>> = BTreeMap::new();
        for (t, p, o) in &partitions {
            topics.entry(t.clone()).or_default().push(
                DeleteRecordsPartition::default()
                    .with_partition_index(*p)
                    .with_offset(*o),
            );
        }
        let request = DeleteRecordsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        DeleteRecordsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let mut broker = Client::connect_with(&addr_of[&leader], config)
            .await
            .with_context(|| format!("cannot reach broker {leader}"))?;
        let response = broker.send(request).await?;
        for t in response.topics {
            for p in t.partitions {
                let result = match p.error_code {
                    0 => Ok(p.low_watermark),
                    code => Err(error_name(code).unwrap_or_else(|| format!("error {code}"))),
                };
                outcome.insert((t.name.as_str().to_string(), p.partition_index), result);
            }
        }
    }
    println!("Records delete operation completed:");
    let mut failed = false;
    for ((topic, partition), result) in &outcome {
        match result {
            Ok(low) => println!("partition: {topic}-{partition}\tlow_watermark: {low}"),
            Err(e) => {
                failed = true;
                println!("partition: {topic}-{partition}\terror: {e}");
            }
        }
    }
    if failed {
        bail!("the records of some partitions could not be deleted");
    }
    Ok(())
}
