//! The metrics copied from state once a second: tiers, the pmem pool, migrations, the cleaner,
//! topic traffic, partitions and their replication, consumer groups and transactions.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, gauge};
use strata_storage::tier::TierId;

use crate::broker::Broker;

/// Copies the storage counters into the metrics registry, once now and then every second.
pub async fn publish(broker: Arc<Broker>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        publish_once(&broker);
    }
}

pub fn publish_once(broker: &Broker) {
    // Segments per tier directory (a segment's directory is <tier dir>/<topic>-<partition>).
    let mut segments: std::collections::HashMap<std::path::PathBuf, u64> = Default::default();
    let tiers = broker.logs.tier_usage();
    if !tiers.is_empty() {
        for topic in broker.logs.topics() {
            for p in topic.partitions() {
                for s in p.log().segments() {
                    if let Some(tier_dir) = s.dir().parent() {
                        *segments.entry(tier_dir.to_path_buf()).or_default() += 1;
                    }
                }
            }
        }
    }
    for d in tiers {
        let tier = if d.tier == TierId::First {
            "first"
        } else {
            "second"
        };
        let dir = d.path.display().to_string();
        gauge!("strata_tier_capacity_bytes", "tier" => tier, "dir" => dir.clone())
            .set(d.capacity_bytes as f64);
        gauge!("strata_tier_used_bytes", "tier" => tier, "dir" => dir.clone())
            .set(d.used_bytes as f64);
        counter!("strata_tier_written_bytes_total", "tier" => tier, "dir" => dir.clone())
            .absolute(d.bytes_written);
        gauge!("strata_tier_segments", "tier" => tier, "dir" => dir.clone())
            .set(segments.get(&d.path).copied().unwrap_or(0) as f64);
        counter!("strata_tier_read_bytes_total", "tier" => tier, "dir" => dir)
            .absolute(d.bytes_read);
    }
    for pool in broker.logs.pools() {
        let dir = pool.dir().display().to_string();
        gauge!("strata_pmem_pool_files", "state" => "free", "dir" => dir.clone())
            .set(pool.free_count() as f64);
        gauge!("strata_pmem_pool_files", "state" => "dirty", "dir" => dir)
            .set(pool.dirty_count() as f64);
    }
    if let Some(m) = broker.logs.migration_stats() {
        counter!("strata_migrations_total", "direction" => "down")
            .absolute(m.demotions.load(Ordering::Relaxed));
        counter!("strata_migrations_total", "direction" => "up")
            .absolute(m.promotions.load(Ordering::Relaxed));
        counter!("strata_migrations_cancelled_total").absolute(m.cancelled.load(Ordering::Relaxed));
        counter!("strata_migrations_failed_total").absolute(m.failed.load(Ordering::Relaxed));
        counter!("strata_migration_bytes_total").absolute(m.bytes_moved.load(Ordering::Relaxed));
        counter!("strata_migration_seconds_total")
            .absolute(m.micros_spent.load(Ordering::Relaxed) / 1_000_000);
        gauge!("strata_migrations_in_flight").set(m.in_flight.load(Ordering::Relaxed) as f64);
    }
    let c = broker.logs.cleaner_stats();
    counter!("strata_cleaner_passes_total").absolute(c.passes.load(Ordering::Relaxed));
    counter!("strata_cleaner_failures_total").absolute(c.failures.load(Ordering::Relaxed));
    counter!("strata_cleaner_read_bytes_total").absolute(c.bytes_read.load(Ordering::Relaxed));
    counter!("strata_cleaner_written_bytes_total")
        .absolute(c.bytes_written.load(Ordering::Relaxed));
    counter!("strata_cleaner_records_removed_total")
        .absolute(c.records_removed.load(Ordering::Relaxed));
    gauge!("strata_cleaner_last_run_timestamp_seconds")
        .set(c.last_run_ms.load(Ordering::Relaxed) as f64 / 1000.0);
    gauge!("strata_cleaner_last_run_duration_seconds")
        .set(c.last_duration_ms.load(Ordering::Relaxed) as f64 / 1000.0);
    let ratios = broker.logs.dirty_ratios();
    gauge!("strata_cleaner_max_dirty_ratio").set(ratios.iter().map(|r| r.2).fold(0.0, f64::max));
    for (topic, partition, ratio) in ratios {
        gauge!("strata_cleaner_dirty_ratio", "topic" => topic, "partition" => partition.to_string())
            .set(ratio);
    }
    let mut partitions = 0u64;
    let mut bytes = 0u64;
    for topic in broker.logs.topics() {
        for p in topic.partitions() {
            partitions += 1;
            bytes += p.log().size_bytes();
        }
    }
    gauge!("strata_partitions").set(partitions as f64);
    gauge!("strata_log_bytes").set(bytes as f64);
    gauge!("strata_offline_log_dirs").set(broker.logs.failures().offline_dirs().len() as f64);
    publish_topics(broker);
    publish_replication(broker);
    publish_groups(broker);
    publish_transactions(broker);
}

