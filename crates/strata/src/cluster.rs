//! `strata cluster --describe`: the cluster at a glance: its id, the brokers clients are told of
//! (with their racks), the active controller and its epoch, and each voter's lag in the metadata
//! log (DescribeCluster and DescribeQuorum).

use anyhow::{bail, Result};
use clap::Args;
use kafka_protocol::messages::*;

use crate::client::{error_text, Client};

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// A broker to connect to (host:port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// Client settings for the connection (security.protocol, sasl.*, ssl.*), as Kafka's tools.
    #[arg(long)]
    pub command_config: Option<std::path::PathBuf>,
    /// Describe the cluster.
    #[arg(long)]
    pub describe: bool,
}

pub async fn run(args: ClusterArgs) -> Result<()> {
    if !args.describe {
        bail!("give --describe");
    }
    let mut client =
        Client::connect_with(&args.bootstrap_server, args.command_config.as_deref()).await?;
    let cluster: DescribeClusterResponse = client.send(DescribeClusterRequest::default()).await?;
    if cluster.error_code != 0 {
        bail!(
            "DescribeCluster failed: {}",
            error_text(cluster.error_code, cluster.error_message.as_ref())
        );
    }
    // A broker running alone has no quorum: its brokers are all there is to show.
    let quorum = crate::metadata_quorum::describe(&mut client).await.ok();
    println!("ClusterId:  {}", cluster.cluster_id);
    match &quorum {
        Some(q) => println!(
            "Controller: {} (epoch {}, metadata high watermark {})",
            q.leader_id.0, q.leader_epoch, q.high_watermark
        ),
        None => println!("Controller: {} (a broker alone)", cluster.controller_id.0),
    }
    println!();
    println!("{:<8}{:<24}{:<8}Rack", "Broker", "Host", "Port");
    let mut brokers = cluster.brokers.clone();
    brokers.sort_by_key(|b| b.broker_id.0);
    for b in &brokers {
        println!(
            "{:<8}{:<24}{:<8}{}",
            b.broker_id.0,
            b.host.as_str(),
            b.port,
            b.rack.as_ref().map_or("-", |r| r.as_str())
        );
    }
    if let Some(q) = quorum {
        println!();
        println!("{:<8}{:<14}{:<8}Status", "Voter", "LogEndOffset", "Lag");
        for v in &q.current_voters {
            let status = if v.replica_id == q.leader_id {
                "Leader"
            } else if v.log_end_offset < 0 {
                "Unreachable"
            } else {
                "Follower"
            };
            println!(
                "{:<8}{:<14}{:<8}{status}",
                v.replica_id.0,
                v.log_end_offset,
                (q.high_watermark - v.log_end_offset).max(0)
            );
        }
    }
    Ok(())
}
