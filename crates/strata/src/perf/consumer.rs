//! `strata consumer-perf`: kafka-consumer-perf-test.sh on librdkafka.
//!
//! Without `--group` the consumer assigns itself every partition of the topic, so it works
//! against brokers without consumer groups; with `--group` it subscribes.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::producer::client_config;
use super::stats::MB;

#[derive(Debug, Args, Clone)]
pub struct ConsumerPerfArgs {
    /// The broker to connect to (host:port); the same as `bootstrap.servers` in
    /// --consumer.config.
    #[arg(long)]
    pub bootstrap_server: Option<String>,
    /// The topic to consume from.
    #[arg(long)]
    pub topic: String,
    /// Number of messages to consume.
    #[arg(long)]
    pub messages: u64,
    /// A file of consumer configs in properties format.
    #[arg(long = "consumer.config")]
    pub consumer_config: Option<PathBuf>,
    /// Consume as a member of this group (subscribe) rather than by assignment.
    #[arg(long)]
    pub group: Option<String>,
    /// Print a row every reporting interval.
    #[arg(long)]
    pub show_detailed_stats: bool,
    /// Milliseconds between detailed rows.
    #[arg(long, default_value_t = 5000)]
    pub reporting_interval: u64,
    /// Give up after this many milliseconds without a message.
    #[arg(long, default_value_t = 10000)]
    pub timeout: u64,
    /// Start at the end of the log instead of the beginning.
    #[arg(long)]
    pub from_latest: bool,
    /// Leave out the header line.
    #[arg(long)]
    pub hide_header: bool,
    /// Bytes to fetch per partition per request (fetch.message.max.bytes).
    #[arg(long)]
    pub fetch_size: Option<u64>,
    /// Print librdkafka's statistics at the end.
    #[arg(long)]
    pub print_metrics: bool,
}

/// What a consumer run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConsumerSummary {
    pub messages: u64,
    pub bytes: u64,
    pub elapsed_s: f64,
    pub mb_per_s: f64,
    pub messages_per_s: f64,
    pub rebalance_ms: f64,
    pub fetch_ms: f64,
}

/// `yyyy-MM-dd HH:mm:ss:SSS` in UTC, Kafka's default date format.
pub fn format_time(t: SystemTime) -> String {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}:{:03}",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

pub const HEADER: &str = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";
pub const DETAILED_HEADER: &str = "time, threadId, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";

