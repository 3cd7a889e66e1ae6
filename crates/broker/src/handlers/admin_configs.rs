//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (and describe for the
//! broker). Topic configs report where their value comes from: a topic override
//! (DYNAMIC_TOPIC_CONFIG), the broker's config file (STATIC_BROKER_CONFIG) or Kafka's default
//! (DEFAULT_CONFIG), with the synonyms that were considered when asked.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::ResponseError;

use super::{str_bytes, Ctx};
use crate::broker::Broker;
use crate::config::dynamic::{dynamic_keys, is_dynamic};
use crate::config::{topic_config_def, validate_topic_config, ConfigType, TOPIC_CONFIGS};
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_DYNAMIC_BROKER: i8 = 2;
pub const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

#[derive(Debug, Clone)]
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub source: i8,
    pub read_only: bool,
    pub kind: ConfigType,
    pub doc: &'static str,
    pub synonyms: Vec<(String, String, i8)>,
}

/// The effective topic configs for `overrides`, optionally only `keys`.
pub fn describe_topic_entries(
    broker: &Broker,
    overrides: &BTreeMap<String, String>,
    keys: Option<&[String]>,
    synonyms: bool,
) -> Vec<ConfigEntry> {
    let mut out = Vec::new();
    let effective = broker.effective_config();
    let dynamic = broker.dynamic_configs();
    for def in TOPIC_CONFIGS {
        if keys.is_some_and(|k| !k.iter().any(|k| k == def.name)) {
            continue;
        }
        let (broker_key, broker_value) = effective.topic_default(def);
        let broker_source = if dynamic.own.contains_key(&broker_key) {
            SOURCE_DYNAMIC_BROKER
        } else if dynamic.default.contains_key(&broker_key) {
            SOURCE_DYNAMIC_DEFAULT_BROKER
        } else if broker.config.values.contains_key(&broker_key) {
            SOURCE_STATIC_BROKER
        } else {
            SOURCE_DEFAULT
        };
        let mut syns = Vec::new();
        if let Some(v) = overrides.get(def.name) {
            syns.push((def.name.to_string(), v.clone(), SOURCE_DYNAMIC_TOPIC));
        }
        for (values, source) in [
            (&dynamic.own, SOURCE_DYNAMIC_BROKER),
            (&dynamic.default, SOURCE_DYNAMIC_DEFAULT_BROKER),
            (&broker.config.values, SOURCE_STATIC_BROKER),
        ] {
            if let Some(v) = values.get(&broker_key) {
                syns.push((broker_key.clone(), v.clone(), source));
            }
        }
        // Last, as Kafka lists it: the built-in default, under the broker's name for it.
        syns.push((
            def.broker_synonym.unwrap_or(def.name).to_string(),
            def.default.to_string(),
            SOURCE_DEFAULT,
        ));
        let (value, source) = match overrides.get(def.name) {
            Some(v) => (v.clone(), SOURCE_DYNAMIC_TOPIC),
            None => (broker_value, broker_source),
        };
        out.push(ConfigEntry {
            name: def.name.to_string(),
            value,
            source,
            read_only: false,
            kind: def.kind,
            doc: def.doc,
            synonyms: if synonyms { syns } else { Vec::new() },
        });
    }
    out
}

/// A broker's configs: the static ones, each dynamic one in force with its synonyms in Kafka's
/// order (the broker's own value, the cluster-wide default, server.properties, the built-in),
/// and the replication throttles (no limit by default). For the default resource (""), the
/// cluster-wide dynamic defaults only.
fn broker_entries(broker: &Broker, name: &str, keys: Option<&[String]>) -> Vec<ConfigEntry> {
    let dynamic = broker.dynamic_configs();
    let wanted = |k: &str| keys.is_none_or(|keys| keys.iter().any(|w| w == k));
    if name.is_empty() {
        return dynamic
            .default
            .iter()
            .filter(|(k, _)| wanted(k))
            .map(|(k, v)| ConfigEntry {
                name: k.clone(),
                value: v.clone(),
                source: SOURCE_DYNAMIC_DEFAULT_BROKER,
                read_only: false,
                kind: ConfigType::String,
                doc: "",
                synonyms: vec![(k.clone(), v.clone(), SOURCE_DYNAMIC_DEFAULT_BROKER)],
            })
            .collect();
    }
    let mut entries = static_broker_entries(broker, keys);
    for entry in &mut entries {
        entry.read_only = !is_dynamic(&entry.name);
    }
    let throttles = [
        crate::replica::throttle::LEADER_RATE,
        crate::replica::throttle::FOLLOWER_RATE,
    ];
    for key in dynamic_keys() {
        let own = dynamic.own.get(key);
        let default = dynamic.default.get(key);
        let is_throttle = throttles.contains(&key);
        if !wanted(key) || (own.is_none() && default.is_none() && !is_throttle) {
            continue;
        }
        let mut synonyms = Vec::new();
        if let Some(v) = own {
            synonyms.push((key.to_string(), v.clone(), SOURCE_DYNAMIC_BROKER));
        }
        if let Some(v) = default {
            synonyms.push((key.to_string(), v.clone(), SOURCE_DYNAMIC_DEFAULT_BROKER));
        }
        match entries.iter().find(|e| e.name == key) {
            Some(e) => synonyms.push((key.to_string(), e.value.clone(), e.source)),
            None if is_throttle => {
                synonyms.push((key.to_string(), i64::MAX.to_string(), SOURCE_DEFAULT))
            }
            None => {}
        }
        let Some((_, value, source)) = synonyms.first().cloned() else {
            continue;
        };
        entries.retain(|e| e.name != key);
        entries.push(ConfigEntry {
            name: key.to_string(),
            value,
            source,
            read_only: false,
            kind: if is_throttle {
                ConfigType::Long
            } else {
                ConfigType::String
            },
            doc: "",
            synonyms,
        });
    }
    entries
}

