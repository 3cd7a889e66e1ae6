//! Prometheus metrics: tier capacity, usage, segment counts and traffic, the pmem pool, and
//! migrations, published from the
//! storage engine's counters once a second (`metrics.prometheus.listener` turns the endpoint on).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, gauge};
use strata_storage::tier::TierId;

use crate::broker::Broker;

/// Serves `/metrics` on `addr` (from within a tokio runtime).
pub fn install(addr: std::net::SocketAddr) -> Result<(), String> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| e.to_string())?;
    describe();
    Ok(())
}

/// Every metric's `# HELP` line.
fn describe() {
    use metrics::{describe_counter, describe_gauge, Unit};
    describe_gauge!(
        "strata_tier_capacity_bytes",
        Unit::Bytes,
        "Capacity of a tier directory (storage.tiers.*.sizes)"
    );
    describe_gauge!(
        "strata_tier_used_bytes",
        Unit::Bytes,
        "Bytes a tier directory's segments take, the active segments' full segment.bytes included"
    );
    describe_counter!(
        "strata_tier_written_bytes_total",
        Unit::Bytes,
        "Bytes written to a tier directory: appends and segments migrated into it"
    );
    describe_counter!(
        "strata_tier_read_bytes_total",
        Unit::Bytes,
        "Bytes read from a tier directory: fetches and segments migrated out of it"
    );
    describe_gauge!("strata_tier_segments", "Segments in a tier directory");
    describe_gauge!(
        "strata_pmem_pool_files",
        "Files of the pmem channel's pool: free, or dirty (waiting to be zeroed)"
    );
    describe_counter!(
        "strata_migrations_total",
        "Segments moved between the tiers, by direction (down: first to second)"
    );
    describe_counter!(
        "strata_migrations_cancelled_total",
        "Migrations given up because the segment was deleted or became active"
    );
    describe_counter!(
        "strata_migrations_failed_total",
        "Migrations that failed (a full target is retried; an I/O error takes a directory offline)"
    );
    describe_counter!(
        "strata_migration_bytes_total",
        Unit::Bytes,
        "Bytes of segments moved between the tiers"
    );
    describe_counter!(
        "strata_migration_seconds_total",
        Unit::Seconds,
        "Time spent moving segments"
    );
    describe_gauge!("strata_migrations_in_flight", "Segment moves under way");
    describe_counter!(
        "strata_cleaner_passes_total",
        "Log cleaner passes completed"
    );
    describe_counter!(
        "strata_cleaner_failures_total",
        "Log cleaner passes that failed on an I/O error"
    );
    describe_counter!(
        "strata_cleaner_read_bytes_total",
        Unit::Bytes,
        "Bytes the log cleaner read (its map and its copies)"
    );
    describe_counter!(
        "strata_cleaner_written_bytes_total",
        Unit::Bytes,
        "Bytes the log cleaner wrote into cleaned segments"
    );
    describe_counter!(
        "strata_cleaner_records_removed_total",
        "Records the log cleaner removed"
    );
    describe_gauge!(
        "strata_cleaner_last_run_timestamp_seconds",
        Unit::Seconds,
        "When the last cleaner pass ended (0: none yet)"
    );
    describe_gauge!(
        "strata_cleaner_last_run_duration_seconds",
        Unit::Seconds,
        "How long the last cleaner pass took"
    );
    describe_gauge!(
        "strata_cleaner_max_dirty_ratio",
        "The highest dirty ratio of the compacted partitions"
    );
    describe_gauge!(
        "strata_cleaner_dirty_ratio",
        "Each compacted partition's dirty ratio (uncleaned / cleanable bytes)"
    );
    describe_gauge!("strata_partitions", "Partitions on this broker");
    describe_gauge!(
        "strata_log_bytes",
        Unit::Bytes,
        "Bytes of every partition's segments"
    );
}

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
}
