//! DescribeClientQuotas and AlterClientQuotas: quotas by user, client id, both, or IP, each a
//! name or its type's default, kept in the security store, with Kafka's validation (entity
//! types and combinations, the keys each takes, integer byte rates) and authorization
//! (DESCRIBE_CONFIGS / ALTER_CONFIGS on the cluster).

use std::collections::BTreeMap;

use kafka_protocol::messages::{alter_client_quotas_response, describe_client_quotas_response};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::ResponseError;

use super::{str_bytes, Ctx};
use crate::broker::Broker;
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use crate::security::quota::*;

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

/// Whether an entity is one Kafka accepts: known types, each once, IP alone, an IP's name an
/// address.
fn validate_entity(parts: &[(String, Option<String>)]) -> Result<QuotaEntity, String> {
    let mut entity = BTreeMap::new();
    for (kind, name) in parts {
        if ![USER, CLIENT_ID, IP].contains(&kind.as_str()) {
            return Err(format!("Unhandled client quota entity type: {kind}"));
        }
        if entity.insert(kind.clone(), name.clone()).is_some() {
            return Err(format!("Duplicate {kind} entity component"));
        }
    }
    if entity.is_empty() {
        return Err("Invalid empty client quota entity".into());
    }
    if entity.contains_key(IP) && entity.len() > 1 {
        return Err(
            "Invalid quota entity combination, IP quota should not combine with User or ClientId"
                .into(),
        );
    }
    if let Some(Some(ip)) = entity.get(IP) {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("{ip} is not a valid IP or resolvable host."));
        }
    }
    Ok(QuotaEntity(entity))
}

/// Whether `key` may be set on the entity to `value`.
fn validate_value(entity: &QuotaEntity, key: &str, value: f64) -> Result<(), String> {
    let is_ip = entity.0.contains_key(IP);
    let allowed: &[&str] = if is_ip {
        &[CONNECTION_CREATION_RATE]
    } else {
        &[
            PRODUCER_BYTE_RATE,
            CONSUMER_BYTE_RATE,
            REQUEST_PERCENTAGE,
            CONTROLLER_MUTATION_RATE,
        ]
    };
    if !allowed.contains(&key) {
        return Err(format!("Invalid configuration key {key}"));
    }
    let integral = matches!(
        key,
        PRODUCER_BYTE_RATE | CONSUMER_BYTE_RATE | CONNECTION_CREATION_RATE
    );
    if integral && value.fract() != 0.0 {
        return Err(format!("Configuration {key} must be a Long value"));
    }
    if !(value.is_finite() && value > 0.0) {
        return Err(format!(
            "Configuration {key} must be a positive number, got {value}"
        ));
    }
    Ok(())
}

