//! `strata bench`: many producer or consumer clients at once, as Pafka's bin/bench.py.
//!
//! Each client is a librdkafka client on its own thread with its own topic (`<prefix>-<n>`) or a
//! shared one. A sampler records aggregate throughput every second; the run prints aggregate
//! and per-client throughput and latency percentiles, writes JSON and draws an SVG chart.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::producer::{client_config, run_job, Payloads, ProducerJob, Progress};
use super::stats::{summarize, Summary, MB};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientType {
    Producer,
    Consumer,
}

impl ClientType {
    /// The name `--type` takes and reports use.
    pub fn name(self) -> &'static str {
        match self {
            ClientType::Producer => "producer",
            ClientType::Consumer => "consumer",
        }
    }
}

#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// The broker to connect to (host:port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// Number of clients, each on its own thread.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Whether the clients produce or consume.
    #[arg(long = "type", value_enum, default_value_t = ClientType::Producer)]
    pub client_type: ClientType,
    /// Records in total, shared evenly by the clients.
    #[arg(long)]
    pub num_records: u64,
    /// Size of each record in bytes (producers).
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Records per second in total; -1 means unthrottled.
    #[arg(long, default_value_t = -1.0, allow_hyphen_values = true)]
    pub throughput: f64,
    /// Bursts: `min:max:period_s`, the total rate alternating between min and max each half period.
    #[arg(long)]
    pub dynamic: Option<String>,
    /// Topic name prefix: client n uses `<prefix>-<n>`.
    #[arg(long, default_value = "bench")]
    pub topic_prefix: String,
    /// One topic for all clients instead of one each.
    #[arg(long)]
    pub shared_topic: Option<String>,
    /// Partitions of each topic the bench creates.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// Consumers join this consumer group (subscribe) and share its partitions; together they
    /// read --num-records. Without it each consumer assigns itself every partition of its topic.
    #[arg(long)]
    pub group: Option<String>,
    /// Producer configs (librdkafka's names, Kafka's where they are the same).
    #[arg(long, num_args = 1.., value_name = "KEY=VALUE")]
    pub producer_props: Vec<String>,
    /// Consumer configs (librdkafka's names, Kafka's where they are the same).
    #[arg(long, num_args = 1.., value_name = "KEY=VALUE")]
    pub consumer_props: Vec<String>,
    /// Where to write the results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Where to draw the SVG chart.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Run this bench on each of these hosts at once (comma-separated), over ssh, and report
    /// them together: every host runs the options given here (its topics prefixed with its
    /// index, `<prefix>-h<i>`, unless --shared-topic). The ssh command is $STRATA_BENCH_SSH
    /// (default `ssh`); the binary on the hosts is --remote-strata.
    #[arg(long)]
    pub hosts: Option<String>,
    /// With --hosts: the strata binary on the hosts.
    #[arg(long, default_value = "strata")]
    pub remote_strata: String,
    /// Print only the results, as JSON with the latency histogram, on stdout (what --hosts
    /// reads from each host).
    #[arg(long, hide = true)]
    pub emit_json: bool,
}

/// Parsed `--dynamic min:max:period`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dynamic {
    pub min: f64,
    pub max: f64,
    pub period: Duration,
}

impl Dynamic {
    pub fn parse(s: &str) -> Result<Dynamic> {
        let parts: Vec<&str> = s.split(':').collect();
        let [min, max, period] = parts.as_slice() else {
            bail!("--dynamic takes min:max:period_s, got {s}")
        };
        let d = Dynamic {
            min: min.parse()?,
            max: max.parse()?,
            period: Duration::from_secs_f64(period.parse()?),
        };
        if d.min <= 0.0 || d.max < d.min || d.period.is_zero() {
            bail!("--dynamic needs 0 < min <= max and a period > 0, got {s}");
        }
        Ok(d)
    }
    /// The rate at `t`: max in the first half of each period, min in the second.
    pub fn rate_at(&self, t: Duration) -> f64 {
        let phase = t.as_secs_f64() % self.period.as_secs_f64();
        if phase < self.period.as_secs_f64() / 2.0 {
            self.max
        } else {
            self.min
        }
    }
}

/// One client's outcome.
pub struct ClientOutcome {
    pub topic: String,
    pub summary: Summary,
    pub histogram: Histogram<u64>,
    pub errors: u64,
}

