//! `strata producer-perf`: kafka-producer-perf-test.sh on librdkafka, so it measures any broker.
//!
//! Each record's latency is the time from `send` to its delivery report (the broker's
//! acknowledgement), recorded in an HDR histogram.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::stats::{self, Stats, Summary, Throttler};

#[derive(Debug, Args, Clone)]
pub struct ProducerPerfArgs {
    /// The topic to produce to.
    #[arg(long)]
    pub topic: String,
    /// Number of records to produce.
    #[arg(long)]
    pub num_records: u64,
    /// Size of each record in bytes (or use --payload-file).
    #[arg(long)]
    pub record_size: Option<usize>,
    /// File of payloads, one per delimiter; records pick payloads at random.
    #[arg(long)]
    pub payload_file: Option<PathBuf>,
    /// Delimiter between payloads in --payload-file.
    #[arg(long, default_value = "\\n")]
    pub payload_delimiter: String,
    /// Records per second at most; -1 means unthrottled.
    #[arg(long, allow_hyphen_values = true)]
    pub throughput: f64,
    /// Producer configs, `key=value` (librdkafka's names, which follow Kafka's).
    #[arg(long, num_args = 1.., value_name = "KEY=VALUE")]
    pub producer_props: Vec<String>,
    /// A file of producer configs in properties format.
    #[arg(long = "producer.config")]
    pub producer_config: Option<PathBuf>,
    /// The broker to connect to; the same as `--producer-props bootstrap.servers=...`.
    #[arg(long)]
    pub bootstrap_server: Option<String>,
    /// Print librdkafka's statistics at the end.
    #[arg(long)]
    pub print_metrics: bool,
    /// Milliseconds between progress lines.
    #[arg(long, default_value_t = 5000)]
    pub reporting_interval: u64,
    /// Produce in transactions with this transactional id (Kafka's flag); with
    /// --transaction-duration-ms alone, Kafka's default id is used.
    #[arg(long)]
    pub transactional_id: Option<String>,
    /// Commit a transaction every this many milliseconds (Kafka's flag).
    #[arg(long)]
    pub transaction_duration_ms: Option<u64>,
    /// Commit a transaction every this many records (a Strata addition: a fixed transaction
    /// size makes runs comparable).
    #[arg(long)]
    pub transaction_records: Option<u64>,
    /// Give records keys, this many distinct ones in turn (a Strata addition, for compacted
    /// topics: record i has key `key-<i mod N>`, zero-padded). Without it records have no key.
    #[arg(long)]
    pub key_count: Option<u64>,
}

/// When a transactional producer commits.
#[derive(Debug, Clone, Copy)]
pub enum TxnEvery {
    Records(u64),
    Duration(Duration),
}

/// The transactional id Kafka's tool uses when only a duration is given.
pub const DEFAULT_TRANSACTIONAL_ID: &str = "performance-producer-default-transactional-id";

impl ProducerPerfArgs {
    /// The transactional id and commit interval, when the run is transactional.
    pub fn transactions(&self) -> Result<Option<(String, TxnEvery)>> {
        let every = match (self.transaction_records, self.transaction_duration_ms) {
            (Some(_), Some(_)) => {
                bail!("--transaction-records and --transaction-duration-ms exclude each other")
            }
            (Some(0), _) | (_, Some(0)) => {
                bail!("a transaction needs at least one record and 1 ms")
            }
            (Some(n), None) => Some(TxnEvery::Records(n)),
            (None, Some(ms)) => Some(TxnEvery::Duration(Duration::from_millis(ms))),
            (None, None) => None,
        };
        Ok(match (every, &self.transactional_id) {
            (Some(every), id) => Some((
                id.clone()
                    .unwrap_or_else(|| DEFAULT_TRANSACTIONAL_ID.to_string()),
                every,
            )),
            // Kafka's tool: an id alone commits every 3 s.
            (None, Some(id)) => Some((id.clone(), TxnEvery::Duration(Duration::from_millis(3000)))),
            (None, None) => None,
        })
    }
}

/// Builds a client config from `--*-props`, a properties file and a bootstrap address.
pub fn client_config(
    props: &[String],
    file: Option<&PathBuf>,
    bootstrap: Option<&str>,
) -> Result<ClientConfig> {
    let mut config = ClientConfig::new();
    if let Some(path) = file {
        let f =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        for (k, v) in java_properties::read(std::io::BufReader::new(f))
            .with_context(|| format!("cannot read {}", path.display()))?
        {
            config.set(k, v);
        }
    }
    for p in props {
        let Some((k, v)) = p.split_once('=') else {
            bail!("Invalid property {p:?}: expected key=value")
        };
        config.set(k.trim(), v.trim());
    }
    if let Some(b) = bootstrap {
        config.set("bootstrap.servers", b);
    }
    if config.get("bootstrap.servers").is_none() {
        bail!("Missing required property bootstrap.servers (use --bootstrap-server or --producer-props bootstrap.servers=HOST:PORT)");
    }
    Ok(config)
}