/// Each topic's traffic counters.
fn publish_topics(broker: &Broker) {
    for topic in broker.logs.topics() {
        let name = topic.name.clone();
        let s = &topic.stats;
        counter!("strata_topic_bytes_in_total", "topic" => name.clone())
            .absolute(s.bytes_in.load(Ordering::Relaxed));
        counter!("strata_topic_records_in_total", "topic" => name.clone())
            .absolute(s.records_in.load(Ordering::Relaxed));
        counter!("strata_topic_bytes_out_total", "topic" => name.clone())
            .absolute(s.bytes_out.load(Ordering::Relaxed));
        counter!("strata_replication_bytes_out_total", "topic" => name)
            .absolute(s.replication_bytes_out.load(Ordering::Relaxed));
    }
}

/// Leaders, under-replicated, under-min-ISR and offline partitions, and whether this node is
/// the active controller. A broker alone leads every partition it has; one on an offline
/// directory is offline.
fn publish_replication(broker: &Broker) {
    let me = broker.config.broker_id;
    let (mut leaders, mut under_replicated, mut under_min_isr, mut offline) = (0, 0, 0, 0);
    let active = match broker.quorum() {
        None => {
            let failures = broker.logs.failures();
            for topic in broker.logs.topics() {
                for p in topic.partitions() {
                    if failures.is_offline(&p.log_dir) {
                        offline += 1;
                    } else {
                        leaders += 1;
                    }
                }
            }
            true
        }
        Some(quorum) => {
            let active = quorum.leader().is_some_and(|id| id as i64 == me as i64);
            let image = quorum.image();
            let config = broker.effective_config();
            for topic in image.topics.values() {
                let min_isr = config
                    .topic_value(&topic.configs, "min.insync.replicas")
                    .parse::<usize>()
                    .unwrap_or(1);
                for p in &topic.partitions {
                    if p.leader < 0 && active {
                        offline += 1;
                    }
                    if p.leader != me {
                        continue;
                    }
                    leaders += 1;
                    if p.isr.len() < p.replicas.len() {
                        under_replicated += 1;
                    }
                    if p.isr.len() < min_isr {
                        under_min_isr += 1;
                    }
                }
            }
            active
        }
    };
    gauge!("strata_leader_partitions").set(leaders as f64);
    gauge!("strata_under_replicated_partitions").set(under_replicated as f64);
    gauge!("strata_under_min_isr_partitions").set(under_min_isr as f64);
    gauge!("strata_offline_partitions").set(offline as f64);
    gauge!("strata_active_controller").set(if active { 1.0 } else { 0.0 });
}

/// The groups this broker coordinates: how many in each state, and each one's committed
/// offsets and lag on the partitions hosted here.
fn publish_groups(broker: &Broker) {
    let mut states: BTreeMap<String, u64> = BTreeMap::new();
    for group in broker.group_lags() {
        *states.entry(group.state.clone()).or_default() += 1;
        for p in group.partitions {
            let labels = [
                ("group", group.group.clone()),
                ("topic", p.topic),
                ("partition", p.partition.to_string()),
            ];
            gauge!("strata_consumer_group_committed_offset", &labels).set(p.committed as f64);
            if let Some(lag) = p.lag {
                gauge!("strata_consumer_group_lag", &labels).set(lag as f64);
            }
        }
    }
    for state in [
        "Empty",
        "Stable",
        "PreparingRebalance",
        "CompletingRebalance",
        "Dead",
    ] {
        states.entry(state.to_string()).or_default();
    }
    for (state, count) in states {
        gauge!("strata_consumer_groups", "state" => state).set(count as f64);
    }
}

/// The transactions this broker coordinates, by state.
fn publish_transactions(broker: &Broker) {
    let mut states: BTreeMap<&'static str, u64> = BTreeMap::new();
    for state in crate::txn::TxnState::ALL {
        states.insert(state.name(), 0);
    }
    for txn in broker.txns.list(&[], &[], -1) {
        *states.entry(txn.state.name()).or_default() += 1;
    }
    for (state, count) in states {
        gauge!("strata_transactions", "state" => state).set(count as f64);
    }
}
