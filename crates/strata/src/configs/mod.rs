//! `strata configs`: kafka-configs.sh's `--describe` and `--alter` for topics and brokers over
//! the Kafka protocol (DescribeConfigs, IncrementalAlterConfigs).
//!
//! `--describe` shows the configs set on the entity (a topic's overrides, a broker's dynamic
//! configs, or with `--entity-default` / `--broker-defaults` the cluster-wide dynamic
//! defaults), or with `--all` every config with its source (DYNAMIC_TOPIC_CONFIG,
//! DYNAMIC_BROKER_CONFIG, DYNAMIC_DEFAULT_BROKER_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG)
//! and synonyms, in Kafka's format. `--alter` sets (`--add-config k=v,k2=v2`) and removes
//! (`--delete-config k,k2`) a topic's configs or a broker's dynamic ones.
//!
//! For `--entity-type users`, `--alter --add-config 'SCRAM-SHA-512=[iterations=8192,password=…]'`
//! salts and hashes the password here (the broker receives the salted password only) and sends
//! AlterUserScramCredentials; `--delete-config SCRAM-SHA-512` removes the credential;
//! `--describe` lists the mechanisms and iterations of a user's (or every user's) credentials.

use anyhow::{bail, Context, Result};
use clap::Args;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::client::{error_text, Client};

mod quotas;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

#[derive(Debug, Args)]
pub struct ConfigsArgs {
    /// The broker to connect to (host:port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// Show the entity's configs.
    #[arg(long)]
    pub describe: bool,
    /// Change the entity's configs (--add-config, --delete-config).
    #[arg(long)]
    pub alter: bool,
    /// With --describe: every config with its source, not only those set on the entity.
    #[arg(long)]
    pub all: bool,
    /// `topics`, `brokers`, `users`, `clients` or `ips` (users and clients together for a
    /// quota of both).
    #[arg(long)]
    pub entity_type: Vec<String>,
    /// The topic name or broker id.
    #[arg(long)]
    pub entity_name: Vec<String>,
    /// The default entity of the type(s) given after the named ones (quotas).
    #[arg(long)]
    pub entity_default: bool,
    /// Short for --entity-type users --entity-name USER.
    #[arg(long)]
    pub user: Option<String>,
    /// Short for --entity-type clients --entity-name CLIENT_ID.
    #[arg(long)]
    pub client: Option<String>,
    /// Short for --entity-type ips --entity-name IP.
    #[arg(long)]
    pub ip: Option<String>,
    /// Short for --entity-type topics --entity-name TOPIC.
    #[arg(long)]
    pub topic: Option<String>,
    /// Short for --entity-type brokers --entity-name ID.
    #[arg(long)]
    pub broker: Option<String>,
    /// Short for --entity-type brokers --entity-default: the cluster-wide dynamic defaults.
    #[arg(long)]
    pub broker_defaults: bool,
    /// Configs to set: `k1=v1,k2=v2` (a value with commas in square brackets: `k=[a,b]`).
    #[arg(long)]
    pub add_config: Option<String>,
    /// Configs to remove: `k1,k2`.
    #[arg(long)]
    pub delete_config: Option<String>,
    /// Client settings for the connection (security.protocol, sasl.*, ssl.*), as Kafka's tools.
    #[arg(long)]
    pub command_config: Option<std::path::PathBuf>,
}

/// Splits `key=value`, refusing anything else with Kafka's message.
pub fn key_value(text: &str) -> Result<(&str, &str)> {
    text.split_once('=').with_context(|| {
        format!("Invalid config: all configs must be in the format \"key=val\", got {text}")
    })
}

/// Splits kafka-configs.sh's `k1=v1,k2=[a,b]` into `k=v` pairs.
pub fn split_add_config(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0;
    for c in text.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out.into_iter()
        .map(|kv| match kv.split_once("=[") {
            Some((k, v)) => format!("{k}={}", v.trim_end_matches(']')),
            None => kv,
        })
        .collect()
}

/// Sets `set` (`k=v` each) and removes `delete` on a resource (IncrementalAlterConfigs).
pub async fn alter_configs(
    client: &mut Client,
    resource_type: i8,
    name: &str,
    set: &[String],
    delete: &[String],
) -> Result<()> {
    let mut configs = Vec::new();
    for kv in set {
        let (k, v) = key_value(kv)?;
        configs.push(
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_string(v.to_string()))),
        );
    }
    for k in delete {
        configs.push(
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.trim().to_string()))
                .with_config_operation(1)
                .with_value(None),
        );
    }
    let response = client
        .send(
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(StrBytes::from_string(name.to_string()))
                    .with_configs(configs),
            ]),
        )
        .await?;
    for r in response.responses {
        if r.error_code != 0 {
            bail!(
                "Error while executing config command: {}",
                error_text(r.error_code, r.error_message.as_ref())
            );
        }
    }
    Ok(())
}

fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        _ => "UNKNOWN",
    }
}

pub async fn run(args: ConfigsArgs) -> Result<()> {
    if let Some(entity) = quotas::entity(&args)? {
        if args.describe == args.alter {
            bail!("Command must include exactly one action: --describe or --alter");
        }
        let mut client =
            Client::connect_with(&args.bootstrap_server, args.command_config.as_deref()).await?;
        return quotas::run(&mut client, &args, entity).await;
    }
    let (resource_type, kind, name) = match (
        args.topic.as_deref(),
        args.broker.as_deref(),
        args.entity_type.first().map(String::as_str),
        args.entity_name.first().map(String::as_str),
    ) {
        (Some(t), None, None, None) => (TOPIC, "topic", t.to_string()),
        (None, None, None, None) if args.broker_defaults => {
            (BROKER, "brokers in the cluster", String::new())
        }
        (None, None, Some("brokers"), None) if args.entity_default => {
            (BROKER, "brokers in the cluster", String::new())
        }
        (None, Some(b), None, None) => (BROKER, "broker", b.to_string()),
        (None, None, Some("topics"), Some(n)) => (TOPIC, "topic", n.to_string()),
        (None, None, Some("brokers"), Some(n)) => (BROKER, "broker", n.to_string()),
        (None, None, Some(other), _) if other != "topics" && other != "brokers" => {
            bail!("--entity-type must be topics, brokers, users, clients or ips, got {other}")
        }
        _ => bail!(
            "name one entity: --topic T, --broker ID, or --entity-type topics|brokers \
             --entity-name N"
        ),
    };
    if args.describe == args.alter {
        bail!("Command must include exactly one action: --describe or --alter");
    }
    let mut client =
        Client::connect_with(&args.bootstrap_server, args.command_config.as_deref()).await?;
    let defaults = resource_type == BROKER && name.is_empty();
    if args.alter {
        let set = args
            .add_config
            .as_deref()
            .map(split_add_config)
            .unwrap_or_default();
        let delete: Vec<String> = args
            .delete_config
            .as_deref()
            .map(|d| d.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        if set.is_empty() && delete.is_empty() {
            bail!("--alter needs --add-config or --delete-config");
        }
        alter_configs(&mut client, resource_type, &name, &set, &delete).await?;
        if defaults {
            println!("Completed updating default config for {kind}.");
        } else {
            println!("Completed updating config for {kind} {name}.");
        }
        return Ok(());
    }
    let response = client
        .send(
            DescribeConfigsRequest::default()
                .with_include_synonyms(true)
                .with_resources(vec![DescribeConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(StrBytes::from_string(name.clone()))
                    .with_configuration_keys(None)]),
        )
        .await?;
    for r in response.results {
        if r.error_code != 0 {
            bail!(
                "cannot describe {kind} {name}: {}",
                error_text(r.error_code, r.error_message.as_ref())
            );
        }
        // Set on the entity: a topic's override, a broker's own dynamic config, a default.
        let set_here = |c: &kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult| {
            match (resource_type, defaults) {
                (BROKER, true) => c.config_source == 3,
                (BROKER, false) => c.config_source == 2,
                _ => c.config_source == 1,
            }
        };
        if defaults {
            println!("Default configs for {kind} are:");
        } else if args.all {
            println!("All configs for {kind} {name} are:");
        } else {
            println!("Dynamic configs for {kind} {name} are:");
        }
        let mut configs: Vec<_> = r
            .configs
            .iter()
            .filter(|c| args.all || set_here(c))
            .collect();
        configs.sort_by(|a, b| a.name.cmp(&b.name));
        for c in configs {
            let synonyms: Vec<String> = c
                .synonyms
                .iter()
                .map(|s| {
                    format!(
                        "{}:{}={}",
                        source_name(s.source),
                        s.name.as_str(),
                        s.value.as_ref().map(|v| v.as_str()).unwrap_or("null")
                    )
                })
                .collect();
            println!(
                "  {}={} sensitive={} synonyms={{{}}}",
                c.name.as_str(),
                c.value.as_ref().map(|v| v.as_str()).unwrap_or("null"),
                c.is_sensitive,
                synonyms.join(", ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_config_lists_split_outside_brackets() {
        assert_eq!(
            split_add_config("retention.ms=1000,cleanup.policy=[compact,delete]"),
            vec!["retention.ms=1000", "cleanup.policy=compact,delete"]
        );
        assert_eq!(split_add_config("a=1"), vec!["a=1"]);
    }
}
