//! Every metric's `# HELP` line and unit.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Every metric's `# HELP` line.
pub(super) fn describe() {
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

    describe_counter!("strata_requests_total", "Requests served, by API");
    describe_histogram!(
        "strata_request_duration_seconds",
        Unit::Seconds,
        "Time from a request's arrival to its response's last byte written (long polls and acks=all waits included), by API"
    );
    describe_counter!(
        "strata_request_errors_total",
        "Error codes in responses (top-level, topic and partition errors), by API and Kafka's error name"
    );
    describe_counter!(
        "strata_invalid_requests_total",
        "Connections closed for a request that could not be served (malformed, unknown API or version, too large)"
    );
    describe_gauge!("strata_connections", "Open connections, by listener");
    describe_counter!(
        "strata_connections_created_total",
        "Connections accepted, by listener"
    );
    describe_counter!(
        "strata_connections_closed_total",
        "Connections closed, by listener"
    );
    describe_counter!(
        "strata_successful_authentications_total",
        "Successful authentications, by listener and mechanism (SSL: client certificate handshakes)"
    );
    describe_counter!(
        "strata_failed_authentications_total",
        "Failed authentications, by listener and mechanism (SSL: failed TLS handshakes)"
    );
    describe_histogram!(
        "strata_throttle_time_seconds",
        Unit::Seconds,
        "Throttle times given to clients over a quota, by quota (producer_byte_rate, consumer_byte_rate, request_percentage)"
    );
    describe_gauge!(
        "strata_purgatory_size",
        "Requests waiting: acks=all produces for their ISR (Produce), fetches for min.bytes (Fetch)"
    );
    describe_histogram!(
        "strata_log_flush_duration_seconds",
        Unit::Seconds,
        "Time to sync a partition's unflushed segments (flush.messages, flush.ms)"
    );
    describe_counter!(
        "strata_topic_bytes_in_total",
        Unit::Bytes,
        "Bytes produced, by topic"
    );
    describe_counter!(
        "strata_topic_records_in_total",
        "Records produced, by topic"
    );
    describe_counter!(
        "strata_topic_bytes_out_total",
        Unit::Bytes,
        "Bytes fetched by consumers, by topic"
    );
    describe_counter!(
        "strata_replication_bytes_out_total",
        Unit::Bytes,
        "Bytes fetched by followers from this broker"
    );
    describe_gauge!("strata_leader_partitions", "Partitions this broker leads");
    describe_gauge!(
        "strata_under_replicated_partitions",
        "Partitions this broker leads whose ISR is smaller than their replica set"
    );
    describe_gauge!(
        "strata_under_min_isr_partitions",
        "Partitions this broker leads whose ISR is smaller than min.insync.replicas"
    );
    describe_gauge!(
        "strata_offline_partitions",
        "Partitions without a leader (reported by the active controller) or on an offline log directory"
    );
    describe_gauge!(
        "strata_offline_log_dirs",
        "Log directories taken offline by an I/O error"
    );
    describe_gauge!(
        "strata_active_controller",
        "1 on the active controller (and a broker alone)"
    );
    describe_gauge!(
        "strata_consumer_group_lag",
        "Records between a group's committed offset and the partition's high watermark (groups this broker coordinates, partitions it hosts)"
    );
    describe_gauge!(
        "strata_consumer_group_committed_offset",
        "A group's committed offset, by group, topic and partition"
    );
    describe_gauge!(
        "strata_consumer_groups",
        "Groups this broker coordinates, by state"
    );
    describe_counter!(
        "strata_transactions_ended_total",
        "Transactions ended, by result (commit, abort)"
    );
    describe_gauge!(
        "strata_transactions",
        "Transactions this broker coordinates, by state"
    );
}
