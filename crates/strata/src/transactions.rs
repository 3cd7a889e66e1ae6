//! `strata transactions`: kafka-transactions.sh over the Kafka protocol, with its subcommands
//! and flags: `list`, `describe --transactional-id`, `describe-producers --topic --partition`,
//! `find-hanging --topic [--partition] | --broker-id` (open transactions on partitions older
//! than `--max-transaction-timeout` minutes that their coordinator does not know as ongoing),
//! and `abort --topic --partition --start-offset` (or `--producer-id --producer-epoch
//! --coordinator-epoch`), which writes an ABORT marker for a hanging transaction.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_producers_response::ProducerState;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::client::{error_text, Client};

#[derive(Debug, Args)]
pub struct TransactionsArgs {
    /// The broker to connect to (host:port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// Client settings for the connection (security.protocol, sasl.*, ssl.*), as Kafka's tools.
    #[arg(long)]
    pub command_config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: TxnCommand,
}

#[derive(Debug, Subcommand)]
pub enum TxnCommand {
    /// List transactional ids with their producer id and state.
    List,
    /// Describe one transactional id's transaction.
    Describe {
        #[arg(long)]
        transactional_id: String,
    },
    /// Describe the active producers of a partition.
    DescribeProducers {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
    },
    /// Find transactions open on partitions that their coordinator does not know (hanging).
    FindHanging {
        /// Look at every partition of this broker.
        #[arg(long)]
        broker_id: Option<i32>,
        /// Look at this topic's partitions.
        #[arg(long)]
        topic: Option<String>,
        /// With --topic: only this partition.
        #[arg(long)]
        partition: Option<i32>,
        /// Minutes a transaction may stay open before it counts as hanging.
        #[arg(long, default_value_t = 15)]
        max_transaction_timeout: i64,
    },
    /// Abort a hanging transaction on a partition (an ABORT marker for its producer).
    Abort {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
        /// The first offset of the transaction to abort (its producer is looked up).
        #[arg(long)]
        start_offset: Option<i64>,
        #[arg(long)]
        producer_id: Option<i64>,
        #[arg(long)]
        producer_epoch: Option<i16>,
        #[arg(long)]
        coordinator_epoch: Option<i32>,
    },
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Prints rows under a header, each column as wide as its widest cell (Kafka's table form).
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("\t").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

pub async fn run(args: TransactionsArgs) -> Result<()> {
    let mut client =
        Client::connect_with(&args.bootstrap_server, args.command_config.as_deref()).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    match args.command {
        TxnCommand::List => {
            let r = client.send(ListTransactionsRequest::default()).await?;
            if r.error_code != 0 {
                bail!(
                    "Failed to list transactions: {}",
                    error_text(r.error_code, None)
                );
            }
            let coordinator = coordinator_id(&mut client).await;
            let mut rows: Vec<Vec<String>> = r
                .transaction_states
                .iter()
                .map(|t| {
                    vec![
                        t.transactional_id.to_string(),
                        coordinator.to_string(),
                        t.producer_id.0.to_string(),
                        t.transaction_state.to_string(),
                    ]
                })
                .collect();
            rows.sort();
            print_table(
                &[
                    "TransactionalId",
                    "Coordinator",
                    "ProducerId",
                    "TransactionState",
                ],
                &rows,
            );
        }
        TxnCommand::Describe { transactional_id } => {
            let r = client
                .send(
                    DescribeTransactionsRequest::default()
                        .with_transactional_ids(vec![TransactionalId(s(&transactional_id))]),
                )
                .await?;
            let t = r
                .transaction_states
                .first()
                .context("the broker answered nothing")?;
            if t.error_code != 0 {
                bail!(
                    "Failed to describe transactional id {transactional_id}: {}",
                    error_text(t.error_code, None)
                );
            }
            let partitions: Vec<String> = t
                .topics
                .iter()
                .flat_map(|d| {
                    d.partitions
                        .iter()
                        .map(move |p| format!("{}-{p}", d.topic.0))
                })
                .collect();
            let (start, duration) = if t.transaction_start_time_ms >= 0 {
                (
                    t.transaction_start_time_ms.to_string(),
                    (now - t.transaction_start_time_ms).to_string(),
                )
            } else {
                ("None".to_string(), "None".to_string())
            };
            print_table(
                &[
                    "CoordinatorId",
                    "TransactionalId",
                    "ProducerId",
                    "ProducerEpoch",
                    "TransactionState",
                    "TransactionTimeoutMs",
                    "CurrentTransactionStartTimeMs",
                    "TransactionDurationMs",
                    "TopicPartitions",
                ],
                &[vec![
                    coordinator_id(&mut client).await.to_string(),
                    transactional_id,
                    t.producer_id.0.to_string(),
                    t.producer_epoch.to_string(),
                    t.transaction_state.to_string(),
                    t.transaction_timeout_ms.to_string(),
                    start,
                    duration,
                    partitions.join(","),
                ]],
            );
        }
        TxnCommand::DescribeProducers { topic, partition } => {
            let producers = describe_producers(&mut client, &topic, partition).await?;
            let rows: Vec<Vec<String>> = producers
                .iter()
                .map(|p| {
                    vec![
                        p.producer_id.0.to_string(),
                        p.producer_epoch.to_string(),
                        p.coordinator_epoch.to_string(),
                        p.last_sequence.to_string(),
                        p.last_timestamp.to_string(),
                        if p.current_txn_start_offset >= 0 {
                            p.current_txn_start_offset.to_string()
                        } else {
                            "None".to_string()
                        },
                    ]
                })
                .collect();
            print_table(
                &[
                    "ProducerId",
                    "ProducerEpoch",
                    "LatestCoordinatorEpoch",
                    "LastSequence",
                    "LastTimestamp",
                    "CurrentTransactionStartOffset",
                ],
                &rows,
            );
        }
        TxnCommand::FindHanging {
            broker_id,
            topic,
            partition,
            max_transaction_timeout,
        } => {
            let partitions = match (&topic, broker_id) {
                (Some(t), None) => topic_partitions(&mut client, Some(t), partition).await?,
                (None, Some(_)) if partition.is_none() => {
                    topic_partitions(&mut client, None, None).await?
                }
                _ => bail!("find-hanging needs exactly one of --broker-id or --topic (--partition only with --topic)"),
            };
            let max_ms = max_transaction_timeout.max(0) * 60_000;
            let mut rows = Vec::new();
            for (t, p) in partitions {
                for producer in describe_producers(&mut client, &t, p).await? {
                    if producer.current_txn_start_offset < 0
                        || now - producer.last_timestamp < max_ms
                        || coordinator_knows(&mut client, &t, p, &producer).await?
                    {
                        continue;
                    }
                    rows.push(vec![
                        t.clone(),
                        p.to_string(),
                        producer.producer_id.0.to_string(),
                        producer.producer_epoch.to_string(),
                        producer.coordinator_epoch.to_string(),
                        producer.current_txn_start_offset.to_string(),
                        producer.last_timestamp.to_string(),
                        ((now - producer.last_timestamp) / 60_000).to_string(),
                    ]);
                }
            }
            print_table(
                &[
                    "Topic",
                    "Partition",
                    "ProducerId",
                    "ProducerEpoch",
                    "CoordinatorEpoch",
                    "StartOffset",
                    "LastTimestamp",
                    "Duration(min)",
                ],
                &rows,
            );
        }
        TxnCommand::Abort {
            topic,
            partition,
            start_offset,
            producer_id,
            producer_epoch,
            coordinator_epoch,
        } => {
            let (pid, epoch, coordinator_epoch) =
                match (start_offset, producer_id, producer_epoch, coordinator_epoch) {
                    (Some(offset), None, None, None) => {
                        let producers = describe_producers(&mut client, &topic, partition).await?;
                        let p = producers
                            .iter()
                            .find(|p| p.current_txn_start_offset == offset)
                            .with_context(|| {
                                format!("Could not find any open transactions starting at offset {offset} on partition {topic}-{partition}")
                            })?;
                        (p.producer_id.0, p.producer_epoch as i16, p.coordinator_epoch.max(0))
                    }
                    (None, Some(pid), Some(epoch), Some(ce)) => (pid, epoch, ce),
                    _ => bail!("abort needs --start-offset, or all of --producer-id, --producer-epoch and --coordinator-epoch"),
                };
            let r = client
                .send(WriteTxnMarkersRequest::default().with_markers(vec![
                    WritableTxnMarker::default()
                        .with_producer_id(ProducerId(pid))
                        .with_producer_epoch(epoch)
                        .with_transaction_result(false)
                        .with_coordinator_epoch(coordinator_epoch)
                        .with_topics(vec![WritableTxnMarkerTopic::default()
                            .with_name(TopicName(s(&topic)))
                            .with_partition_indexes(vec![partition])]),
                ]))
                .await?;
            let code = r
                .markers
                .first()
                .and_then(|m| m.topics.first())
                .and_then(|t| t.partitions.first())
                .map_or(-1, |p| p.error_code);
            if code != 0 {
                bail!(
                    "Failed to abort the transaction of producer {pid} on {topic}-{partition}: {}",
                    error_text(code, None)
                );
            }
            println!(
                "Aborted the transaction of producer {pid} (epoch {epoch}) on {topic}-{partition}"
            );
        }
    }
    Ok(())
}

async fn coordinator_id(client: &mut Client) -> i32 {
    client
        .send(DescribeClusterRequest::default())
        .await
        .map_or(-1, |c| c.controller_id.0)
}

async fn describe_producers(
    client: &mut Client,
    topic: &str,
    partition: i32,
) -> Result<Vec<ProducerState>> {
    let r = client
        .send(
            DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(vec![partition])]),
        )
        .await?;
    let p = r
        .topics
        .into_iter()
        .next()
        .and_then(|t| t.partitions.into_iter().next())
        .context("the broker answered nothing")?;
    if p.error_code != 0 {
        bail!(
            "Failed to describe producers of {topic}-{partition}: {}",
            error_text(p.error_code, None)
        );
    }
    Ok(p.active_producers)
}

