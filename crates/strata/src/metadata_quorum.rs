//! `strata metadata-quorum` (kafka-metadata-quorum.sh): `describe --status` (leader, epoch,
//! high watermark, lag, voters) and `describe --replication` (each replica's log end offset,
//! lag and timestamps), from DescribeQuorum.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::ReplicaState;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::client::{error_text, Client};

#[derive(Debug, Args)]
pub struct MetadataQuorumArgs {
    /// A broker to connect to (host:port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// Client settings for the connection (security.protocol, sasl.*, ssl.*), as Kafka's tools.
    #[arg(long)]
    pub command_config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: QuorumCommand,
}

#[derive(Debug, Subcommand)]
pub enum QuorumCommand {
    /// Describe the metadata quorum.
    Describe {
        /// The quorum's leader, epoch, high watermark, lag and voters.
        #[arg(long)]
        status: bool,
        /// Each replica's progress.
        #[arg(long)]
        replication: bool,
    },
}

/// The quorum's partition of the response, checked.
pub async fn describe(client: &mut Client) -> Result<describe_quorum_response::PartitionData> {
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let response = client.send(request).await?;
    if response.error_code != 0 {
        bail!(
            "DescribeQuorum failed: {}",
            error_text(response.error_code, response.error_message.as_ref())
        );
    }
    let Some(partition) = response
        .topics
        .into_iter()
        .flat_map(|t| t.partitions)
        .next()
    else {
        bail!("DescribeQuorum answered no partition");
    };
    if partition.error_code != 0 {
        bail!(
            "DescribeQuorum failed: {}",
            error_text(partition.error_code, partition.error_message.as_ref())
        );
    }
    Ok(partition)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub async fn run(args: MetadataQuorumArgs) -> Result<()> {
    let mut client =
        Client::connect_with(&args.bootstrap_server, args.command_config.as_deref()).await?;
    let QuorumCommand::Describe {
        status,
        replication,
    } = args.command;
    if status == replication {
        bail!("give one of --status and --replication");
    }
    let p = describe(&mut client).await?;
    let hw = p.high_watermark;
    let leader = p.leader_id.0;
    if status {
        let metadata: MetadataResponse = client.send(MetadataRequest::default()).await?;
        let followers = p.current_voters.iter().filter(|v| v.replica_id.0 != leader);
        let max_lag = followers
            .clone()
            .map(|v| (hw - v.log_end_offset).max(0))
            .max()
            .unwrap_or(0);
        let now = now_ms();
        let max_lag_ms = followers
            .map(|v| match v.last_caught_up_timestamp {
                t if t < 0 => -1,
                t => (now - t).max(0),
            })
            .max()
            .unwrap_or(0);
        let ids = |r: &[ReplicaState]| {
            r.iter()
                .map(|v| v.replica_id.0.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        println!(
            "ClusterId:              {}",
            metadata
                .cluster_id
                .map(|c| c.to_string())
                .unwrap_or_default()
        );
        println!("LeaderId:               {leader}");
        println!("LeaderEpoch:            {}", p.leader_epoch);
        println!("HighWatermark:          {hw}");
        println!("MaxFollowerLag:         {max_lag}");
        println!("MaxFollowerLagTimeMs:   {max_lag_ms}");
        println!("CurrentVoters:          [{}]", ids(&p.current_voters));
        println!("CurrentObservers:       [{}]", ids(&p.observers));
    } else {
        println!(
            "{:<8}{:<14}{:<8}{:<20}{:<23}Status",
            "NodeId", "LogEndOffset", "Lag", "LastFetchTimestamp", "LastCaughtUpTimestamp"
        );
        let rows = p
            .current_voters
            .iter()
            .map(|v| {
                (
                    v,
                    if v.replica_id.0 == leader {
                        "Leader"
                    } else {
                        "Follower"
                    },
                )
            })
            .chain(p.observers.iter().map(|o| (o, "Observer")));
        for (r, role) in rows {
            println!(
                "{:<8}{:<14}{:<8}{:<20}{:<23}{role}",
                r.replica_id.0,
                r.log_end_offset,
                (hw - r.log_end_offset).max(0),
                r.last_fetch_timestamp,
                r.last_caught_up_timestamp
            );
        }
    }
    Ok(())
}