pub fn run(args: ConsumerPerfArgs) -> Result<ConsumerSummary> {
    let mut config = client_config(
        &[],
        args.consumer_config.as_ref(),
        args.bootstrap_server.as_deref(),
    )?;
    let assigned = args.group.is_none();
    // librdkafka needs a group id even to assign; an unused random one does no harm.
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| format!("perf-consumer-{}", std::process::id()));
    config
        .set("group.id", &group)
        .set(
            "enable.auto.commit",
            if assigned { "false" } else { "true" },
        )
        .set(
            "auto.offset.reset",
            if args.from_latest {
                "latest"
            } else {
                "earliest"
            },
        )
        .set("enable.partition.eof", "false");
    if let Some(size) = args.fetch_size {
        config.set("fetch.message.max.bytes", size.to_string());
    }
    if args.print_metrics {
        config.set("statistics.interval.ms", "1000");
    }
    let consumer: BaseConsumer = config.create().context("cannot create the consumer")?;
    let start_wall = SystemTime::now();
    let start = Instant::now();
    if assigned {
        let metadata = consumer
            .fetch_metadata(Some(&args.topic), Duration::from_secs(30))
            .context("metadata")?;
        let topic = metadata
            .topics()
            .iter()
            .find(|t| t.name() == args.topic)
            .context("topic not in metadata")?;
        if topic.error().is_some() || topic.partitions().is_empty() {
            bail!("topic {} does not exist", args.topic);
        }
        let mut tpl = TopicPartitionList::new();
        for p in topic.partitions() {
            tpl.add_partition_offset(
                &args.topic,
                p.id(),
                if args.from_latest {
                    Offset::End
                } else {
                    Offset::Beginning
                },
            )?;
        }
        consumer.assign(&tpl)?;
    } else {
        consumer.subscribe(&[&args.topic])?;
    }
    if !args.hide_header {
        println!(
            "{}",
            if args.show_detailed_stats {
                DETAILED_HEADER
            } else {
                HEADER
            }
        );
    }
    let mut messages = 0u64;
    let mut bytes = 0u64;
    let mut first_message: Option<Instant> = None;
    let mut last_message = Instant::now();
    let timeout = Duration::from_millis(args.timeout);
    let interval = Duration::from_millis(args.reporting_interval.max(1));
    // The first window starts with the run, so that it holds the rebalance time.
    let (mut window_start, mut window_messages, mut window_bytes) = (start, 0u64, 0u64);
    while messages < args.messages {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                // Reading the clock for every record costs more than the record itself at
                // millions per second; every 256th is enough for the timeout and the windows.
                if first_message.is_none() || messages.is_multiple_of(256) {
                    let now = Instant::now();
                    first_message.get_or_insert(now);
                    last_message = now;
                }
                messages += 1;
                let size = m.payload_len() as u64 + m.key().map(|k| k.len() as u64).unwrap_or(0);
                bytes += size;
                window_messages += 1;
                window_bytes += size;
                if args.show_detailed_stats
                    && messages.is_multiple_of(256)
                    && window_start.elapsed() >= interval
                {
                    let secs = window_start.elapsed().as_secs_f64();
                    // As Kafka's tool: the time spent joining before the first record counts as
                    // rebalance time of the window it fell in, and the fetch rates are over the
                    // rest of the window (so the rows add up to the summary's figures).
                    let rebalance_s = match first_message {
                        Some(first) if first > window_start => (first - window_start).as_secs_f64(),
                        _ => 0.0,
                    };
                    let fetch_s = (secs - rebalance_s).max(1e-9);
                    println!(
                        "{}, 0, {:.4}, {:.4}, {}, {:.4}, {}, {}, {:.4}, {:.4}",
                        format_time(SystemTime::now()),
                        bytes as f64 / MB,
                        window_bytes as f64 / MB / secs,
                        messages,
                        window_messages as f64 / secs,
                        (rebalance_s * 1000.0) as u64,
                        (fetch_s * 1000.0) as u64,
                        window_bytes as f64 / MB / fetch_s,
                        window_messages as f64 / fetch_s
                    );
                    (window_start, window_messages, window_bytes) = (Instant::now(), 0, 0);
                }
            }
            Some(Err(e)) => bail!("consume failed: {e}"),
            None => {
                if last_message.elapsed() > timeout {
                    eprintln!("WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) exceeded.", args.timeout);
                    break;
                }
            }
        }
    }
    let end_wall = SystemTime::now();
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    let rebalance_ms = first_message
        .map(|f| (f - start).as_secs_f64() * 1000.0)
        .unwrap_or(0.0);
    let fetch_s = (elapsed - rebalance_ms / 1000.0).max(1e-9);
    let summary = ConsumerSummary {
        messages,
        bytes,
        elapsed_s: elapsed,
        mb_per_s: bytes as f64 / MB / elapsed,
        messages_per_s: messages as f64 / elapsed,
        rebalance_ms,
        fetch_ms: fetch_s * 1000.0,
    };
    if !args.show_detailed_stats {
        println!(
            "{}, {}, {:.4}, {:.4}, {}, {:.4}, {}, {}, {:.4}, {:.4}",
            format_time(start_wall),
            format_time(end_wall),
            bytes as f64 / MB,
            summary.mb_per_s,
            messages,
            summary.messages_per_s,
            rebalance_ms as u64,
            (fetch_s * 1000.0) as u64,
            bytes as f64 / MB / fetch_s,
            messages as f64 / fetch_s
        );
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format_matches_kafkas() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(format_time(t), "2023-11-14 22:13:20:123");
        assert_eq!(
            format_time(SystemTime::UNIX_EPOCH),
            "1970-01-01 00:00:00:000"
        );
    }
}
