//! Replication throttles (Kafka's replication quotas, used by partition reassignment): a
//! broker's `leader.replication.throttled.rate` bounds the bytes it sends followers of the
//! partitions its topics list in `leader.replication.throttled.replicas`, and
//! `follower.replication.throttled.rate` the bytes it fetches for those listed in
//! `follower.replication.throttled.replicas` (`partition:broker` entries, or `*` for all).
//! Over its rate a leader answers a throttled partition without records and a follower leaves
//! it out of its next fetch, until the window's allowance is back; other partitions go on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// One direction's quota: bytes per second, a second's worth of allowance at most.
#[derive(Debug)]
pub struct Throttle {
    /// Bytes per second; `u64::MAX`: none.
    rate: AtomicU64,
    /// (when the allowance was last topped up, the allowance in bytes; negative: owed)
    allowance: Mutex<(Instant, f64)>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            rate: AtomicU64::new(u64::MAX),
            allowance: Mutex::new((Instant::now(), 0.0)),
        }
    }
}

impl Throttle {
    pub fn set_rate(&self, rate: Option<u64>) {
        let rate = rate.unwrap_or(u64::MAX);
        if self.rate.swap(rate, Ordering::Relaxed) != rate {
            *self.allowance.lock().unwrap_or_else(|e| e.into_inner()) = (Instant::now(), 0.0);
        }
    }

    /// Whether a rate is set (else nothing is throttled and nothing need be looked up).
    pub fn active(&self) -> bool {
        self.rate.load(Ordering::Relaxed) != u64::MAX
    }

    fn topped_up(&self) -> std::sync::MutexGuard<'_, (Instant, f64)> {
        let rate = self.rate.load(Ordering::Relaxed) as f64;
        let mut a = self.allowance.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let earned = now.duration_since(a.0).as_secs_f64() * rate;
        a.1 = (a.1 + earned).min(rate);
        a.0 = now;
        a
    }

    /// Whether the bytes sent (or fetched) so far are over the rate.
    pub fn exceeded(&self) -> bool {
        self.active() && self.topped_up().1 < 0.0
    }

    /// Counts `bytes` of throttled partitions.
    pub fn record(&self, bytes: u64) {
        if self.active() {
            self.topped_up().1 -= bytes as f64;
        }
    }
}

/// A broker's two throttles.
#[derive(Debug, Default)]
pub struct Throttles {
    pub leader: Throttle,
    pub follower: Throttle,
}

/// Whether a topic's `*.replication.throttled.replicas` value lists `partition` on `broker`.
pub fn listed(value: Option<&str>, partition: i32, broker: i32) -> bool {
    let Some(value) = value else {
        return false;
    };
    value.split(',').map(str::trim).any(|entry| {
        entry == "*"
            || entry.split_once(':').is_some_and(|(p, b)| {
                p.trim().parse() == Ok(partition) && b.trim().parse() == Ok(broker)
            })
    })
}

/// Checks a `*.replication.throttled.replicas` value: empty, `*`, or `partition:broker` entries.
pub fn valid_list(value: &str) -> bool {
    let value = value.trim();
    value.is_empty()
        || value == "*"
        || value.split(',').all(|entry| {
            entry.split_once(':').is_some_and(|(p, b)| {
                p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok()
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_lets_a_seconds_worth_through_then_holds_until_it_is_earned_back() {
        let t = Throttle::default();
        t.record(1 << 30);
        assert!(!t.exceeded(), "no rate: never exceeded");
        t.set_rate(Some(1000));
        assert!(!t.exceeded());
        t.record(300);
        assert!(t.exceeded());
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert!(!t.exceeded(), "300 bytes owed are earned back in 0.3 s");
        // The allowance never grows past a second's worth.
        std::thread::sleep(std::time::Duration::from_millis(1200));
        t.record(1100);
        assert!(t.exceeded());
        t.set_rate(None);
        assert!(!t.active());
    }

    #[test]
    fn throttled_replica_lists_are_read_as_kafka_writes_them() {
        assert!(listed(Some("0:1,1:2"), 1, 2));
        assert!(!listed(Some("0:1,1:2"), 1, 1));
        assert!(listed(Some("*"), 7, 9));
        assert!(!listed(Some(""), 0, 1));
        assert!(!listed(None, 0, 1));
        assert!(valid_list("0:1, 1:2") && valid_list("*") && valid_list(""));
        assert!(!valid_list("0") && !valid_list("a:1"));
    }
}
