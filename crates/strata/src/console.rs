//! `strata console-producer` and `strata console-consumer` (kafka-console-producer.sh,
//! kafka-console-consumer.sh), on librdkafka: lines of stdin become records (keys and headers
//! parsed as Kafka's LineMessageReader parses them), records become lines of stdout (formatted as
//! Kafka's DefaultMessageFormatter formats them).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, DeliveryResult, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use crate::perf::producer::client_config;

/// `--property key=value` settings, with Kafka's defaults.
struct Properties(BTreeMap<String, String>);

impl Properties {
    fn parse(raw: &[String]) -> Result<Properties> {
        let mut map = BTreeMap::new();
        for p in raw {
            let Some((k, v)) = p.split_once('=') else {
                bail!("Invalid property {p:?}: expected key=value")
            };
            map.insert(k.trim().to_string(), unescape(v));
        }
        Ok(Properties(map))
    }

    fn get<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.0.get(key).map_or(default, String::as_str)
    }

    fn flag(&self, key: &str, default: bool) -> bool {
        self.0
            .get(key)
            .map_or(default, |v| v.eq_ignore_ascii_case("true"))
    }
}

/// `\t` and `\n` as a shell passes them (`--property key.separator=\t`).
fn unescape(v: &str) -> String {
    v.replace("\\t", "\t").replace("\\n", "\n")
}

#[derive(Debug, Args)]
pub struct ConsoleProducerArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    #[arg(long)]
    pub topic: String,
    /// A file of producer settings.
    #[arg(long = "producer.config", alias = "command-config")]
    pub producer_config: Option<std::path::PathBuf>,
    /// A producer setting, key=value (repeatable).
    #[arg(long = "producer-property")]
    pub producer_property: Vec<String>,
    /// How lines are read: parse.key, key.separator (\t), parse.headers, headers.delimiter (\t),
    /// headers.separator (,), headers.key.separator (:), null.marker.
    #[arg(long)]
    pub property: Vec<String>,
    /// acks: -1 (all, Kafka's default), 0 or 1.
    #[arg(long, default_value = "-1")]
    pub request_required_acks: String,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long)]
    pub compression_codec: Option<String>,
}

struct Deliveries {
    failed: AtomicUsize,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::SeqCst);
            eprintln!("Error when sending message: {e}");
        }
    }
}

/// One line as Kafka's LineMessageReader reads it: (headers, key, value); `null.marker` makes a
/// key or value null.
type Line = (
    Vec<(String, Option<String>)>,
    Option<String>,
    Option<String>,
);

fn parse_line(line: &str, props: &Properties) -> Result<Line> {
    let null = props.0.get("null.marker");
    let nullable = |s: &str| (Some(s) != null.map(String::as_str)).then(|| s.to_string());
    let mut rest = line;
    let mut headers = Vec::new();
    if props.flag("parse.headers", false) {
        let delimiter = props.get("headers.delimiter", "\t");
        let Some((h, r)) = rest.split_once(delimiter) else {
            bail!("No headers delimiter found on line: {line}");
        };
        rest = r;
        for header in h
            .split(props.get("headers.separator", ","))
            .filter(|h| !h.is_empty())
        {
            let (k, v) = match header.split_once(props.get("headers.key.separator", ":")) {
                Some((k, v)) => (k, nullable(v)),
                None => (header, None),
            };
            headers.push((k.to_string(), v));
        }
    }
    let (key, value) = if props.flag("parse.key", false) {
        let separator = props.get("key.separator", "\t");
        let Some((k, v)) = rest.split_once(separator) else {
            bail!("No key separator found on line: {line}");
        };
        (nullable(k), nullable(v))
    } else {
        (None, nullable(rest))
    };
    Ok((headers, key, value))
}

