//! Prometheus metrics (`metrics.prometheus.listener` turns the endpoint on): what Kafka's and
//! Redpanda's operators watch, in Prometheus' naming and units.
//!
//! Two kinds of sources. Events on the request path (requests, their latency and errors,
//! connections, authentications, throttles, waiting produces and fetches) are recorded where
//! they happen, through handles registered once at start, so that each costs an atomic add;
//! with the endpoint off nothing is registered and each is a load of an empty cell. State
//! (tiers, partitions, leaders, lag, topic traffic kept by the storage engine) is copied into
//! the registry once a second by [`publish`].

mod describe;
mod publish;

use std::sync::OnceLock;
use std::time::Instant;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;
use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use crate::config::BrokerConfig;
use crate::security::quota::{CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE};

pub use publish::{publish, publish_once};

/// Latency buckets of every histogram, in seconds: 100 µs to 10 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The highest API key there is a handle for.
const MAX_API_KEY: i16 = 96;

/// One API's handles.
struct ApiMetrics {
    requests: Counter,
    duration: Histogram,
}

/// Handles registered at install: the request path records through them.
struct Handles {
    /// By API key.
    apis: Vec<Option<ApiMetrics>>,
    produce_waiting: Gauge,
    fetch_waiting: Gauge,
}

static HANDLES: OnceLock<Handles> = OnceLock::new();

/// Serves `/metrics` on `addr` (from within a tokio runtime) and registers the handles, and
/// the counters whose labels are known now at zero (so that a rate is there from the start).
pub fn install(addr: std::net::SocketAddr, config: &BrokerConfig) -> Result<(), String> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(BUCKETS)
        .map_err(|e| e.to_string())?
        .install()
        .map_err(|e| e.to_string())?;
    describe::describe();
    let apis = (0..=MAX_API_KEY)
        .map(|k| {
            let key = ApiKey::try_from(k).ok()?;
            crate::handlers::supported_versions(key)?;
            let api = api_name(key);
            Some(ApiMetrics {
                requests: counter!("strata_requests_total", "api" => api.clone()),
                duration: histogram!("strata_request_duration_seconds", "api" => api),
            })
        })
        .collect();
    for listener in &config.listeners {
        let name = listener.name.clone();
        counter!("strata_connections_created_total", "listener" => name.clone()).absolute(0);
        counter!("strata_connections_closed_total", "listener" => name.clone()).absolute(0);
        gauge!("strata_connections", "listener" => name.clone()).increment(0.0);
        counter!("strata_invalid_requests_total", "listener" => name.clone()).absolute(0);
        let mut mechanisms: Vec<String> = listener
            .sasl
            .as_ref()
            .map(|s| s.mechanisms.clone())
            .unwrap_or_default();
        if listener.tls.is_some() {
            mechanisms.push("SSL".to_string());
        }
        for mechanism in mechanisms {
            for name_of in [
                "strata_successful_authentications_total",
                "strata_failed_authentications_total",
            ] {
                counter!(name_of, "listener" => name.clone(), "mechanism" => mechanism.clone())
                    .absolute(0);
            }
        }
    }
    for quota in [PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE] {
        let _ = histogram!("strata_throttle_time_seconds", "quota" => quota);
    }
    for result in ["commit", "abort"] {
        counter!("strata_transactions_ended_total", "result" => result).absolute(0);
    }
    // Storage records flushes into it by name; registered to show before the first one.
    let _ = histogram!("strata_log_flush_duration_seconds");
    let _ = HANDLES.set(Handles {
        apis,
        produce_waiting: gauge!("strata_purgatory_size", "operation" => "Produce"),
        fetch_waiting: gauge!("strata_purgatory_size", "operation" => "Fetch"),
    });
    Ok(())
}

/// Whether the endpoint is on (events are recorded).
pub fn enabled() -> bool {
    HANDLES.get().is_some()
}

/// Kafka's name of an API, as its request metrics label it (`Produce`, `ApiVersions`).
fn api_name(key: ApiKey) -> String {
    format!("{key:?}")
}

