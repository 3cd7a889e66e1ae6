//! The Prometheus endpoint: what it counts (requests, errors, traffic, connections,
//! authentications, waits, flushes, partitions, group lag) against what clients did, and the
//! Grafana dashboard's queries against what it exports.

mod common;
mod security_support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use security_support::*;

/// A broker with a PLAINTEXT and a SASL_PLAINTEXT (PLAIN) listener and the metrics endpoint;
/// the broker, the SASL address and the metrics port.
fn metered_broker(extra: &[String]) -> (BrokerProcess, String, u16) {
    let (sasl_port, metrics_port) = (free_port(), free_port());
    let mut settings = vec![
        format!("listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{sasl_port}"),
        format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}"),
        "connection.failed.authentication.delay.ms=10".to_string(),
        format!("metrics.prometheus.listener=127.0.0.1:{metrics_port}"),
    ];
    settings.extend(extra.iter().cloned());
    (
        start_with(&settings),
        format!("127.0.0.1:{sasl_port}"),
        metrics_port,
    )
}

/// Connects with SASL PLAIN as `user`; whether a produce got through.
fn sasl_produce(rt: &tokio::runtime::Runtime, addr: &str, user: &str, password: &str) -> bool {
    let mut config = sasl_client(addr, "sasl_plaintext", user, password);
    config.set("message.timeout.ms", "3000");
    let producer: FutureProducer = config.create().unwrap();
    rt.block_on(async {
        producer
            .send(
                FutureRecord::<(), _>::to("metered")
                    .partition(0)
                    .payload("x"),
                Duration::from_secs(5),
            )
            .await
    })
    .is_ok()
}