pub fn run_producer(args: ConsoleProducerArgs) -> Result<()> {
    let props = Properties::parse(&args.property)?;
    let mut config = client_config(
        &args.producer_property,
        args.producer_config.as_ref(),
        Some(&args.bootstrap_server),
    )?;
    if config.get("acks").is_none() {
        config.set("acks", &args.request_required_acks);
    }
    if let Some(codec) = &args.compression_codec {
        config.set("compression.codec", codec);
    }
    let producer: BaseProducer<Deliveries> = config
        .create_with_context(Deliveries {
            failed: AtomicUsize::new(0),
        })
        .context("cannot create the producer")?;
    for line in std::io::stdin().lock().lines() {
        let line = line.context("cannot read stdin")?;
        let (headers, key, value) = parse_line(&line, &props)?;
        let mut owned = OwnedHeaders::new();
        for (k, v) in &headers {
            owned = owned.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut record = BaseRecord::<str, str>::to(&args.topic).headers(owned);
        if let Some(k) = key.as_deref() {
            record = record.key(k);
        }
        if let Some(v) = value.as_deref() {
            record = record.payload(v);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, r))
                    if e.rdkafka_error_code()
                        == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                {
                    producer.poll(Duration::from_millis(50));
                    record = r;
                }
                Err((e, _)) => bail!("cannot send: {e}"),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(60))
        .context("records still unsent after 60 s")?;
    let failed = producer.context().failed.load(Ordering::SeqCst);
    if failed > 0 {
        bail!("{failed} records were not delivered");
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct ConsoleConsumerArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    #[arg(long)]
    pub topic: String,
    /// The consumer group (default: a new console-consumer-NNNNN group).
    #[arg(long)]
    pub group: Option<String>,
    /// Start at the earliest offset when the group has none (or with --partition).
    #[arg(long)]
    pub from_beginning: bool,
    /// Read this partition only (no group: assigned, nothing committed).
    #[arg(long)]
    pub partition: Option<i32>,
    /// With --partition: earliest, latest, or an offset.
    #[arg(long)]
    pub offset: Option<String>,
    /// Stop after this many records.
    #[arg(long)]
    pub max_messages: Option<usize>,
    /// Stop when no record came for this long.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// read_committed or read_uncommitted (the default).
    #[arg(long)]
    pub isolation_level: Option<String>,
    /// A file of consumer settings.
    #[arg(long = "consumer.config", alias = "command-config")]
    pub consumer_config: Option<std::path::PathBuf>,
    /// A consumer setting, key=value (repeatable).
    #[arg(long = "consumer-property")]
    pub consumer_property: Vec<String>,
    /// How records are printed: print.timestamp, print.partition, print.offset, print.headers,
    /// print.key, print.value (true), key.separator (\t), line.separator (\n),
    /// headers.separator (,), null.literal (null).
    #[arg(long)]
    pub property: Vec<String>,
}

/// One record as Kafka's DefaultMessageFormatter prints it.
fn format(m: &BorrowedMessage<'_>, props: &Properties) -> String {
    let sep = props.get("key.separator", "\t");
    let null = props.get("null.literal", "null");
    let text = |b: Option<&[u8]>| {
        b.map_or(null.to_string(), |b| {
            String::from_utf8_lossy(b).into_owned()
        })
    };
    let mut out = String::new();
    if props.flag("print.timestamp", false) {
        match m.timestamp() {
            rdkafka::Timestamp::CreateTime(t) => out += &format!("CreateTime:{t}{sep}"),
            rdkafka::Timestamp::LogAppendTime(t) => out += &format!("LogAppendTime:{t}{sep}"),
            rdkafka::Timestamp::NotAvailable => out += &format!("NO_TIMESTAMP{sep}"),
        }
    }
    if props.flag("print.partition", false) {
        out += &format!("Partition:{}{sep}", m.partition());
    }
    if props.flag("print.offset", false) {
        out += &format!("Offset:{}{sep}", m.offset());
    }
    if props.flag("print.headers", false) {
        match m.headers() {
            Some(h) if h.count() > 0 => {
                let all: Vec<String> = h
                    .iter()
                    .map(|h| format!("{}:{}", h.key, text(h.value)))
                    .collect();
                out += &all.join(props.get("headers.separator", ","));
            }
            _ => out += "NO_HEADERS",
        }
        out += sep;
    }
    if props.flag("print.key", false) {
        out += &text(m.key());
        out += sep;
    }
    if props.flag("print.value", true) {
        out += &text(m.payload());
    } else if out.ends_with(sep) {
        out.truncate(out.len() - sep.len());
    }
    out += props.get("line.separator", "\n");
    out
}

pub fn run_consumer(args: ConsoleConsumerArgs) -> Result<()> {
    let props = Properties::parse(&args.property)?;
    let mut config = client_config(
        &args.consumer_property,
        args.consumer_config.as_ref(),
        Some(&args.bootstrap_server),
    )?;
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| format!("console-consumer-{}", std::process::id() % 100_000));
    config
        .set("group.id", &group)
        .set(
            "auto.offset.reset",
            if args.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        )
        .set("enable.partition.eof", "false");
    if let Some(level) = &args.isolation_level {
        config.set("isolation.level", level);
    }
    if args.partition.is_some() {
        // Assigned, as Kafka's tool: no group membership, nothing committed.
        config.set("enable.auto.commit", "false");
    }
    let consumer: BaseConsumer = config.create().context("cannot create the consumer")?;
    match args.partition {
        Some(p) => {
            let offset = match args.offset.as_deref() {
                None if args.from_beginning => Offset::Beginning,
                None | Some("latest") => Offset::End,
                Some("earliest") => Offset::Beginning,
                Some(n) => Offset::Offset(n.parse().with_context(|| format!("bad --offset {n}"))?),
            };
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&args.topic, p, offset)?;
            consumer.assign(&tpl)?;
        }
        None => {
            if args.offset.is_some() {
                bail!("--offset needs --partition");
            }
            consumer.subscribe(&[&args.topic])?;
        }
    }
    let mut stdout = std::io::stdout().lock();
    let mut count = 0usize;
    let mut last = Instant::now();
    let timeout = args.timeout_ms.map(Duration::from_millis);
    while args.max_messages.is_none_or(|max| count < max) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                stdout.write_all(format(&m, &props).as_bytes())?;
                count += 1;
                last = Instant::now();
            }
            Some(Err(e)) => eprintln!("Error: {e}"),
            None => {}
        }
        if timeout.is_some_and(|t| last.elapsed() >= t) {
            break;
        }
    }
    stdout.flush()?;
    eprintln!("Processed a total of {count} messages");
    Ok(())
}
