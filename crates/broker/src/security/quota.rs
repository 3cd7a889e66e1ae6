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

/// What a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// `producer_byte_rate`: Produce request bytes per second.
    Produce,
    /// `consumer_byte_rate`: Fetch response bytes per second.
    Fetch,
    /// `request_percentage`: time handling the client's requests, in percent of one thread.
    Request,
}

impl QuotaKind {
    pub fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => CONSUMER_BYTE_RATE,
            QuotaKind::Request => REQUEST_PERCENTAGE,
        }
    }
}

/// `quota.window.num` samples of `quota.window.size.seconds` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaWindow {
    pub samples: usize,
    pub sample_ms: u64,
}

impl Default for QuotaWindow {
    fn default() -> Self {
        QuotaWindow {
            samples: 11,
            sample_ms: 1000,
        }
    }
}

/// A windowed rate, as Kafka's `Rate` over `SampledStat`: the values of the last `samples`
/// windows, divided by the time they span (at least `samples - 1` windows, so a client's first
/// second is not measured alone).
#[derive(Debug, Clone)]
pub(crate) struct Sensor {
    /// (window start in ms, sum of the values recorded in it), oldest first.
    windows: std::collections::VecDeque<(u64, f64)>,
    last_used_ms: u64,
}

impl Sensor {
    pub(crate) fn new() -> Sensor {
        Sensor {
            windows: Default::default(),
            last_used_ms: 0,
        }
    }

    pub(crate) fn record(&mut self, w: QuotaWindow, value: f64, now_ms: u64) {
        let start = now_ms - now_ms % w.sample_ms;
        match self.windows.back_mut() {
            Some((s, sum)) if *s == start => *sum += value,
            _ => self.windows.push_back((start, value)),
        }
        self.purge(w, now_ms);
        self.last_used_ms = now_ms;
    }

    fn purge(&mut self, w: QuotaWindow, now_ms: u64) {
        let span = w.samples as u64 * w.sample_ms;
        while self
            .windows
            .front()
            .is_some_and(|(s, _)| s + span <= now_ms)
        {
            self.windows.pop_front();
        }
    }

    /// (rate per second, the window in ms it was measured over).
    pub(crate) fn rate(&self, w: QuotaWindow, now_ms: u64) -> (f64, u64) {
        let total: f64 = self.windows.iter().map(|(_, v)| v).sum();
        let oldest = self.windows.front().map_or(now_ms, |(s, _)| *s);
        let window = (now_ms - oldest)
            .max((w.samples as u64 - 1) * w.sample_ms)
            .max(1);
        (total * 1000.0 / window as f64, window)
    }
}

/// Which sensor a client's usage goes to: the dimensions of the quota entity that applies,
/// with the client's values (a default user quota gives each user a sensor of its own).
type SensorKey = (QuotaKind, Option<String>, Option<String>);

/// Client quotas: measures each client's produce and fetch bytes and request time, and says
/// how long to throttle a client that went over its quota (Kafka's ClientQuotaManager). With no
/// quota configured, nothing is measured.
pub struct QuotaManager {
    window: QuotaWindow,
    sensors: std::sync::Mutex<std::collections::HashMap<SensorKey, Sensor>>,
    /// `controller_mutation_rate` token buckets: (tokens, last refill in ms) per sensor key.
    buckets: std::sync::Mutex<std::collections::HashMap<BucketKey, (f64, u64)>>,
}

/// A mutation bucket's owner: the (user, client id) dimensions of its quota entity.
type BucketKey = (Option<String>, Option<String>);

/// A client's `controller_mutation_rate` for one request (KIP-599): partitions created or
/// deleted take tokens from a bucket refilled at the rate, holding at most the rate times the
/// quota window.
pub struct MutationQuota<'a> {
    manager: &'a QuotaManager,
    rate: f64,
    key: BucketKey,
    /// Refuse mutations once the bucket is empty (CreateTopics v6+, DeleteTopics v5+,
    /// CreatePartitions v3+); older versions are only throttled.
    strict: bool,
}