/// The partitions of `topic` (or of every topic), from Metadata.
async fn topic_partitions(
    client: &mut Client,
    topic: Option<&str>,
    partition: Option<i32>,
) -> Result<Vec<(String, i32)>> {
    let r = client
        .send(MetadataRequest::default().with_topics(topic.map(|t| {
            vec![metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(t))))]
        })))
        .await?;
    let mut out = Vec::new();
    for t in r.topics {
        let name = t.name.map(|n| n.0.to_string()).unwrap_or_default();
        if t.error_code != 0 {
            bail!("Topic {name}: {}", error_text(t.error_code, None));
        }
        for p in t.partitions {
            if partition.is_none_or(|want| want == p.partition_index) {
                out.push((name.clone(), p.partition_index));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether the producer's open transaction on the partition is one its coordinator knows as
/// ongoing (so not hanging).
async fn coordinator_knows(
    client: &mut Client,
    topic: &str,
    partition: i32,
    producer: &ProducerState,
) -> Result<bool> {
    let listed = client
        .send(
            ListTransactionsRequest::default().with_producer_id_filters(vec![producer.producer_id]),
        )
        .await?;
    let ids: Vec<TransactionalId> = listed
        .transaction_states
        .into_iter()
        .map(|t| t.transactional_id)
        .collect();
    if ids.is_empty() {
        return Ok(false);
    }
    let described = client
        .send(DescribeTransactionsRequest::default().with_transactional_ids(ids))
        .await?;
    Ok(described.transaction_states.iter().any(|t| {
        t.error_code == 0
            && t.producer_id == producer.producer_id
            && i32::from(t.producer_epoch) == producer.producer_epoch
            && t.transaction_state.as_str() == "Ongoing"
            && t.topics
                .iter()
                .any(|d| d.topic.0.as_str() == topic && d.partitions.contains(&partition))
    }))
}
