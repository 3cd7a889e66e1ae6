//! `strata storage` (kafka-storage.sh): `random-uuid` makes a cluster id, `format` writes
//! `meta.properties` into a node's log dirs and metadata log dir so that it may start as a node
//! of that cluster (with `--add-scram`, SCRAM users the cluster starts with), `info` shows what
//! a node's directories hold.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use strata_broker::meta_properties;
use strata_broker::quorum::bootstrap;
use strata_broker::security::scram::{random_bytes, ScramCredential, ScramMechanism};
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
        /// A SCRAM user the cluster starts with, written into the metadata log by the first
        /// active controller: `SCRAM-SHA-256=[name=alice,password=alice-secret]` (also
        /// `iterations=`; 4096 by default). Repeatable; a controller's storage only.
        #[arg(long = "add-scram", short = 'S')]
        add_scram: Vec<String>,
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
            add_scram,
        } => {
            let config = BrokerConfig::load(Some(&config), &overrides)?;
            let dirs = directories(&config);
            let credentials = add_scram
                .iter()
                .map(|s| bootstrap_credential(s))
                .collect::<Result<Vec<_>>>()?;
            if !credentials.is_empty() {
                let Some(quorum) = config.quorum.as_ref().filter(|q| q.roles.controller) else {
                    bail!(
                        "--add-scram is for a controller's storage (process.roles with controller)"
                    );
                };
                bootstrap::write(
                    &RealIo,
                    &quorum.metadata_log_dir,
                    &bootstrap::scram_delta(&credentials),
                )?;
            }
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

/// Kafka's default iterations for `--add-scram`.
const BOOTSTRAP_ITERATIONS: i32 = 4096;

/// `SCRAM-SHA-256=[name=alice,password=alice-secret]` (iterations optional), salted and hashed
/// here: the metadata log holds no password.
fn bootstrap_credential(text: &str) -> Result<(String, ScramMechanism, ScramCredential)> {
    let Some((mechanism, rest)) = text.split_once('=') else {
        bail!("--add-scram takes MECHANISM=[name=...,password=...], got {text}");
    };
    let Some(mechanism) = ScramMechanism::from_name(mechanism.trim()) else {
        bail!("unknown SCRAM mechanism {mechanism} (SCRAM-SHA-256 or SCRAM-SHA-512)");
    };
    let fields = rest.trim().trim_start_matches('[').trim_end_matches(']');
    let (mut name, mut password, mut iterations) = (None, None, BOOTSTRAP_ITERATIONS);
    for field in fields.split(',') {
        let Some((k, v)) = field.split_once('=') else {
            bail!("--add-scram field {field} is not key=value");
        };
        let v = v.trim().trim_matches('"');
        match k.trim() {
            "name" => name = Some(v.to_string()),
            "password" => password = Some(v.to_string()),
            "iterations" => match v.parse() {
                Ok(n) if n >= 4096 => iterations = n,
                _ => bail!("iterations must be a number of at least 4096, got {v}"),
            },
            other => bail!("--add-scram takes name, password and iterations, not {other}"),
        }
    }
    let (Some(name), Some(password)) = (name, password) else {
        bail!("--add-scram needs name= and password=");
    };
    let salt = random_bytes(32);
    let salted = mechanism.salted_password(&password, &salt, iterations);
    Ok((
        name,
        mechanism,
        mechanism.credential(salt, &salted, iterations),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_scram_takes_kafkas_form_and_refuses_the_rest() {
        let (user, mechanism, c) =
            bootstrap_credential("SCRAM-SHA-512=[name=alice,password=alice-secret]").unwrap();
        assert_eq!(
            (user.as_str(), mechanism),
            ("alice", ScramMechanism::Sha512)
        );
        assert_eq!(c.iterations, 4096);
        let (_, _, c) =
            bootstrap_credential("SCRAM-SHA-256=[name=bob,password=x,iterations=8192]").unwrap();
        assert_eq!(c.iterations, 8192);
        for bad in [
            "SCRAM-SHA-1=[name=a,password=b]",
            "SCRAM-SHA-256=[name=a]",
            "SCRAM-SHA-256=[name=a,password=b,iterations=10]",
            "SCRAM-SHA-256=[name=a,password=b,colour=red]",
            "alice",
        ] {
            assert!(bootstrap_credential(bad).is_err(), "{bad}");
        }
    }
}