impl MutationQuota<'_> {
    fn refill(&self, now_ms: u64) -> f64 {
        let burst = self.rate
            * (self.manager.window.samples as u64 * self.manager.window.sample_ms) as f64
            / 1000.0;
        let mut buckets = self
            .manager
            .buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = buckets.entry(self.key.clone()).or_insert((burst, now_ms));
        *tokens = (*tokens + (now_ms.saturating_sub(*last)) as f64 * self.rate / 1000.0).min(burst);
        *last = now_ms;
        *tokens
    }

    /// Takes `partitions` mutations; false (nothing taken) when strict and the bucket is empty.
    pub fn take(&self, partitions: f64, now_ms: u64) -> bool {
        if self.strict && self.refill(now_ms) < 0.0 {
            return false;
        }
        let mut buckets = self
            .manager
            .buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((tokens, _)) = buckets.get_mut(&self.key) {
            *tokens -= partitions;
        }
        true
    }

    /// How long until the bucket is no longer in debt, in ms.
    pub fn throttle_ms(&self, now_ms: u64) -> u64 {
        let tokens = self.refill(now_ms);
        if tokens >= 0.0 {
            0
        } else {
            (-tokens / self.rate * 1000.0).ceil() as u64
        }
    }
}

impl std::fmt::Debug for QuotaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaManager")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// The user name of a principal (`User:alice` -> `alice`), as quota entities name users.
pub fn quota_user(principal: &str) -> &str {
    principal.strip_prefix("User:").unwrap_or(principal)
}

impl QuotaImage {
    /// The value of `key` that applies to (user, client id), and the sensor dimensions of the
    /// entity it comes from, in Kafka's order of precedence: user and client id, user and
    /// default client id, user, default user and client id, default user and default client id,
    /// default user, client id, default client id.
    pub fn resolve(&self, key: &str, user: &str, client_id: &str) -> Option<(f64, bool, bool)> {
        let entity = |u: Option<Option<&str>>, c: Option<Option<&str>>| {
            let mut parts = BTreeMap::new();
            if let Some(u) = u {
                parts.insert(USER.to_string(), u.map(str::to_string));
            }
            if let Some(c) = c {
                parts.insert(CLIENT_ID.to_string(), c.map(str::to_string));
            }
            QuotaEntity(parts)
        };
        let order = [
            (Some(Some(user)), Some(Some(client_id))),
            (Some(Some(user)), Some(None)),
            (Some(Some(user)), None),
            (Some(None), Some(Some(client_id))),
            (Some(None), Some(None)),
            (Some(None), None),
            (None, Some(Some(client_id))),
            (None, Some(None)),
        ];
        order.into_iter().find_map(|(u, c)| {
            self.values
                .get(&entity(u, c))
                .and_then(|vs| vs.get(key))
                .map(|v| (*v, u.is_some(), c.is_some()))
        })
    }
}

/// The quota that applies to a client and the sensor its usage goes to; None without one.
fn sensor_of(
    image: &QuotaImage,
    kind: QuotaKind,
    principal: &str,
    client_id: &str,
) -> Option<(f64, SensorKey)> {
    if image.is_empty() {
        return None;
    }
    let user = quota_user(principal);
    let (bound, by_user, by_client) = image.resolve(kind.key(), user, client_id)?;
    Some((
        bound,
        (
            kind,
            by_user.then(|| user.to_string()),
            by_client.then(|| client_id.to_string()),
        ),
    ))
}

impl QuotaManager {
    pub fn new(window: QuotaWindow) -> QuotaManager {
        QuotaManager {
            window,
            sensors: Default::default(),
            buckets: Default::default(),
        }
    }