/// Kafka's name of an error code (`NOT_LEADER_OR_FOLLOWER`).
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_{c}"),
        Some(e) => {
            let camel = format!("{e:?}");
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
    }
}

/// A request being served: its API and when its frame was read.
#[derive(Debug, Clone, Copy)]
pub struct RequestTiming {
    api: i16,
    started: Instant,
}

impl RequestTiming {
    /// Starts timing the request in `frame` (None with the endpoint off).
    pub fn start(frame: &[u8]) -> Option<RequestTiming> {
        HANDLES.get()?;
        let api = i16::from_be_bytes([*frame.first()?, *frame.get(1)?]);
        Some(RequestTiming {
            api,
            started: Instant::now(),
        })
    }

    /// The response went out (or none was due, acks=0): counts the request and its time.
    pub fn finish(self) {
        let Some(h) = HANDLES.get() else { return };
        let Some(Some(m)) = usize::try_from(self.api).ok().and_then(|i| h.apis.get(i)) else {
            return;
        };
        m.requests.increment(1);
        m.duration.record(self.started.elapsed().as_secs_f64());
    }
}

/// An error code in a response to `api` (0 is not counted).
pub fn request_error(api: ApiKey, code: i16) {
    if code != 0 && enabled() {
        counter!("strata_request_errors_total", "api" => api_name(api), "error" => error_name(code))
            .increment(1);
    }
}

/// A connection closed because its request could not be served (malformed, unknown version,
/// too large).
pub fn invalid_request(listener: &str) {
    if enabled() {
        counter!("strata_invalid_requests_total", "listener" => listener.to_string()).increment(1);
    }
}

/// A connection accepted on `listener`; the guard counts its close.
pub fn connection_opened(listener: &str) -> Option<ConnectionGuard> {
    if !enabled() {
        return None;
    }
    let listener = listener.to_string();
    counter!("strata_connections_created_total", "listener" => listener.clone()).increment(1);
    gauge!("strata_connections", "listener" => listener.clone()).increment(1.0);
    Some(ConnectionGuard { listener })
}

/// Counts a connection's close when dropped.
pub struct ConnectionGuard {
    listener: String,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let listener = std::mem::take(&mut self.listener);
        counter!("strata_connections_closed_total", "listener" => listener.clone()).increment(1);
        gauge!("strata_connections", "listener" => listener).decrement(1.0);
    }
}

/// An authentication on `listener` with `mechanism` (a SASL mechanism, or `SSL` for a TLS
/// handshake or client certificate) succeeded or failed.
pub fn authentication(listener: &str, mechanism: &str, succeeded: bool) {
    if !enabled() {
        return;
    }
    let name = if succeeded {
        "strata_successful_authentications_total"
    } else {
        "strata_failed_authentications_total"
    };
    counter!(name, "listener" => listener.to_string(), "mechanism" => mechanism.to_string())
        .increment(1);
}

/// A client's request was throttled by its `quota` (`producer_byte_rate`, ...) for `ms`.
pub fn throttled(quota: &'static str, ms: u64) {
    if ms > 0 && enabled() {
        histogram!("strata_throttle_time_seconds", "quota" => quota).record(ms as f64 / 1000.0);
    }
}

/// A transaction ended (`commit` or `abort`).
pub fn transaction_ended(result: &'static str) {
    if enabled() {
        counter!("strata_transactions_ended_total", "result" => result).increment(1);
    }
}

/// What waits in a purgatory: an acks=all produce for its ISR, a fetch for its bytes.
#[derive(Debug, Clone, Copy)]
pub enum Waiting {
    Produce,
    Fetch,
}

/// Counts a wait while it lasts.
pub struct WaitGuard(&'static Gauge);

impl Waiting {
    pub fn begin(self) -> Option<WaitGuard> {
        let h = HANDLES.get()?;
        let gauge = match self {
            Waiting::Produce => &h.produce_waiting,
            Waiting::Fetch => &h.fetch_waiting,
        };
        gauge.increment(1.0);
        Some(WaitGuard(gauge))
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(api_name(ApiKey::ApiVersions), "ApiVersions");
    }
}
