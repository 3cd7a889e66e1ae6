//! Connection limits, as Kafka's ConnectionQuotas: `max.connections` (over all listeners; at
//! the limit the broker stops accepting until a connection closes), `max.connections.per.ip`
//! with `max.connections.per.ip.overrides` (a connection over it is closed at once),
//! `max.connection.creation.rate` (accepting slows down to the rate), and the per-IP
//! `connection_creation_rate` quota of AlterClientQuotas (a connection over it is closed).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::quota::{QuotaEntity, QuotaImage, QuotaWindow, Sensor, CONNECTION_CREATION_RATE, IP};
use crate::config::security::ConnectionLimits;

#[derive(Debug, Default)]
struct State {
    total: u64,
    per_ip: HashMap<IpAddr, u64>,
    /// Connections accepted, broker-wide (for `max.connection.creation.rate`).
    created: Option<Sensor>,
    /// Connections accepted per address (for the `connection_creation_rate` quota).
    created_by_ip: HashMap<IpAddr, Sensor>,
}

#[derive(Debug)]
pub struct ConnectionQuotas {
    /// Replaced when dynamic broker configs change them.
    limits: std::sync::RwLock<ConnectionLimits>,
    window: QuotaWindow,
    state: Mutex<State>,
    closed: tokio::sync::Notify,
}

/// An accepted connection's place in the counts, given back when it is dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    quotas: Arc<ConnectionQuotas>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut state = self.quotas.state.lock().unwrap_or_else(|e| e.into_inner());
        state.total = state.total.saturating_sub(1);
        if let Some(n) = state.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                state.per_ip.remove(&self.ip);
            }
        }
        drop(state);
        self.quotas.closed.notify_waiters();
    }
}

fn now_ms() -> u64 {
    strata_storage::now_ms().max(0) as u64
}

impl ConnectionQuotas {
    pub fn new(limits: ConnectionLimits) -> Arc<ConnectionQuotas> {
        Arc::new(ConnectionQuotas {
            limits: std::sync::RwLock::new(limits),
            // Kafka measures connection rates over its quota window too.
            window: QuotaWindow::default(),
            state: Mutex::new(State::default()),
            closed: tokio::sync::Notify::new(),
        })
    }

    fn limits(&self) -> ConnectionLimits {
        self.limits
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// New limits (dynamic broker configs): they hold for the next connection accepted; open
    /// connections stay.
    pub fn set_limits(&self, limits: ConnectionLimits) {
        *self.limits.write().unwrap_or_else(|e| e.into_inner()) = limits;
        self.closed.notify_waiters();
    }

    /// Waits until another connection may be accepted: below `max.connections`, and within
    /// `max.connection.creation.rate`.
    pub async fn wait_to_accept(&self) {
        loop {
            let notified = self.closed.notified();
            let wait = {
                let limits = self.limits();
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if state.total >= limits.max_connections {
                    None
                } else {
                    let rate = limits.max_creation_rate as f64;
                    let sensor = state.created.get_or_insert_with(Sensor::new);
                    let (observed, window_ms) = sensor.rate(self.window, now_ms());
                    if observed + 1.0 * 1000.0 / window_ms as f64 > rate && rate < i32::MAX as f64 {
                        Some(Duration::from_millis(
                            (((observed - rate).max(0.0) / rate * window_ms as f64) as u64).max(1),
                        ))
                    } else {
                        return;
                    }
                }
            };
            match wait {
                // At max.connections: until one closes.
                None => notified.await,
                Some(d) => tokio::time::sleep(d).await,
            }
        }
    }

    /// Counts an accepted connection from `ip`, or says why it must be closed.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        quotas: &QuotaImage,
    ) -> Result<ConnectionSlot, String> {
        let now = now_ms();
        let limits = self.limits();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let limit = limits
            .per_ip_overrides
            .get(&ip.to_string())
            .copied()
            .unwrap_or(limits.max_per_ip);
        let open = state.per_ip.get(&ip).copied().unwrap_or(0);
        if open >= limit {
            return Err(format!(
                "too many connections from {ip} (max.connections.per.ip {limit})"
            ));
        }
        let window = self.window;
        state
            .created
            .get_or_insert_with(Sensor::new)
            .record(window, 1.0, now);
        if let Some(rate) = ip_rate(quotas, ip) {
            let sensor = state.created_by_ip.entry(ip).or_insert_with(Sensor::new);
            sensor.record(window, 1.0, now);
            if sensor.rate(window, now).0 > rate {
                return Err(format!(
                    "connection rate from {ip} over its connection_creation_rate quota {rate}"
                ));
            }
        }
        *state.per_ip.entry(ip).or_default() += 1;
        state.total += 1;
        Ok(ConnectionSlot {
            quotas: self.clone(),
            ip,
        })
    }
}

/// The `connection_creation_rate` quota of an address: its own, else the default IP's.
fn ip_rate(quotas: &QuotaImage, ip: IpAddr) -> Option<f64> {
    if quotas.is_empty() {
        return None;
    }
    let entity = |name: Option<String>| QuotaEntity([(IP.to_string(), name)].into());
    [Some(ip.to_string()), None].into_iter().find_map(|name| {
        quotas
            .get(&entity(name))
            .and_then(|v| v.get(CONNECTION_CREATION_RATE))
            .copied()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_limits_and_rates_close_connections_over_them() {
        let quotas = ConnectionQuotas::new(ConnectionLimits {
            max_connections: 100,
            max_per_ip: 2,
            per_ip_overrides: [("10.0.0.9".to_string(), 3)].into(),
            max_creation_rate: i32::MAX as u64,
        });
        let image = QuotaImage::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.9".parse().unwrap();
        let one = quotas.admit(a, &image).unwrap();
        let _two = quotas.admit(a, &image).unwrap();
        assert!(quotas
            .admit(a, &image)
            .unwrap_err()
            .contains("max.connections.per.ip 2"));
        drop(one);
        let _three = quotas.admit(a, &image).unwrap();
        let _b: Vec<_> = (0..3).map(|_| quotas.admit(b, &image).unwrap()).collect();
        assert!(quotas.admit(b, &image).is_err());

        let mut image = QuotaImage::default();
        image.set(
            QuotaEntity([(IP.to_string(), None)].into()),
            CONNECTION_CREATION_RATE,
            Some(0.5),
        );
        let quotas = ConnectionQuotas::new(ConnectionLimits {
            max_connections: 100,
            max_per_ip: 100,
            per_ip_overrides: Default::default(),
            max_creation_rate: i32::MAX as u64,
        });
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        // 0.5 per second over the ten-second minimum window: five at once, not six.
        let admitted: Vec<_> = (0..6).map(|_| quotas.admit(c, &image)).collect();
        assert!(admitted[..5].iter().all(Result::is_ok));
        assert!(admitted[5]
            .as_ref()
            .unwrap_err()
            .contains("connection_creation_rate"));
        // Another address has no quota of its own but the default's, measured apart.
        assert!(quotas.admit(a, &image).is_ok());
    }
}