pub fn describe(
    broker: &Broker,
    ctx: &Ctx,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let refuse = |code: ResponseError, message: String| {
        DescribeClientQuotasResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
            .with_entries(None)
    };
    if !ctx.allowed(
        broker,
        AclOperation::DescribeConfigs,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        return refuse(
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.".into(),
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in &req.components {
        if !seen.insert(c.entity_type.to_string()) {
            return refuse(
                ResponseError::InvalidRequest,
                format!(
                    "Duplicate {} filter component entity type",
                    c.entity_type.as_str()
                ),
            );
        }
        if c.match_type == MATCH_EXACT && c._match.is_none() {
            return refuse(
                ResponseError::InvalidRequest,
                "An exact match needs a name".into(),
            );
        }
        if ![MATCH_EXACT, MATCH_DEFAULT, MATCH_ANY].contains(&c.match_type) {
            return refuse(
                ResponseError::InvalidRequest,
                format!("Unknown match type {}", c.match_type),
            );
        }
    }
    let image = broker.security.image();
    let mut entries: BTreeMap<&QuotaEntity, Vec<(&str, f64)>> = BTreeMap::new();
    for (entity, key, value) in image.quotas.entries() {
        entries.entry(entity).or_default().push((key, value));
    }
    let matches = |entity: &QuotaEntity| {
        let components_match =
            req.components
                .iter()
                .all(|c| match entity.0.get(c.entity_type.as_str()) {
                    None => false,
                    Some(name) => match c.match_type {
                        MATCH_EXACT => name.as_deref() == c._match.as_deref(),
                        MATCH_DEFAULT => name.is_none(),
                        _ => true,
                    },
                });
        components_match && (!req.strict || entity.0.len() == req.components.len())
    };
    let entries = entries
        .into_iter()
        .filter(|(e, _)| matches(e))
        .map(|(entity, values)| {
            describe_client_quotas_response::EntryData::default()
                .with_entity(
                    entity
                        .0
                        .iter()
                        .map(|(kind, name)| {
                            describe_client_quotas_response::EntityData::default()
                                .with_entity_type(str_bytes(kind))
                                .with_entity_name(name.as_deref().map(str_bytes))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .into_iter()
                        .map(|(k, v)| {
                            describe_client_quotas_response::ValueData::default()
                                .with_key(str_bytes(k))
                                .with_value(v)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

pub fn alter(
    broker: &Broker,
    ctx: &Ctx,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let allowed = ctx.allowed(
        broker,
        AclOperation::AlterConfigs,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    // Each entry: its validated entity and operations, or its error.
    type Ops = Vec<(String, Option<f64>)>;
    let checked: Vec<Result<(QuotaEntity, Ops), (ResponseError, String)>> = req
        .entries
        .iter()
        .map(|e| {
            if !allowed {
                return Err((
                    ResponseError::ClusterAuthorizationFailed,
                    "Cluster authorization failed.".into(),
                ));
            }
            let parts: Vec<(String, Option<String>)> = e
                .entity
                .iter()
                .map(|p| {
                    (
                        p.entity_type.to_string(),
                        p.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect();
            let entity = validate_entity(&parts).map_err(|m| (ResponseError::InvalidRequest, m))?;
            let mut ops = Vec::new();
            let mut keys = std::collections::BTreeSet::new();
            for op in &e.ops {
                let key = op.key.to_string();
                if !keys.insert(key.clone()) {
                    return Err((
                        ResponseError::InvalidRequest,
                        format!("Duplicate quota key {key}"),
                    ));
                }
                if op.remove {
                    ops.push((key, None));
                } else {
                    validate_value(&entity, &key, op.value)
                        .map_err(|m| (ResponseError::InvalidRequest, m))?;
                    ops.push((key, Some(op.value)));
                }
            }
            Ok((entity, ops))
        })
        .collect();
    let mut storage_error = None;
    if !req.validate_only {
        let written = broker.security.update(|image| {
            let mut changed = false;
            for (entity, ops) in checked.iter().flatten() {
                for (key, value) in ops {
                    changed |= image.quotas.set(entity.clone(), key, *value);
                }
            }
            ((), changed)
        });
        if let Err(e) = written {
            tracing::error!(error = %e, "writing client quotas failed");
            storage_error = Some((
                ResponseError::KafkaStorageError,
                "writing the quota store failed".to_string(),
            ));
        }
    }
    let entries = req
        .entries
        .iter()
        .zip(checked)
        .map(|(e, outcome)| {
            let mut entry = alter_client_quotas_response::EntryData::default().with_entity(
                e.entity
                    .iter()
                    .map(|p| {
                        alter_client_quotas_response::EntityData::default()
                            .with_entity_type(p.entity_type.clone())
                            .with_entity_name(p.entity_name.clone())
                    })
                    .collect(),
            );
            let error = match outcome {
                Err(e) => Some(e),
                Ok(_) => storage_error.clone(),
            };
            if let Some((code, message)) = error {
                entry.error_code = code.code();
                entry.error_message = Some(str_bytes(message));
            }
            entry
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}