#[test]
fn metrics_count_what_clients_did() {
    let (broker, sasl_addr, port) = metered_broker(&[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "metered", 1, &[("flush.messages", "1")]);
    let producer = producer(&broker.addr, &[("linger.ms", "0")]);
    let records: Vec<KeyValue> = (0..50).map(|_| (None, Some(vec![7u8; 100]))).collect();
    produce(&rt, &producer, "metered", 0, &records);
    let consumer = consumer(&broker.addr, &[("group.id", "metered-group")]);
    assert_eq!(
        consume(&consumer, "metered", 0, 0, 50, Duration::from_secs(20)).len(),
        50
    );
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();

    delete_missing_topic(&rt, &broker.addr);
    // A request that does not decode closes its connection.
    let mut raw = std::net::TcpStream::connect(&broker.addr).unwrap();
    raw.write_all(&[0, 0, 0, 8, 0x7f, 0x7f, 0, 0, 0, 0, 0, 1])
        .unwrap();
    let mut sink = Vec::new();
    let _ = raw.read_to_end(&mut sink);
    // One SASL login that fails, one that succeeds.
    assert!(!sasl_produce(&rt, &sasl_addr, "alice", "wrong"));
    assert!(sasl_produce(&rt, &sasl_addr, "alice", "alice-secret"));

    let v = |body: &str, name: &str, labels: &str| metric_value(body, name, labels);
    let mut body = String::new();
    let settled = eventually(Duration::from_secs(10), || {
        body = scrape_metrics(port);
        v(&body, "strata_topic_records_in_total", "topic=\"metered\"") == 51.0
            && v(
                &body,
                "strata_consumer_group_committed_offset",
                "group=\"metered-group\"",
            ) == 50.0
    });
    assert!(settled, "{body}");
    let bytes_in = v(&body, "strata_topic_bytes_in_total", "topic=\"metered\"");
    assert!(bytes_in > 50.0 * 100.0, "{bytes_in}");
    assert!(
        v(&body, "strata_topic_bytes_out_total", "topic=\"metered\"") >= 50.0 * 100.0,
        "{body}"
    );
    assert_eq!(
        v(
            &body,
            "strata_replication_bytes_out_total",
            "topic=\"metered\""
        ),
        0.0
    );
    // Every produce request was counted and timed, as many as there were.
    let produces = v(&body, "strata_requests_total", "api=\"Produce\"");
    assert!(produces >= 2.0, "{produces}");
    assert_eq!(
        v(
            &body,
            "strata_request_duration_seconds_count",
            "api=\"Produce\""
        ),
        produces
    );
    assert!(
        v(
            &body,
            "strata_request_duration_seconds_sum",
            "api=\"Produce\""
        ) > 0.0
    );
    assert!(v(&body, "strata_requests_total", "api=\"OffsetCommit\"") >= 1.0);
    assert_eq!(
        v(
            &body,
            "strata_request_errors_total",
            "api=\"DeleteTopics\",error=\"UNKNOWN_TOPIC_OR_PARTITION\""
        ),
        1.0,
        "{body}"
    );
    assert_eq!(
        v(
            &body,
            "strata_invalid_requests_total",
            "listener=\"PLAINTEXT\""
        ),
        1.0
    );
    let auth = "listener=\"SASL_PLAINTEXT\",mechanism=\"PLAIN\"";
    assert!(
        v(&body, "strata_failed_authentications_total", auth) >= 1.0,
        "{body}"
    );
    assert!(v(&body, "strata_successful_authentications_total", auth) >= 1.0);
    // The producer, consumer and admin client are still connected.
    assert!(
        v(&body, "strata_connections", "listener=\"PLAINTEXT\"") >= 3.0,
        "{body}"
    );
    let created = v(
        &body,
        "strata_connections_created_total",
        "listener=\"PLAINTEXT\"",
    );
    let closed = v(
        &body,
        "strata_connections_closed_total",
        "listener=\"PLAINTEXT\"",
    );
    assert_eq!(
        created - closed,
        v(&body, "strata_connections", "listener=\"PLAINTEXT\"")
    );
    // flush.messages=1: appends were flushed (none are by default).
    assert!(
        v(&body, "strata_log_flush_duration_seconds_count", "") >= 1.0,
        "{body}"
    );
    assert!(v(&body, "strata_log_flush_duration_seconds_sum", "") > 0.0);
    // The SASL producer's record came after the commit.
    assert_eq!(
        v(
            &body,
            "strata_consumer_group_lag",
            "group=\"metered-group\""
        ),
        1.0
    );
    assert!(v(&body, "strata_leader_partitions", "") >= 1.0);
    assert_eq!(v(&body, "strata_under_replicated_partitions", ""), 0.0);
    assert_eq!(v(&body, "strata_active_controller", ""), 1.0);

    // Ten more records: the group lags by eleven.
    produce(&rt, &producer, "metered", 0, &records[..10]);
    let lagging = eventually(Duration::from_secs(10), || {
        body = scrape_metrics(port);
        v(
            &body,
            "strata_consumer_group_lag",
            "group=\"metered-group\"",
        ) == 11.0
    });
    assert!(lagging, "{body}");

    // A consumer polling an empty partition has its fetch waiting in the purgatory.
    let waiting = consumer_at_end(&broker.addr);
    let seen = eventually(Duration::from_secs(10), || {
        let _ = waiting.poll(Duration::from_millis(100));
        v(
            &scrape_metrics(port),
            "strata_purgatory_size",
            "operation=\"Fetch\"",
        ) >= 1.0
    });
    assert!(seen, "{}", scrape_metrics(port));
}

/// One error the broker answers with: deleting a topic that does not exist.
fn delete_missing_topic(rt: &tokio::runtime::Runtime, addr: &str) {
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .unwrap();
    let deleted = rt
        .block_on(admin.delete_topics(&["no-such-topic"], &AdminOptions::new()))
        .unwrap();
    assert!(deleted[0].is_err());
}

/// A consumer assigned the end of `metered`, long-polling with a 2 s wait.
fn consumer_at_end(addr: &str) -> rdkafka::consumer::BaseConsumer {
    let c = consumer(addr, &[("fetch.wait.max.ms", "2000")]);
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("metered", 0, rdkafka::Offset::End)
        .unwrap();
    c.assign(&tpl).unwrap();
    c
}

/// The metric names a PromQL expression reads (`strata_...`, histogram suffixes kept).
fn metric_names(expr: &str) -> Vec<String> {
    regex::Regex::new(r"strata_[a-z0-9_]+")
        .unwrap()
        .find_iter(expr)
        .map(|m| m.as_str().to_string())
        .collect()
}

fn exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn every_grafana_query_names_a_metric_the_broker_exports() {
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../../docs/grafana/strata.json")).unwrap();
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 30, "{} queries", queries.len());
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] != "row" {
            assert!(
                !panel["targets"].as_array().unwrap().is_empty(),
                "{} has no query",
                panel["title"]
            );
        }
    }

    // A tiered broker whose first tier migrates, with a SASL listener, traffic, a group, an
    // error; and a pmem broker, whose pool the other channels do not have.
    let tiers = tempfile::tempdir().unwrap();
    let (fast, slow) = (tiers.path().join("fast"), tiers.path().join("slow"));
    let (broker, _, port) = metered_broker(&[
        "log.channel.type=tiered".to_string(),
        format!("storage.tiers.first.paths={}", fast.display()),
        "storage.tiers.first.sizes=400000".to_string(),
        format!("storage.tiers.second.paths={}", slow.display()),
        "storage.migrate.threshold=0.5".to_string(),
        "storage.migrate.interval.ms=50".to_string(),
    ]);
    let rt = runtime();
    create_topic(
        &rt,
        &broker.addr,
        "metered",
        1,
        &[("segment.bytes", "40000")],
    );
    delete_missing_topic(&rt, &broker.addr);
    let producer = producer(&broker.addr, &[("linger.ms", "0"), ("batch.size", "8192")]);
    let records: Vec<KeyValue> = (0..400).map(|_| (None, Some(vec![1u8; 1000]))).collect();
    produce(&rt, &producer, "metered", 0, &records);
    let consumer = consumer(&broker.addr, &[("group.id", "dashboard")]);
    consume(&consumer, "metered", 0, 0, 10, Duration::from_secs(20));
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();
    let pmem = tempfile::tempdir().unwrap();
    let (_pmem_broker, _, pmem_port) = metered_broker(&[
        "log.channel.type=pmem".to_string(),
        format!("storage.tiers.first.paths={}", pmem.path().display()),
        "storage.tiers.first.sizes=4000000".to_string(),
        "log.segment.bytes=100000".to_string(),
    ]);

    let mut missing = BTreeSet::new();
    let complete = eventually(Duration::from_secs(20), || {
        let body = scrape_metrics(port) + &scrape_metrics(pmem_port);
        let exported: BTreeSet<&str> = body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        missing = queries
            .iter()
            .flat_map(|q| metric_names(q))
            .filter(|name| !exported.contains(name.as_str()))
            .collect();
        missing.is_empty()
    });
    assert!(
        complete,
        "the dashboard reads metrics the broker does not export: {missing:?}"
    );
}
