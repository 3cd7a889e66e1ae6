//! `strata configs` for users, clients and IPs, as kafka-configs.sh manages them: client quotas
//! (`producer_byte_rate`, `consumer_byte_rate`, `request_percentage`,
//! `controller_mutation_rate`; `connection_creation_rate` for IPs) with AlterClientQuotas and
//! DescribeClientQuotas, and for users their SCRAM credentials (AlterUserScramCredentials,
//! DescribeUserScramCredentials): `SCRAM-SHA-512=[iterations=8192,password=…]` is salted and
//! hashed here, so the broker never receives the password.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strata_broker::security::scram::{random_bytes, ScramMechanism, MIN_ITERATIONS};

use super::{key_value, split_add_config, ConfigsArgs};
use crate::client::{error_text, Client};

/// A quota entity: (Kafka's entity type `user` / `client-id` / `ip`, a name or the default).
pub type Entity = Vec<(&'static str, Option<String>)>;

/// The entity of each type the command means: a name, the default, or (describe only) any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Named(String),
    Default,
    Any,
}

/// The user, client or IP entity the arguments name, if they name one.
pub fn entity(args: &ConfigsArgs) -> Result<Option<Vec<(&'static str, Target)>>> {
    let mut types: Vec<String> = args.entity_type.clone();
    let mut names: Vec<Option<String>> = args.entity_name.iter().cloned().map(Some).collect();
    for (kind, name) in [
        ("users", &args.user),
        ("clients", &args.client),
        ("ips", &args.ip),
    ] {
        if let Some(n) = name {
            types.push(kind.to_string());
            names.push(Some(n.clone()));
        }
    }
    if !types
        .iter()
        .any(|t| matches!(t.as_str(), "users" | "clients" | "ips"))
    {
        return Ok(None);
    }
    if names.len() > types.len()
        || (names.len() < types.len() && !args.entity_default && args.alter)
    {
        bail!("each --entity-type needs an --entity-name, or --entity-default for the types after the named ones");
    }
    let mut entity = Vec::new();
    for (i, t) in types.iter().enumerate() {
        let kind = match t.as_str() {
            "users" => "user",
            "clients" => "client-id",
            "ips" => "ip",
            other => bail!("--entity-type {other} does not combine with users, clients or ips"),
        };
        let target = match names.get(i).cloned().flatten() {
            Some(n) => Target::Named(n),
            None if args.entity_default => Target::Default,
            None => Target::Any,
        };
        entity.push((kind, target));
    }
    Ok(Some(entity))
}

