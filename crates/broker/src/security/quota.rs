//! Client quotas as Kafka stores them: an entity (user, client id, or both; a name or the
//! entity type's default) and its values (`producer_byte_rate`, `consumer_byte_rate`,
//! `request_percentage`, `controller_mutation_rate`).

use std::collections::BTreeMap;

use super::store::{Decoder, Encoder};

/// Kafka's quota entity types.
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// The quota keys Strata enforces (Kafka's names).
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// An entity: its components by type, each a name or (None) the type's default.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotaEntity(pub BTreeMap<String, Option<String>>);

impl QuotaEntity {
    pub(super) fn encode(&self, e: &mut Encoder) {
        e.i32(self.0.len() as i32);
        for (kind, name) in &self.0 {
            e.str(kind);
            e.opt_str(name.as_deref());
        }
    }

    pub(super) fn decode(d: &mut Decoder) -> Option<QuotaEntity> {
        let n = d.i32()?;
        let mut parts = BTreeMap::new();
        for _ in 0..n.clamp(0, 16) {
            let kind = d.str()?;
            parts.insert(kind, d.opt_str()?);
        }
        (0..=16).contains(&n).then_some(QuotaEntity(parts))
    }
}

/// Every entity's quota values.
#[derive(Debug, Clone, Default)]
pub struct QuotaImage {
    values: BTreeMap<QuotaEntity, BTreeMap<String, f64>>,
}

impl QuotaImage {
    /// Sets (Some) or removes (None) one value; whether anything changed.
    pub fn set(&mut self, entity: QuotaEntity, key: &str, value: Option<f64>) -> bool {
        match value {
            Some(v) => {
                let values = self.values.entry(entity).or_default();
                values.insert(key.to_string(), v) != Some(v)
            }
            None => {
                let Some(values) = self.values.get_mut(&entity) else {
                    return false;
                };
                let removed = values.remove(key).is_some();
                if values.is_empty() {
                    self.values.remove(&entity);
                }
                removed
            }
        }
    }

    /// (entity, key, value) for every value, in order.
    pub fn entries(&self) -> impl Iterator<Item = (&QuotaEntity, &str, f64)> {
        self.values
            .iter()
            .flat_map(|(e, vs)| vs.iter().map(move |(k, v)| (e, k.as_str(), *v)))
    }

    /// An entity's values.
    pub fn get(&self, entity: &QuotaEntity) -> Option<&BTreeMap<String, f64>> {
        self.values.get(entity)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}
