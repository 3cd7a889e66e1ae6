//! `strata storage` (kafka-storage.sh): `random-uuid` makes a cluster id, `format` writes
//! `meta.properties` into a node's log dirs and metadata log dir so that it may start as a node
//! of that cluster, `info` shows what a node's directories hold.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use strata_broker::meta_properties;
use strata_broker::BrokerConfig;
use strata_storage::io::RealIo;

#[derive(Debug, Args)]
pub struct StorageArgs {
    #[command(subcommand)]
    pub command: StorageCommand,
}

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Print a new cluster id (a random UUID in Kafka's base64 form).
    #[command(name = "random-uuid")]
    RandomUuid,
    /// Format the log dirs and the metadata log dir of the node the config file describes.
    Format {
        /// The cluster id (from `strata storage random-uuid`).
        #[arg(long = "cluster-id", short = 't')]
        cluster_id: String,
        /// The node's config file (server.properties).
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Leave directories already formatted as they are and format the others.
        #[arg(long = "ignore-formatted", short = 'g')]
        ignore_formatted: bool,
        /// Override a config key: `--override key=value` (repeatable).
        #[arg(long = "override")]
        overrides: Vec<String>,
    },
    /// Show the cluster and node each of the node's directories is formatted for.
    Info {
        #[arg(long, short = 'c')]
        config: PathBuf,
        #[arg(long = "override")]
        overrides: Vec<String>,
    },
}

/// The node's directories: its log dirs, then its metadata log dir when it has one apart.
fn directories(config: &BrokerConfig) -> Vec<PathBuf> {
    let mut dirs = config.log_dirs.clone();
    if let Some(q) = &config.quorum {
        if !dirs.contains(&q.metadata_log_dir) {
            dirs.push(q.metadata_log_dir.clone());
        }
    }
    dirs
}

pub fn run(args: StorageArgs) -> Result<()> {
    match args.command {
        StorageCommand::RandomUuid => {
            println!("{}", meta_properties::random_uuid());
            Ok(())
        }
        StorageCommand::Format {
            cluster_id,
            config,
            ignore_formatted,
            overrides,
        } => {
            let config = BrokerConfig::load(Some(&config), &overrides)?;
            let dirs = directories(&config);
            match meta_properties::format(
                &RealIo,
                &dirs,
                &cluster_id,
                config.broker_id,
                ignore_formatted,
            ) {
                Ok(lines) => {
                    for line in lines {
                        println!("{line}");
                    }
                    Ok(())
                }
                Err(e) => bail!(e),
            }
        }
        StorageCommand::Info { config, overrides } => {
            let config = BrokerConfig::load(Some(&config), &overrides)?;
            for dir in directories(&config) {
                match meta_properties::read(&RealIo, &dir) {
                    Ok(Some(m)) => println!(
                        "{}: cluster.id={} node.id={} directory.id={}",
                        dir.display(),
                        m.cluster_id,
                        m.node_id,
                        m.directory_id.as_deref().unwrap_or("-")
                    ),
                    Ok(None) => println!("{}: not formatted", dir.display()),
                    Err(e) => println!("{}: {e}", dir.display()),
                }
            }
            Ok(())
        }
    }
}