/// A sample of aggregate throughput.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub t_s: f64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
}

fn topics(args: &BenchArgs) -> Vec<String> {
    (0..args.threads)
        .map(|n| match &args.shared_topic {
            Some(t) => t.clone(),
            None => format!("{}-{n}", args.topic_prefix),
        })
        .collect()
}

fn ensure_topics(args: &BenchArgs, names: &[String]) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap_server)
        .create()?;
    let mut unique = names.to_vec();
    unique.sort();
    unique.dedup();
    let new: Vec<NewTopic<'_>> = unique
        .iter()
        .map(|t| NewTopic::new(t, args.partitions, TopicReplication::Fixed(1)))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = rt.block_on(admin.create_topics(
        &new,
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ))?;
    for r in results {
        if let Err((topic, code)) = r {
            if code != rdkafka::error::RDKafkaErrorCode::TopicAlreadyExists {
                bail!("cannot create topic {topic}: {code}");
            }
        }
    }
    Ok(())
}

fn consume_client(
    args: &BenchArgs,
    topic: &str,
    count: u64,
    progress: &Progress,
) -> Result<(Summary, Histogram<u64>)> {
    let mut config = client_config(&args.consumer_props, None, Some(&args.bootstrap_server))?;
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| format!("strata-bench-{}", std::process::id()));
    config
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = config.create()?;
    if args.group.is_some() {
        consumer.subscribe(&[topic])?;
    } else {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(30))?;
        let mut tpl = TopicPartitionList::new();
        for t in metadata.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
            }
        }
        consumer.assign(&tpl)?;
    }
    // In a group the members share the records: each stops when the group has read them all.
    let group_total = args.group.is_some().then_some(args.num_records);
    let finished = |n: u64| match group_total {
        Some(total) => progress.records.load(Ordering::Relaxed) >= total,
        None => n >= count,
    };
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let (mut n, mut bytes, mut sum_us, mut max_us) = (0u64, 0u64, 0u64, 0u64);
    let start = Instant::now();
    let mut idle = Instant::now();
    while !finished(n) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                idle = Instant::now();
                n += 1;
                let size = m.payload_len() as u64;
                bytes += size;
                progress.records.fetch_add(1, Ordering::Relaxed);
                progress.bytes.fetch_add(size, Ordering::Relaxed);
                // End-to-end latency: the record's create time to now.
                if let Some(ts) = m.timestamp().to_millis() {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_micros() as i64)
                        .unwrap_or(0);
                    let us = (now - ts * 1000).max(1) as u64;
                    sum_us += us;
                    max_us = max_us.max(us);
                    let _ = histogram.record(us.min(3_600_000_000));
                }
            }
            Some(Err(e)) => bail!("consume failed: {e}"),
            None if idle.elapsed() > Duration::from_secs(30) => {
                bail!("no message for 30 s after {n} of {count}")
            }
            None => {}
        }
    }
    Ok((
        summarize(n, bytes, start.elapsed(), sum_us, max_us, &histogram),
        histogram,
    ))
}

