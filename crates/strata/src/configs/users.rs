//! `strata configs --entity-type users`: SCRAM credentials (AlterUserScramCredentials,
//! DescribeUserScramCredentials), as kafka-configs.sh manages them.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strata_broker::security::scram::{random_bytes, ScramMechanism, MIN_ITERATIONS};

use super::{key_value, split_add_config, ConfigsArgs};
use crate::client::{error_text, Client};

/// A `SCRAM-SHA-512=iterations=8192,password=secret` setting, salted and hashed.
fn upsertion(
    user: &str,
    mechanism: ScramMechanism,
    value: &str,
) -> Result<ScramCredentialUpsertion> {
    let mut iterations = MIN_ITERATIONS;
    let mut password = None;
    for part in value.split(',') {
        let (k, v) = key_value(part)?;
        match k.trim() {
            "iterations" => {
                iterations = v
                    .trim()
                    .parse()
                    .with_context(|| format!("iterations must be a number, got {v}"))?
            }
            "password" => password = Some(v.to_string()),
            other => bail!("{mechanism} takes iterations and password, not {other}"),
        }
    }
    let password = password.with_context(|| format!("{mechanism} needs password=..."))?;
    let salt = random_bytes(32);
    let salted = mechanism.salted_password(&password, &salt, iterations);
    Ok(ScramCredentialUpsertion::default()
        .with_name(StrBytes::from_string(user.to_string()))
        .with_mechanism(mechanism.type_id())
        .with_iterations(iterations)
        .with_salt(Bytes::from(salt))
        .with_salted_password(Bytes::from(salted)))
}

pub async fn run(client: &mut Client, args: &ConfigsArgs, name: Option<&str>) -> Result<()> {
    if args.alter {
        let Some(user) = name else {
            bail!("--alter --entity-type users needs --entity-name");
        };
        let mut upsertions = Vec::new();
        for kv in args
            .add_config
            .as_deref()
            .map(split_add_config)
            .unwrap_or_default()
        {
            let (k, v) = key_value(&kv)?;
            let Some(mechanism) = ScramMechanism::from_name(k.trim()) else {
                bail!("Invalid config for users: {k} (SCRAM-SHA-256 or SCRAM-SHA-512)");
            };
            upsertions.push(upsertion(user, mechanism, v)?);
        }
        let mut deletions = Vec::new();
        for k in args.delete_config.iter().flat_map(|d| d.split(',')) {
            let Some(mechanism) = ScramMechanism::from_name(k.trim()) else {
                bail!("Invalid config for users: {k} (SCRAM-SHA-256 or SCRAM-SHA-512)");
            };
            deletions.push(
                ScramCredentialDeletion::default()
                    .with_name(StrBytes::from_string(user.to_string()))
                    .with_mechanism(mechanism.type_id()),
            );
        }
        if upsertions.is_empty() && deletions.is_empty() {
            bail!("--alter needs --add-config or --delete-config");
        }
        // One request per change: a broker takes one change per user in a request (Kafka's
        // DUPLICATE_RESOURCE otherwise), and both mechanisms in one --add-config are common.
        let changes = upsertions
            .into_iter()
            .map(|u| AlterUserScramCredentialsRequest::default().with_upsertions(vec![u]))
            .chain(
                deletions
                    .into_iter()
                    .map(|d| AlterUserScramCredentialsRequest::default().with_deletions(vec![d])),
            );
        for request in changes {
            let response = client.send(request).await?;
            for r in response.results {
                if r.error_code != 0 {
                    bail!(
                        "Error while executing config command: {}",
                        error_text(r.error_code, r.error_message.as_ref())
                    );
                }
            }
        }
        println!("Completed updating config for user {user}.");
        return Ok(());
    }
    let response = client
        .send(DescribeUserScramCredentialsRequest::default().with_users(
            name.map(|n| vec![UserName::default().with_name(StrBytes::from_string(n.to_string()))]),
        ))
        .await?;
    if response.error_code != 0 {
        bail!(
            "Error while describing users: {}",
            error_text(response.error_code, response.error_message.as_ref())
        );
    }
    for r in response.results {
        // A named user without credentials has nothing to show, as kafka-configs.sh.
        if r.error_code == kafka_protocol::ResponseError::ResourceNotFound.code() {
            continue;
        }
        if r.error_code != 0 {
            bail!("{}", error_text(r.error_code, r.error_message.as_ref()));
        }
        let described: Vec<String> = r
            .credential_infos
            .iter()
            .map(|c| {
                let mechanism = ScramMechanism::from_type_id(c.mechanism)
                    .map(|m| m.name().to_string())
                    .unwrap_or_else(|| format!("UNKNOWN({})", c.mechanism));
                format!("{mechanism}=iterations={}", c.iterations)
            })
            .collect();
        println!(
            "SCRAM credential configs for user-principal '{}' are {}",
            r.user.as_str(),
            described.join(", ")
        );
    }
    Ok(())
}
