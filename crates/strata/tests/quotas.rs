//! Client quotas: `strata configs --entity-type clients|users` sets producer and consumer byte
//! rates (AlterClientQuotas), DescribeClientQuotas shows them, and librdkafka clients over them
//! are throttled to their rate (within 10%) without errors: the broker answers with
//! throttle_time_ms and mutes the connection for it (KIP-219).

mod common;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

const RATE: f64 = 500_000.0;

fn configs(broker: &BrokerProcess, args: &[&str]) -> (bool, String) {
    let (ok, out, err) = strata_tool("configs", &broker.addr, args);
    (ok, format!("{out}{err}"))
}

/// Bytes per second of the values acknowledged between `from` and the end of the run.
fn steady_rate(acked: &[(Duration, usize)], from: Duration) -> f64 {
    let window: Vec<_> = acked.iter().filter(|(t, _)| *t >= from).collect();
    let bytes: usize = window.iter().map(|(_, b)| b).sum();
    let span = window.last().unwrap().0 - window.first().unwrap().0;
    bytes as f64 / span.as_secs_f64()
}

#[test]
fn producer_and_consumer_are_throttled_to_their_byte_rates() {
    // Two one-second samples: a client's rate is measured over one to two seconds. A rate over
    // sampled windows lets a window's worth through whenever an old sample expires (Kafka's
    // Rate does the same), so the fewer the samples, the smaller those bursts and the closer a
    // ten-second measurement comes to the quota.
    let broker = BrokerProcess::start(&["quota.window.num=2", "quota.window.size.seconds=1"]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "limited", 1, &[]);
    let (ok, out) = configs(
        &broker,
        &[
            "--alter",
            "--entity-type",
            "clients",
            "--entity-name",
            "quota-app",
            "--add-config",
            &format!("producer_byte_rate={RATE}"),
        ],
    );
    assert!(
        ok && out.contains("Completed updating config for client quota-app."),
        "{out}"
    );
    let (ok, out) = configs(
        &broker,
        &[
            "--alter",
            "--entity-type",
            "users",
            "--entity-default",
            "--add-config",
            &format!("consumer_byte_rate={RATE}"),
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = configs(
        &broker,
        &[
            "--describe",
            "--entity-type",
            "clients",
            "--entity-name",
            "quota-app",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(
        out.trim(),
        "Quota configs for client-id 'quota-app' are producer_byte_rate=500000.0"
    );
    let (ok, out) = configs(
        &broker,
        &["--describe", "--entity-type", "users", "--entity-default"],
    );
    assert!(
        ok && out.contains(
            "Quota configs for the default user-principal are consumer_byte_rate=500000.0"
        ),
        "{out}"
    );
    // Kafka's validation: byte rates are whole numbers; an IP takes connection_creation_rate only.
    let (ok, out) = configs(
        &broker,
        &[
            "--alter",
            "--client",
            "x",
            "--add-config",
            "producer_byte_rate=1.5",
        ],
    );
    assert!(!ok && out.contains("InvalidRequest"), "{out}");
    let (ok, out) = configs(
        &broker,
        &[
            "--alter",
            "--ip",
            "10.0.0.1",
            "--add-config",
            "producer_byte_rate=100",
        ],
    );
    assert!(
        !ok && out.contains("Invalid configuration key producer_byte_rate"),
        "{out}"
    );

    // The producer: 1 KiB values as fast as it can for 12 s, in requests of at most 16 KiB.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("client.id", "quota-app")
        .set("linger.ms", "5")
        .set("batch.size", "16384")
        .set("queue.buffering.max.messages", "100000")
        .create()
        .unwrap();
    let value = vec![b'q'; 1024];
    let started = Instant::now();
    let mut acked: Vec<(Duration, usize)> = Vec::new();
    rt.block_on(async {
        let mut pending = VecDeque::new();
        while started.elapsed() < Duration::from_secs(12) || !pending.is_empty() {
            if started.elapsed() < Duration::from_secs(12) {
                pending.push_back(
                    producer
                        .send_result(
                            FutureRecord::<(), _>::to("limited")
                                .partition(0)
                                .payload(&value),
                        )
                        .map_err(|(e, _)| e)
                        .unwrap(),
                );
            }
            if pending.len() >= 2000 || started.elapsed() >= Duration::from_secs(12) {
                let delivered = pending.pop_front().unwrap().await.unwrap();
                delivered
                    .map_err(|(e, _)| e)
                    .expect("a throttled produce failed");
                acked.push((started.elapsed(), value.len()));
            }
        }
    });
    let rate = steady_rate(&acked, Duration::from_secs(2));
    eprintln!("producer: {rate:.0} B/s against a quota of {RATE}");
    assert!(
        (rate - RATE).abs() <= RATE * 0.10,
        "produced at {rate:.0} B/s, quota {RATE}"
    );

    // The consumer (the default user quota applies to ANONYMOUS): reads what was written.
    let total = acked.len();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", "quota-readers")
        .set("auto.offset.reset", "earliest")
        .set("max.partition.fetch.bytes", "65536")
        // Little read ahead, so that what the client reads shows what the broker sends.
        .set("queued.max.messages.kbytes", "128")
        .create()
        .unwrap();
    consumer.subscribe(&["limited"]).unwrap();
    let started = Instant::now();
    let mut read: Vec<(Duration, usize)> = Vec::new();
    while read.len() < total && started.elapsed() < Duration::from_secs(90) {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("a throttled fetch failed");
            read.push((started.elapsed(), m.payload().map_or(0, |p| p.len())));
        }
    }
    assert_eq!(read.len(), total, "not everything was read");
    // Fetches are whole (64 KiB here) and a rate over sampled windows lets a window's worth
    // through each time an old sample expires (Kafka's Rate does the same), so a consumer's
    // rate over ten seconds swings more than a producer's of small requests: 25%.
    let rate = steady_rate(&read, Duration::from_secs(7));
    assert!(
        (rate - RATE).abs() <= RATE * 0.25,
        "consumed at {rate:.0} B/s, quota {RATE}"
    );

    // Removed, the producer runs free again.
    let (ok, out) = configs(
        &broker,
        &[
            "--alter",
            "--entity-type",
            "clients",
            "--entity-name",
            "quota-app",
            "--delete-config",
            "producer_byte_rate",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = configs(&broker, &["--describe", "--entity-type", "clients"]);
    assert!(ok && out.trim().is_empty(), "{out}");
}

/// controller_mutation_rate (KIP-599): partitions created take tokens from a bucket of the
/// rate times the quota window; once it is empty a CreateTopics (v6+) is refused with
/// THROTTLING_QUOTA_EXCEEDED.
#[test]
fn topic_creation_stops_at_the_controller_mutation_rate() {
    let broker = BrokerProcess::start(&[]);
    let (ok, out) = configs(
        &broker,
        &[
            "--alter",
            "--client",
            "strata-cli",
            "--add-config",
            "controller_mutation_rate=1",
        ],
    );
    assert!(ok, "{out}");
    // 1 per second over 11 one-second samples: 11 tokens; 10 + 10 partitions go, the debt
    // refuses the third topic.
    for (topic, allowed) in [("m1", true), ("m2", true), ("m3", false)] {
        let (ok, out, err) = strata_tool(
            "topics",
            &broker.addr,
            &["--create", "--topic", topic, "--partitions", "10"],
        );
        assert_eq!(ok, allowed, "{topic}: {out}{err}");
        if !allowed {
            assert!(err.contains("ThrottlingQuotaExceeded"), "{err}");
        }
    }
}

/// max.connections.per.ip closes a connection over it; max.connections stops accepting until
/// one closes.
#[test]
fn connection_limits_refuse_and_hold_connections() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    // ApiVersions v0 with correlation id 1; Some(bytes read) or None when closed / timed out.
    fn api_versions(s: &mut TcpStream) -> Option<usize> {
        s.write_all(&[0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0, 0])
            .ok()?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).ok()?;
        Some(i32::from_be_bytes(buf) as usize)
    }
    let connect = |addr: &str| {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    };
    let broker = BrokerProcess::start(&["max.connections.per.ip=2"]);
    let mut a = connect(&broker.addr);
    let mut b = connect(&broker.addr);
    assert!(api_versions(&mut a).is_some() && api_versions(&mut b).is_some());
    let mut c = connect(&broker.addr);
    assert!(
        api_versions(&mut c).is_none(),
        "a third connection from one address was served"
    );
    drop(a);
    std::thread::sleep(Duration::from_millis(200));
    let mut d = connect(&broker.addr);
    assert!(api_versions(&mut d).is_some());
    assert!(broker.log().contains("max.connections.per.ip 2"));

    let broker = BrokerProcess::start(&["max.connections=2"]);
    let mut a = connect(&broker.addr);
    let mut b = connect(&broker.addr);
    assert!(api_versions(&mut a).is_some() && api_versions(&mut b).is_some());
    // The third waits in the backlog: not accepted, so its request is not answered...
    let mut c = connect(&broker.addr);
    c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    assert!(
        api_versions(&mut c).is_none(),
        "a connection over max.connections was served"
    );
    // ... until another closes.
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    drop(a);
    let mut size = [0u8; 4];
    c.read_exact(&mut size)
        .expect("served once a connection closed");
}