pub fn run(args: BenchArgs) -> Result<()> {
    if let Some(hosts) = &args.hosts {
        return super::hosts::run(&args, hosts);
    }
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let dynamic = args.dynamic.as_deref().map(Dynamic::parse).transpose()?;
    let names = topics(&args);
    ensure_topics(&args, &names)?;
    let per_client = args.num_records / args.threads as u64;
    let progress = Arc::new(Progress::default());
    let payloads = Arc::new(Payloads::fixed(args.record_size));
    let done = Arc::new(AtomicBool::new(false));
    let total = per_client * args.threads as u64;
    let started = Instant::now();

    // The sampler: aggregate throughput every second, shown live.
    let sampler = {
        let progress = progress.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let tty = std::io::stderr().is_terminal();
            let bar = if tty {
                let bar = indicatif::ProgressBar::new(total);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{elapsed_precise} [{bar:40}] {pos}/{len} records {msg}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                Some(bar)
            } else {
                None
            };
            let mut samples = Vec::new();
            let (mut last_records, mut last_bytes, mut last_t) = (0u64, 0u64, Instant::now());
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                if last_t.elapsed() < Duration::from_secs(1) {
                    continue;
                }
                let (records, bytes) = (
                    progress.records.load(Ordering::Relaxed),
                    progress.bytes.load(Ordering::Relaxed),
                );
                let dt = last_t.elapsed().as_secs_f64();
                let sample = Sample {
                    t_s: started.elapsed().as_secs_f64(),
                    records_per_s: (records - last_records) as f64 / dt,
                    mb_per_s: (bytes - last_bytes) as f64 / MB / dt,
                };
                samples.push(sample);
                match &bar {
                    Some(bar) => {
                        bar.set_position(records);
                        bar.set_message(format!(
                            "{:.0} records/s, {:.1} MB/s",
                            sample.records_per_s, sample.mb_per_s
                        ));
                    }
                    None => eprintln!(
                        "[{:6.1}s] {records}/{total} records, {:.0} records/s, {:.1} MB/s",
                        sample.t_s, sample.records_per_s, sample.mb_per_s
                    ),
                }
                (last_records, last_bytes, last_t) = (records, bytes, Instant::now());
            }
            // The last, partial interval (a run shorter than a second has only this one).
            let (records, bytes) = (
                progress.records.load(Ordering::Relaxed),
                progress.bytes.load(Ordering::Relaxed),
            );
            let dt = last_t.elapsed().as_secs_f64();
            if records > last_records && dt > 0.0 {
                samples.push(Sample {
                    t_s: started.elapsed().as_secs_f64(),
                    records_per_s: (records - last_records) as f64 / dt,
                    mb_per_s: (bytes - last_bytes) as f64 / MB / dt,
                });
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            samples
        })
    };

    let mut handles = Vec::new();
    for topic in names.clone() {
        let args = args.clone();
        let progress = progress.clone();
        let payloads = payloads.clone();
        let threads = args.threads as f64;
        handles.push(std::thread::spawn(move || -> Result<ClientOutcome> {
            match args.client_type {
                ClientType::Producer => {
                    let config =
                        client_config(&args.producer_props, None, Some(&args.bootstrap_server))?;
                    let fixed = args.throughput;
                    let throughput: Box<dyn Fn(Duration) -> f64 + Send> = match dynamic {
                        Some(d) => Box::new(move |t| d.rate_at(t) / threads),
                        None => Box::new(move |_| if fixed > 0.0 { fixed / threads } else { -1.0 }),
                    };
                    let job = ProducerJob {
                        config,
                        topic: topic.clone(),
                        num_records: per_client,
                        payloads,
                        throughput,
                        reporting_interval: Duration::from_secs(3600),
                        print_windows: false,
                        print_metrics: false,
                        transactions: None,
                        key_count: None,
                    };
                    let r = run_job(job, progress)?;
                    Ok(ClientOutcome {
                        topic,
                        summary: r.summary,
                        histogram: r.histogram,
                        errors: r.errors,
                    })
                }
                ClientType::Consumer => {
                    let (summary, histogram) =
                        consume_client(&args, &topic, per_client, &progress)?;
                    Ok(ClientOutcome {
                        topic,
                        summary,
                        histogram,
                        errors: 0,
                    })
                }
            }
        }));
    }
    let mut outcomes = Vec::new();
    let mut failure = None;
    for h in handles {
        match h.join() {
            Ok(Ok(o)) => outcomes.push(o),
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some(anyhow::anyhow!("a client thread panicked")),
        }
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let samples = sampler.join().unwrap_or_default();
    if let Some(e) = failure {
        return Err(e);
    }

    let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let (mut records, mut bytes, mut sum_us, mut max_us, mut errors) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for o in &outcomes {
        histogram.add(&o.histogram).context("merge histograms")?;
        records += o.summary.records;
        bytes += o.summary.bytes;
        sum_us += (o.summary.latency_avg_ms * 1000.0 * o.summary.records as f64) as u64;
        max_us = max_us.max((o.summary.latency_max_ms * 1000.0) as u64);
        errors += o.errors;
    }
    let aggregate = summarize(records, bytes, elapsed, sum_us, max_us, &histogram);
    let kind = args.client_type.name();
    let mut lines = vec![
        format!(
            "{kind} bench: {} clients, {} records of {} bytes, {:.2} s",
            args.threads, records, args.record_size, aggregate.elapsed_s
        ),
        aggregate_line(&aggregate),
    ];
    for (n, o) in outcomes.iter().enumerate() {
        lines.push(format!(
            "client {n} ({}): {:.1} records/sec ({:.2} MB/sec), latency ms p50 {:.2} p99 {:.2} p99.9 {:.2}",
            o.topic, o.summary.records_per_s, o.summary.mb_per_s, o.summary.p50_ms, o.summary.p99_ms, o.summary.p999_ms
        ));
    }
    if args.emit_json {
        // Stdout carries the results alone; the report goes to stderr.
        for l in &lines {
            eprintln!("{l}");
        }
        let mut report = to_json(&args, kind, &aggregate, &outcomes, &samples, errors);
        report["histogram"] = histogram
            .iter_recorded()
            .map(|v| serde_json::json!([v.value_iterated_to(), v.count_at_value()]))
            .collect();
        println!("{report}");
    } else {
        for l in &lines {
            println!("{l}");
        }
    }
    let report = to_json(&args, kind, &aggregate, &outcomes, &samples, errors);
    let title = format!(
        "strata bench: {} {kind} clients, {} B records",
        args.threads, args.record_size
    );
    finish(&args, &report, &title, &samples, &aggregate, errors)
}