/// Record payloads: one random payload of a fixed size, or many from a file.
#[derive(Debug)]
pub struct Payloads {
    payloads: Vec<Vec<u8>>,
}

impl Payloads {
    pub fn fixed(size: usize) -> Payloads {
        // Random uppercase letters, as Kafka's tool uses.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let payload = (0..size)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                b'A' + (seed % 26) as u8
            })
            .collect();
        Payloads {
            payloads: vec![payload],
        }
    }
    pub fn from_file(path: &PathBuf, delimiter: &str) -> Result<Payloads> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let delimiter = delimiter.replace("\\n", "\n").replace("\\t", "\t");
        let payloads: Vec<Vec<u8>> = text
            .split(delimiter.as_str())
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
            .collect();
        if payloads.is_empty() {
            bail!("File {} contains no payloads", path.display());
        }
        Ok(Payloads { payloads })
    }
    pub fn get(&self, i: u64) -> &[u8] {
        let n = self.payloads.len() as u64;
        let mixed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 17;
        &self.payloads[(mixed % n) as usize]
    }
}

/// Counters that other threads may read while a producer runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
}

struct PerfContext {
    stats: Mutex<Stats>,
    progress: Arc<Progress>,
    print_windows: bool,
    first_error: Mutex<Option<String>>,
    last_statistics: Mutex<Option<String>>,
}

impl ClientContext for PerfContext {
    fn stats_raw(&self, statistics: &[u8]) {
        *self
            .last_statistics
            .lock()
            .unwrap_or_else(|e| e.into_inner()) =
            Some(String::from_utf8_lossy(statistics).into_owned());
    }
}

impl ProducerContext for PerfContext {
    type DeliveryOpaque = Box<(Instant, u32)>;
    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (sent, bytes) = *opaque;
        match result {
            Ok(_) => {
                let line = self
                    .stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record(sent.elapsed(), bytes as u64);
                self.progress.records.fetch_add(1, Ordering::Relaxed);
                self.progress
                    .bytes
                    .fetch_add(bytes as u64, Ordering::Relaxed);
                if let (Some(line), true) = (line, self.print_windows) {
                    println!("{line}");
                }
            }
            Err((e, _)) => {
                self.progress.errors.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
                if first.is_none() {
                    *first = Some(e.to_string());
                }
            }
        }
    }
}

/// One producer client's work.
pub struct ProducerJob {
    pub config: ClientConfig,
    pub topic: String,
    pub num_records: u64,
    pub payloads: Arc<Payloads>,
    /// Records per second at most, or <= 0 for unthrottled; may change over time (bursts).
    pub throughput: Box<dyn Fn(Duration) -> f64 + Send>,
    pub reporting_interval: Duration,
    pub print_windows: bool,
    pub print_metrics: bool,
    /// Produce in transactions of this id, committed this often.
    pub transactions: Option<(String, TxnEvery)>,
    /// Distinct keys records take in turn; None: no keys.
    pub key_count: Option<u64>,
}

/// What a producer client measured.
pub struct ProducerResult {
    pub summary: Summary,
    pub histogram: hdrhistogram::Histogram<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub statistics: Option<String>,
}

/// Waits for every record sent to be acknowledged, polling often. The Rust binding's flush,
/// which a commit calls first, polls in 100 ms steps, which would add up to that to every
/// transaction and measure the binding, not the broker (librdkafka's own blocking flush cannot be
/// used: the binding takes delivery reports as events that only its poll serves). Each round
/// starts with a flush that does not wait, which sends what lingers at once.
fn drain<C: ProducerContext>(producer: &BaseProducer<C>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if producer.flush(Duration::ZERO).is_ok() {
            return;
        }
        producer.poll(Duration::from_millis(1));
    }
}