fn describe_name(entity: &[(&str, Option<String>)]) -> String {
    entity
        .iter()
        .map(|(kind, name)| {
            let kind = match *kind {
                "user" => "user-principal",
                other => other,
            };
            match name {
                Some(n) => format!("{kind} '{n}'"),
                None => format!("the default {kind}"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

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

fn check(results: impl IntoIterator<Item = (i16, Option<StrBytes>)>) -> Result<()> {
    for (code, message) in results {
        if code != 0 {
            bail!(
                "Error while executing config command: {}",
                error_text(code, message.as_ref())
            );
        }
    }
    Ok(())
}

pub async fn run(
    client: &mut Client,
    args: &ConfigsArgs,
    targets: Vec<(&'static str, Target)>,
) -> Result<()> {
    if !args.alter {
        return describe(client, &targets).await;
    }
    let entity: Entity = targets
        .iter()
        .map(|(kind, t)| match t {
            Target::Named(n) => (*kind, Some(n.clone())),
            _ => (*kind, None),
        })
        .collect();
    // A user's SCRAM credentials need a named user alone.
    let scram_user = match entity.as_slice() {
        [("user", Some(u))] => Some(u.clone()),
        _ => None,
    };
    {
        let mut upsertions = Vec::new();
        let mut quota_ops = Vec::new();
        for kv in args
            .add_config
            .as_deref()
            .map(split_add_config)
            .unwrap_or_default()
        {
            let (k, v) = key_value(&kv)?;
            match (ScramMechanism::from_name(k.trim()), &scram_user) {
                (Some(m), Some(user)) => upsertions.push(upsertion(user, m, v)?),
                (Some(_), None) => bail!("SCRAM credentials are set on one named user"),
                (None, _) => {
                    let value: f64 = v
                        .trim()
                        .parse()
                        .with_context(|| format!("{k} takes a number, got {v}"))?;
                    quota_ops.push(
                        OpData::default()
                            .with_key(StrBytes::from_string(k.trim().to_string()))
                            .with_value(value),
                    );
                }
            }
        }
        let mut deletions = Vec::new();
        for k in args.delete_config.iter().flat_map(|d| d.split(',')) {
            match (ScramMechanism::from_name(k.trim()), &scram_user) {
                (Some(m), Some(user)) => deletions.push(
                    ScramCredentialDeletion::default()
                        .with_name(StrBytes::from_string(user.clone()))
                        .with_mechanism(m.type_id()),
                ),
                (Some(_), None) => bail!("SCRAM credentials are set on one named user"),
                (None, _) => quota_ops.push(
                    OpData::default()
                        .with_key(StrBytes::from_string(k.trim().to_string()))
                        .with_remove(true),
                ),
            }
        }
        if upsertions.is_empty() && deletions.is_empty() && quota_ops.is_empty() {
            bail!("--alter needs --add-config or --delete-config");
        }
        if !quota_ops.is_empty() {
            let response = client
                .send(
                    AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
                        .with_entity(
                            entity
                                .iter()
                                .map(|(kind, name)| {
                                    EntityData::default()
                                        .with_entity_type(StrBytes::from_static_str(kind))
                                        .with_entity_name(name.clone().map(StrBytes::from_string))
                                })
                                .collect(),
                        )
                        .with_ops(quota_ops)]),
                )
                .await?;
            check(
                response
                    .entries
                    .into_iter()
                    .map(|e| (e.error_code, e.error_message)),
            )?;
        }
        // One request per SCRAM change: a broker takes one change per user in a request
        // (Kafka's DUPLICATE_RESOURCE otherwise), and both mechanisms in one --add-config are
        // common.
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
            check(
                response
                    .results
                    .into_iter()
                    .map(|r| (r.error_code, r.error_message)),
            )?;
        }
        let what: Vec<String> = entity
            .iter()
            .map(|(kind, name)| {
                let kind = kind.trim_end_matches("-id");
                match name {
                    Some(n) => format!("{kind} {n}"),
                    None => format!("default {kind}"),
                }
            })
            .collect();
        println!("Completed updating config for {}.", what.join(", "));
        Ok(())
    }
}

async fn describe(client: &mut Client, targets: &[(&'static str, Target)]) -> Result<()> {
    // Quotas: the entity as named (exact, default, or any of the type).
    let components = targets
        .iter()
        .map(|(kind, target)| {
            let c = ComponentData::default().with_entity_type(StrBytes::from_static_str(kind));
            match target {
                Target::Named(n) => c
                    .with_match_type(0)
                    .with_match(Some(StrBytes::from_string(n.clone()))),
                Target::Default => c.with_match_type(1),
                Target::Any => c.with_match_type(2),
            }
        })
        .collect();
    let response = client
        .send(
            DescribeClientQuotasRequest::default()
                .with_components(components)
                .with_strict(true),
        )
        .await?;
    if response.error_code != 0 {
        bail!(
            "Error while describing quotas: {}",
            error_text(response.error_code, response.error_message.as_ref())
        );
    }
    for e in response.entries.unwrap_or_default() {
        let named: Vec<(&str, Option<String>)> = e
            .entity
            .iter()
            .map(|p| {
                let kind = match p.entity_type.as_str() {
                    "user" => "user",
                    "client-id" => "client-id",
                    _ => "ip",
                };
                (kind, p.entity_name.as_ref().map(|n| n.to_string()))
            })
            .collect();
        let values: Vec<String> = e
            .values
            .iter()
            .map(|v| format!("{}={:?}", v.key.as_str(), v.value))
            .collect();
        println!(
            "Quota configs for {} are {}",
            describe_name(&named),
            values.join(", ")
        );
    }
    let user = match targets {
        [("user", Target::Named(u))] => Some(u.clone()),
        [("user", Target::Any)] => None,
        _ => return Ok(()),
    };
    let response = client
        .send(
            DescribeUserScramCredentialsRequest::default()
                .with_users(user.as_ref().map(|n| {
                    vec![UserName::default().with_name(StrBytes::from_string(n.clone()))]
                })),
        )
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