/// Writes the results where --json and --svg ask, and fails the run when records were lost
/// (local and multi-host runs alike).
pub(super) fn finish(
    args: &BenchArgs,
    report: &serde_json::Value,
    title: &str,
    samples: &[Sample],
    aggregate: &Summary,
    errors: u64,
) -> Result<()> {
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        super::chart::draw(path, title, samples, aggregate)?;
    }
    if errors > 0 {
        bail!("{errors} records were not acknowledged");
    }
    Ok(())
}

/// The `aggregate:` line of a bench's report.
pub(super) fn aggregate_line(a: &Summary) -> String {
    format!(
        "aggregate: {:.1} records/sec ({:.2} MB/sec), latency ms avg {:.2} max {:.2} p50 {:.2} p95 {:.2} p99 {:.2} p99.9 {:.2}",
        a.records_per_s, a.mb_per_s, a.latency_avg_ms, a.latency_max_ms, a.p50_ms, a.p95_ms, a.p99_ms, a.p999_ms
    )
}

pub(super) fn summary_json(s: &Summary) -> serde_json::Value {
    serde_json::json!({
        "records": s.records,
        "bytes": s.bytes,
        "elapsed_s": s.elapsed_s,
        "records_per_s": s.records_per_s,
        "mb_per_s": s.mb_per_s,
        "latency_ms": {
            "avg": s.latency_avg_ms, "max": s.latency_max_ms,
            "p50": s.p50_ms, "p95": s.p95_ms, "p99": s.p99_ms, "p99.9": s.p999_ms,
        },
    })
}

fn to_json(
    args: &BenchArgs,
    kind: &str,
    aggregate: &Summary,
    outcomes: &[ClientOutcome],
    samples: &[Sample],
    errors: u64,
) -> serde_json::Value {
    serde_json::json!({
        "type": kind,
        "threads": args.threads,
        "record_size": args.record_size,
        "num_records": args.num_records,
        "throughput": args.throughput,
        "dynamic": args.dynamic,
        "group": args.group,
        "errors": errors,
        "aggregate": summary_json(aggregate),
        "clients": outcomes.iter().map(|o| {
            let mut v = summary_json(&o.summary);
            v["topic"] = serde_json::Value::from(o.topic.clone());
            v
        }).collect::<Vec<_>>(),
        "samples": samples_json(samples),
    })
}

/// Throughput samples as the JSON results list them.
pub(super) fn samples_json(samples: &[Sample]) -> serde_json::Value {
    samples
        .iter()
        .map(|s| serde_json::json!({"t_s": s.t_s, "records_per_s": s.records_per_s, "mb_per_s": s.mb_per_s}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_alternates_between_max_and_min() {
        let d = Dynamic::parse("100:1000:10").unwrap();
        assert_eq!(d.rate_at(Duration::from_secs(1)), 1000.0);
        assert_eq!(d.rate_at(Duration::from_secs(6)), 100.0);
        assert_eq!(d.rate_at(Duration::from_secs(11)), 1000.0);
        assert!(Dynamic::parse("5:1").is_err());
        assert!(Dynamic::parse("0:10:1").is_err());
    }
}