fn static_broker_entries(broker: &Broker, keys: Option<&[String]>) -> Vec<ConfigEntry> {
    broker
        .config
        .broker_keys()
        .into_iter()
        .filter(|k| keys.is_none_or(|keys| keys.contains(k)))
        .filter_map(|k| {
            let value = broker.config.broker_value(&k)?;
            let source = if broker.config.values.contains_key(&k) {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            Some(ConfigEntry {
                name: k,
                value,
                source,
                read_only: true,
                kind: ConfigType::String,
                doc: "",
                synonyms: Vec::new(),
            })
        })
        .collect()
}

/// DESCRIBE_CONFIGS or ALTER_CONFIGS on the topic (TOPIC_AUTHORIZATION_FAILED) or, for a
/// broker, on the cluster (CLUSTER_AUTHORIZATION_FAILED).
fn refusal(
    broker: &Broker,
    ctx: &Ctx,
    resource_type: i8,
    name: &str,
    op: AclOperation,
) -> Result<(), (ResponseError, String)> {
    let (allowed, code) = if resource_type == RESOURCE_TOPIC {
        (
            ctx.allowed(broker, op, ResourceType::Topic, name),
            ResponseError::TopicAuthorizationFailed,
        )
    } else {
        (
            ctx.allowed(broker, op, ResourceType::Cluster, CLUSTER_NAME),
            ResponseError::ClusterAuthorizationFailed,
        )
    };
    if allowed {
        Ok(())
    } else {
        Err((code, code.to_string()))
    }
}

pub fn describe(
    broker: &Broker,
    ctx: &Ctx,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut response = DescribeConfigsResponse::default();
    for resource in req.resources {
        let name = resource.resource_name.to_string();
        // Null or empty means every config, as in Kafka.
        let keys: Option<Vec<String>> = resource
            .configuration_keys
            .as_ref()
            .filter(|k| !k.is_empty())
            .map(|k| k.iter().map(|s| s.to_string()).collect());
        let mut result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let allowed = refusal(
            broker,
            ctx,
            resource.resource_type,
            &name,
            AclOperation::DescribeConfigs,
        );
        let entries = match resource.resource_type {
            _ if allowed.is_err() => Err(allowed.unwrap_err()),
            RESOURCE_TOPIC => match broker.logs.topic(&name) {
                Some(t) => Ok(describe_topic_entries(
                    broker,
                    &t.overrides(),
                    keys.as_deref(),
                    req.include_synonyms,
                )),
                None => Err((
                    ResponseError::UnknownTopicOrPartition,
                    format!("Topic {name} does not exist."),
                )),
            },
            RESOURCE_BROKER => {
                if name.is_empty() || name == broker.config.broker_id.to_string() {
                    Ok(broker_entries(broker, &name, keys.as_deref()))
                } else {
                    Err((
                        ResponseError::InvalidRequest,
                        format!(
                            "Unexpected broker id, expected {} but received {name}",
                            broker.config.broker_id
                        ),
                    ))
                }
            }
            other => Err((
                ResponseError::InvalidRequest,
                format!("Unsupported resource type {other}"),
            )),
        };
        match entries {
            Ok(entries) => {
                result.configs = entries
                    .into_iter()
                    .map(|e| {
                        // A secret's value is never sent, as Kafka's PASSWORD configs.
                        let sensitive = crate::config::BrokerConfig::is_sensitive(&e.name);
                        let mut r = DescribeConfigsResourceResult::default()
                            .with_value((!sensitive).then(|| str_bytes(e.value)))
                            .with_name(str_bytes(e.name))
                            .with_read_only(e.read_only)
                            .with_config_source(e.source)
                            .with_is_sensitive(sensitive)
                            .with_synonyms(
                                e.synonyms
                                    .into_iter()
                                    .map(|(n, v, s)| {
                                        DescribeConfigsSynonym::default()
                                            .with_name(str_bytes(n))
                                            .with_value(Some(str_bytes(v)))
                                            .with_source(s)
                                    })
                                    .collect(),
                            );
                        if ctx.version >= 3 {
                            r.config_type = e.kind as i8;
                            if req.include_documentation {
                                r.documentation = Some(str_bytes(e.doc));
                            }
                        }
                        r
                    })
                    .collect();
            }
            Err((code, message)) => {
                result.error_code = code.code();
                result.error_message = Some(str_bytes(message));
            }
        }
        response.results.push(result);
    }
    response
}

/// Applies a resource's new configs: a topic's overrides, or a broker's dynamic configs. With
/// `expected` (the configs an incremental change started from), Ok(false) when they changed
/// meanwhile (in a cluster, through another broker) and nothing was applied.
fn apply_overrides(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    overrides: BTreeMap<String, String>,
    expected: Option<BTreeMap<String, String>>,
    validate_only: bool,
) -> Result<bool, (ResponseError, String)> {
    if resource_type != RESOURCE_BROKER {
        return apply_topic_overrides(broker, name, overrides, expected, validate_only);
    }
    if !name.is_empty() && name.parse::<i32>().is_err() {
        return Err((
            ResponseError::InvalidRequest,
            format!("Invalid broker id {name}"),
        ));
    }
    broker.alter_dynamic_configs(name, overrides, expected, validate_only)
}

/// Applies new overrides to a topic after validating every one of them.
fn apply_topic_overrides(
    broker: &Broker,
    name: &str,
    overrides: BTreeMap<String, String>,
    expected: Option<BTreeMap<String, String>>,
    validate_only: bool,
) -> Result<bool, (ResponseError, String)> {
    for (k, v) in &overrides {
        validate_topic_config(k, v).map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
    }
    broker
        .config
        .check_topic_channel(&overrides)
        .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
    // Segments do not move between channels: an existing topic keeps the one it was made with.
    let current = broker
        .logs
        .topic(name)
        .map(|t| t.overrides())
        .unwrap_or_default();
    let effective = broker.effective_config();
    let channel = |o: &BTreeMap<String, String>| effective.topic_value(o, "channel.type");
    if channel(&current).trim() != channel(&overrides).trim() {
        return Err((
            ResponseError::InvalidConfig,
            format!(
                "Invalid value {} for configuration channel.type: the channel of an existing topic cannot change (it is {})",
                channel(&overrides).trim(),
                channel(&current).trim()
            ),
        ));
    }
    if validate_only {
        return Ok(true);
    }
    // In a cluster the change goes through the controller, so every replica's log has it.
    if broker.quorum().is_some() {
        return broker.alter_topic_configs_in_cluster(name, overrides, expected);
    }
    broker
        .logs
        .set_topic_overrides(name, overrides)
        .map(|()| true)
        .map_err(|e| (ResponseError::KafkaStorageError, e.to_string()))
}

fn check_resource(
    broker: &Broker,
    resource_type: i8,
    name: &str,
) -> Result<BTreeMap<String, String>, (ResponseError, String)> {
    match resource_type {
        // In a cluster, the image's (what a conditional change is checked against).
        RESOURCE_TOPIC if broker.quorum().is_some() && broker.logs.topic(name).is_some() => {
            Ok(broker
                .quorum()
                .and_then(|q| q.image().topics.get(name).map(|t| t.configs.clone()))
                .unwrap_or_default())
        }
        RESOURCE_TOPIC => broker.logs.topic(name).map(|t| t.overrides()).ok_or((
            ResponseError::UnknownTopicOrPartition,
            format!("Topic {name} does not exist."),
        )),
        // In a cluster, the dynamic configs the image holds for the broker ("" for the
        // cluster-wide default); alone, its own.
        RESOURCE_BROKER if broker.quorum().is_some() => Ok(broker
            .quorum()
            .and_then(|q| q.image().broker_configs.get(name).cloned())
            .unwrap_or_default()),
        RESOURCE_BROKER if name.is_empty() => Ok(broker.dynamic_configs().default),
        RESOURCE_BROKER if name == broker.config.broker_id.to_string() => {
            Ok(broker.dynamic_configs().own)
        }
        RESOURCE_BROKER => Err((
            ResponseError::InvalidRequest,
            format!(
                "Unexpected broker id, expected {} but received {name}",
                broker.config.broker_id
            ),
        )),
        other => Err((
            ResponseError::InvalidRequest,
            format!("Unsupported resource type {other}"),
        )),
    }
}

/// AlterConfigs: the given set replaces all of the topic's overrides.
pub fn alter(broker: &Broker, ctx: &Ctx, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut response = AlterConfigsResponse::default();
    for resource in req.resources {
        let name = resource.resource_name.to_string();
        let outcome = refusal(
            broker,
            ctx,
            resource.resource_type,
            &name,
            AclOperation::AlterConfigs,
        )
        .and_then(|()| check_resource(broker, resource.resource_type, &name))
        .and_then(|_| {
            let mut overrides = BTreeMap::new();
            for c in &resource.configs {
                let value = c.value.as_ref().ok_or((
                    ResponseError::InvalidConfig,
                    format!("Null value not supported for {}", c.name.as_str()),
                ))?;
                overrides.insert(c.name.to_string(), value.to_string());
            }
            apply_overrides(
                broker,
                resource.resource_type,
                &name,
                overrides,
                None,
                req.validate_only,
            )
            .map(|_| ())
        });
        let mut r = alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        if let Err((code, message)) = outcome {
            r.error_code = code.code();
            r.error_message = Some(str_bytes(message));
        }
        response.responses.push(r);
    }
    response
}

/// IncrementalAlterConfigs: SET (0), DELETE (1), APPEND (2) and SUBTRACT (3) for list configs.
pub fn incremental_alter(
    broker: &Broker,
    ctx: &Ctx,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut response = IncrementalAlterConfigsResponse::default();
    for resource in req.resources {
        let name = resource.resource_name.to_string();
        let outcome = refusal(
            broker,
            ctx,
            resource.resource_type,
            &name,
            AclOperation::AlterConfigs,
        )
        .and_then(|()| {
            // One change at a time here; one made meanwhile through another broker of a
            // cluster makes this one's expected configs stale, and it is computed again.
            let _one_at_a_time = CHANGES.lock().unwrap_or_else(|e| e.into_inner());
            for _ in 0..MAX_ATTEMPTS {
                if incremental_once(broker, &resource, &name, req.validate_only)? {
                    return Ok(());
                }
            }
            Err((
                ResponseError::RequestTimedOut,
                format!("The configs of {name} kept changing concurrently; try again"),
            ))
        });
        let mut r = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        if let Err((code, message)) = outcome {
            r.error_code = code.code();
            r.error_message = Some(str_bytes(message));
        }
        response.responses.push(r);
    }
    response
}

/// Serializes config changes made through this broker.
static CHANGES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How many times an incremental change is computed again after losing a race.
const MAX_ATTEMPTS: usize = 10;

/// One attempt at an incremental change: the operations applied to the resource's configs as
/// they are now, then the result set if they are still those. Ok(false): they were not.
fn incremental_once(
    broker: &Broker,
    resource: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
    name: &str,
    validate_only: bool,
) -> Result<bool, (ResponseError, String)> {
    let expected = check_resource(broker, resource.resource_type, name)?;
    let mut overrides = expected.clone();
    for c in &resource.configs {
        let key = c.name.to_string();
        let list = if resource.resource_type == RESOURCE_BROKER {
            false
        } else {
            let def = topic_config_def(&key).ok_or((
                ResponseError::InvalidConfig,
                format!("Unknown topic config name: {key}"),
            ))?;
            def.kind == ConfigType::List
        };
        let value = c.value.as_ref().map(|v| v.to_string());
        match c.config_operation {
            0 => {
                let v = value.ok_or((
                    ResponseError::InvalidConfig,
                    format!("Null value not supported for {key}"),
                ))?;
                overrides.insert(key, v);
            }
            1 => {
                overrides.remove(&key);
            }
            2 | 3 if !list => {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("Config {key} is not a list; APPEND and SUBTRACT apply to lists only"),
                ));
            }
            2 | 3 => {
                let current = broker.effective_config().topic_value(&overrides, &key);
                let mut items: Vec<String> = current
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                for item in value
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    if c.config_operation == 2 {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                overrides.insert(key, items.join(","));
            }
            op => {
                return Err((
                    ResponseError::InvalidRequest,
                    format!("Unknown config operation {op}"),
                ))
            }
        }
    }
    apply_overrides(
        broker,
        resource.resource_type,
        name,
        overrides,
        Some(expected),
        validate_only,
    )
}