    /// The client's `controller_mutation_rate` quota, if one applies.
    pub fn mutations(
        &self,
        image: &QuotaImage,
        principal: &str,
        client_id: &str,
        strict: bool,
    ) -> Option<MutationQuota<'_>> {
        if image.is_empty() {
            return None;
        }
        let user = quota_user(principal);
        let (rate, by_user, by_client) =
            image.resolve(CONTROLLER_MUTATION_RATE, user, client_id)?;
        Some(MutationQuota {
            manager: self,
            rate: rate.max(f64::MIN_POSITIVE),
            key: (
                by_user.then(|| user.to_string()),
                by_client.then(|| client_id.to_string()),
            ),
            strict,
        })
    }

    /// Records `value` for the client (negative: taking back what a request recorded but was
    /// not given); the time in ms to throttle it for, 0 when within its quota (or none
    /// applies).
    pub fn record(
        &self,
        image: &QuotaImage,
        kind: QuotaKind,
        principal: &str,
        client_id: &str,
        value: f64,
        now_ms: u64,
    ) -> u64 {
        let Some((bound, key)) = sensor_of(image, kind, principal, client_id) else {
            return 0;
        };
        let mut sensors = self.sensors.lock().unwrap_or_else(|e| e.into_inner());
        let sensor = sensors.entry(key).or_insert_with(Sensor::new);
        sensor.record(self.window, value, now_ms);
        let (rate, window_ms) = sensor.rate(self.window, now_ms);
        // Sensors of clients gone for an hour are dropped (Kafka expires them likewise).
        if sensors.len() > 1024 {
            sensors.retain(|_, s| s.last_used_ms + 3_600_000 > now_ms);
        }
        if bound <= 0.0 {
            return if value > 0.0 {
                (self.window.samples as u64) * self.window.sample_ms
            } else {
                0
            };
        }
        if rate <= bound {
            return 0;
        }
        // O * W / (W + X) = T  =>  X = (O - T) / T * W
        ((rate - bound) / bound * window_ms as f64).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(parts: &[(&str, Option<&str>)]) -> QuotaEntity {
        QuotaEntity(
            parts
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        )
    }

    #[test]
    fn the_most_specific_entity_applies() {
        let mut image = QuotaImage::default();
        image.set(entity(&[(CLIENT_ID, None)]), PRODUCER_BYTE_RATE, Some(1.0));
        image.set(entity(&[(USER, None)]), PRODUCER_BYTE_RATE, Some(2.0));
        image.set(
            entity(&[(USER, Some("alice"))]),
            PRODUCER_BYTE_RATE,
            Some(3.0),
        );
        image.set(
            entity(&[(USER, Some("alice")), (CLIENT_ID, Some("app"))]),
            PRODUCER_BYTE_RATE,
            Some(4.0),
        );
        let r = |u, c| image.resolve(PRODUCER_BYTE_RATE, u, c);
        assert_eq!(r("alice", "app"), Some((4.0, true, true)));
        assert_eq!(r("alice", "other"), Some((3.0, true, false)));
        assert_eq!(r("bob", "app"), Some((2.0, true, false)));
        assert_eq!(image.resolve(CONSUMER_BYTE_RATE, "bob", "app"), None);
        image.set(entity(&[(USER, None)]), PRODUCER_BYTE_RATE, None);
        assert_eq!(
            image.resolve(PRODUCER_BYTE_RATE, "bob", "app"),
            Some((1.0, false, true))
        );
    }

    #[test]
    fn throttle_time_brings_the_rate_back_to_the_quota() {
        let mut image = QuotaImage::default();
        image.set(entity(&[(USER, None)]), PRODUCER_BYTE_RATE, Some(1000.0));
        let window = QuotaWindow {
            samples: 11,
            sample_ms: 1000,
        };
        let quotas = QuotaManager::new(window);
        let now = 1_000_000;
        // 10 s of allowance at first (the rate is measured over at least 10 windows).
        assert_eq!(
            quotas.record(&image, QuotaKind::Produce, "User:a", "c", 9000.0, now),
            0
        );
        // 20,000 bytes over 10 s is 2,000/s, twice the quota: 10 s more restores it.
        let t = quotas.record(&image, QuotaKind::Produce, "User:a", "c", 11000.0, now);
        assert_eq!(t, 10_000);
        // Another user has a sensor of its own; an unknown quota kind nothing.
        assert_eq!(
            quotas.record(&image, QuotaKind::Produce, "User:b", "c", 9000.0, now),
            0
        );
        assert_eq!(
            quotas.record(&image, QuotaKind::Fetch, "User:a", "c", 1e9, now),
            0
        );
        // A value taken back (a throttled fetch answered empty) is recorded negative.
        quotas.record(&image, QuotaKind::Produce, "User:a", "c", -11000.0, now);
        assert_eq!(
            quotas.record(&image, QuotaKind::Produce, "User:a", "c", 0.0, now),
            0
        );
    }

    #[test]
    fn mutations_take_tokens_and_strict_requests_stop_at_an_empty_bucket() {
        let mut image = QuotaImage::default();
        image.set(
            entity(&[(USER, Some("a"))]),
            CONTROLLER_MUTATION_RATE,
            Some(2.0),
        );
        let quotas = QuotaManager::new(QuotaWindow {
            samples: 11,
            sample_ms: 1000,
        });
        assert!(quotas.mutations(&image, "User:b", "c", true).is_none());
        let q = quotas.mutations(&image, "User:a", "c", true).unwrap();
        let now = 5_000;
        // A burst of 22 (2/s over 11 s): 30 partitions go, leaving a debt of 8 (4 s).
        assert!(q.take(30.0, now));
        assert_eq!(q.throttle_ms(now), 4000);
        assert!(!q.take(1.0, now + 1000), "a strict request in debt");
        let lenient = quotas.mutations(&image, "User:a", "c", false).unwrap();
        assert!(lenient.take(1.0, now + 1000));
        assert!(q.take(1.0, now + 5000));
    }
}