pub fn run_job(job: ProducerJob, progress: Arc<Progress>) -> Result<ProducerResult> {
    let mut config = job.config.clone();
    if job.print_metrics {
        config.set("statistics.interval.ms", "100");
    }
    let context = PerfContext {
        stats: Mutex::new(Stats::new(job.reporting_interval)),
        progress,
        print_windows: job.print_windows,
        first_error: Mutex::new(None),
        last_statistics: Mutex::new(None),
    };
    if let Some((id, _)) = &job.transactions {
        config.set("transactional.id", id);
    }
    let producer: BaseProducer<PerfContext> = config
        .create_with_context(context)
        .context("cannot create the producer")?;
    let txn_timeout = Duration::from_secs(60);
    let mut txn_started = Instant::now();
    let mut txn_records = 0u64;
    if job.transactions.is_some() {
        producer
            .init_transactions(txn_timeout)
            .context("init_transactions")?;
        producer.begin_transaction().context("begin_transaction")?;
    }
    let start = Instant::now();
    let mut throttler = Throttler::new((job.throughput)(Duration::ZERO));
    let mut throttled_from = 0u64;
    let mut current_rate = (job.throughput)(Duration::ZERO);
    for i in 0..job.num_records {
        let rate = (job.throughput)(start.elapsed());
        if (rate - current_rate).abs() > f64::EPSILON {
            // A new rate (a burst begins or ends): pace from here on.
            current_rate = rate;
            throttler = Throttler::new(rate);
            throttled_from = i;
        }
        throttler.throttle(i - throttled_from);
        let payload = job.payloads.get(i);
        let key = job
            .key_count
            .map(|n| format!("key-{:012}", i % n.max(1)).into_bytes());
        let mut record: BaseRecord<'_, [u8], [u8], _> = BaseRecord::with_opaque_to(
            &job.topic,
            Box::new((Instant::now(), payload.len() as u32)),
        )
        .payload(payload);
        if let Some(key) = &key {
            record = record.key(key);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // The queue drains in librdkafka's threads: serve what is ready and sleep.
                    // (The binding's poll with a timeout re-polls without blocking once less
                    // than a millisecond remains, so a 1 ms poll would spin the core the broker
                    // and librdkafka need, more so the slower the broker: over TLS it took
                    // most of a core.)
                    record = r;
                    producer.poll(Duration::ZERO);
                    std::thread::sleep(Duration::from_micros(500));
                }
                Err((e, _)) => bail!("cannot send: {e}"),
            }
        }
        producer.poll(Duration::ZERO);
        if let Some((_, every)) = &job.transactions {
            txn_records += 1;
            let due = match every {
                TxnEvery::Records(n) => txn_records >= *n,
                TxnEvery::Duration(d) => txn_started.elapsed() >= *d,
            };
            if due && i + 1 < job.num_records {
                drain(&producer, txn_timeout);
                producer
                    .commit_transaction(txn_timeout)
                    .context("commit_transaction")?;
                producer.begin_transaction().context("begin_transaction")?;
                txn_records = 0;
                txn_started = Instant::now();
            }
        }
    }
    if job.transactions.is_some() {
        drain(&producer, txn_timeout);
        producer
            .commit_transaction(txn_timeout)
            .context("commit_transaction")?;
    }
    producer.flush(Duration::from_secs(300)).context("flush")?;
    let context = producer.context();
    if job.print_metrics {
        // Statistics arrive through poll; wait for one that covers the whole run.
        let until = Instant::now() + Duration::from_secs(2);
        *context
            .last_statistics
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        while context
            .last_statistics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
            && Instant::now() < until
        {
            producer.poll(Duration::from_millis(50));
        }
    }
    let result = {
        let stats = context.stats.lock().unwrap_or_else(|e| e.into_inner());
        ProducerResult {
            summary: stats.summary(),
            histogram: stats.histogram.clone(),
            errors: context.progress.errors.load(Ordering::Relaxed),
            first_error: context
                .first_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            statistics: context
                .last_statistics
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    };
    Ok(result)
}

pub fn run(args: ProducerPerfArgs) -> Result<Summary> {
    let payloads = match (&args.payload_file, args.record_size) {
        (Some(path), None) => Payloads::from_file(path, &args.payload_delimiter)?,
        (None, Some(size)) => Payloads::fixed(size),
        _ => bail!("Exactly one of --record-size or --payload-file must be given"),
    };
    let config = client_config(
        &args.producer_props,
        args.producer_config.as_ref(),
        args.bootstrap_server.as_deref(),
    )?;
    let rate = args.throughput;
    let job = ProducerJob {
        config,
        topic: args.topic.clone(),
        num_records: args.num_records,
        payloads: Arc::new(payloads),
        throughput: Box::new(move |_| rate),
        reporting_interval: Duration::from_millis(args.reporting_interval.max(1)),
        print_windows: true,
        print_metrics: args.print_metrics,
        transactions: args.transactions()?,
        key_count: args.key_count,
    };
    let result = run_job(job, Arc::new(Progress::default()))?;
    println!("{}", stats::final_line(&result.summary));
    if result.errors > 0 {
        eprintln!(
            "{} records failed; first error: {}",
            result.errors,
            result.first_error.as_deref().unwrap_or("unknown")
        );
    }
    if args.print_metrics {
        if let Some(s) = &result.statistics {
            println!("{s}");
        }
    }
    if result.errors > 0 {
        bail!(
            "{} of {} records were not acknowledged",
            result.errors,
            args.num_records
        );
    }
    Ok(result.summary)
}
