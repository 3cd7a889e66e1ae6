//! The perf tools against the real broker, with small counts: their output has Kafka's shape,
//! counts add up, percentiles are ordered, JSON parses and the SVG is drawn.

mod common;

use common::*;
use rdkafka::consumer::Consumer;

fn strata(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "strata {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn numbers_after(line: &str, markers: &[&str]) -> Vec<f64> {
    markers
        .iter()
        .map(|m| {
            let before = line
                .split(m)
                .next()
                .unwrap_or_else(|| panic!("{m} missing in {line}"));
            before
                .rsplit([' ', '(', ','])
                .find(|s| !s.is_empty())
                .unwrap()
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("no number before {m} in {line}"))
        })
        .collect()
}

#[test]
fn producer_perf_then_consumer_perf() {
    let broker = BrokerProcess::start(&[]);
    let out = strata(&[
        "producer-perf",
        "--topic",
        "perf",
        "--num-records",
        "20000",
        "--record-size",
        "100",
        "--throughput",
        "-1",
        "--bootstrap-server",
        &broker.addr,
        "--producer-props",
        "acks=1",
        "linger.ms=5",
        "--reporting-interval",
        "100",
    ]);
    let last = out.lines().last().unwrap();
    assert!(last.starts_with("20000 records sent, "), "{out}");
    let p = numbers_after(last, &[" ms 50th", " ms 95th", " ms 99th", " ms 99.9th"]);
    assert!(p[0] <= p[1] && p[1] <= p[2] && p[2] <= p[3], "{last}");
    let (avg, max) = (
        numbers_after(last, &[" ms avg latency"])[0],
        numbers_after(last, &[" ms max latency"])[0],
    );
    assert!(avg <= max, "{last}");
    let mb = numbers_after(last, &[" MB/sec)"])[0];
    assert!(mb > 0.0);
    // The periodic lines have Kafka's shape too.
    for line in out.lines().take(out.lines().count() - 1) {
        assert!(
            line.contains(" records/sec (") && line.ends_with(" ms max latency."),
            "{line}"
        );
    }

    let out = strata(&[
        "consumer-perf",
        "--bootstrap-server",
        &broker.addr,
        "--topic",
        "perf",
        "--messages",
        "20000",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec");
    let row: Vec<&str> = lines[1].split(", ").collect();
    assert_eq!(row.len(), 10, "{}", lines[1]);
    assert_eq!(row[4], "20000");
    let mb: f64 = row[2].parse().unwrap();
    assert!((mb - 20000.0 * 100.0 / 1048576.0).abs() < 0.01, "{mb}");

    // As a member of a consumer group (subscribe, the broker's coordinator assigns).
    let out = strata(&[
        "consumer-perf",
        "--bootstrap-server",
        &broker.addr,
        "--topic",
        "perf",
        "--messages",
        "20000",
        "--group",
        "perf-group",
    ]);
    let row: Vec<String> = out
        .lines()
        .nth(1)
        .unwrap()
        .split(", ")
        .map(String::from)
        .collect();
    assert_eq!(row[4], "20000", "{out}");
    let summary_rebalance: u64 = row[6].parse().unwrap();
    assert!(summary_rebalance > 0, "joining a group takes time: {out}");
    // Detailed rows count the same join as rebalance time of the first window, not as fetch
    // time, as the summary does.
    let out = strata(&[
        "consumer-perf",
        "--bootstrap-server",
        &broker.addr,
        "--topic",
        "perf",
        "--messages",
        "20000",
        "--group",
        "perf-group-detailed",
        "--show-detailed-stats",
        "--reporting-interval",
        "1",
    ]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split(", ").collect())
        .collect();
    assert!(!rows.is_empty(), "{out}");
    let first_rebalance: u64 = rows[0][6].parse().unwrap();
    assert!(
        first_rebalance > 0,
        "the first row holds the join (the summary said {summary_rebalance} ms): {out}"
    );
    assert!(rows.iter().skip(1).all(|r| r[6] == "0"), "{out}");
    // Several bench consumers in one group share the records of a shared topic.
    let json = broker.dir.path().join("group-bench.json");
    strata(&[
        "bench",
        "--bootstrap-server",
        &broker.addr,
        "--type",
        "consumer",
        "--threads",
        "2",
        "--shared-topic",
        "perf",
        "--group",
        "bench-group",
        "--num-records",
        "20000",
        "--json",
        json.to_str().unwrap(),
    ]);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let clients = report["clients"].as_array().unwrap();
    let total: u64 = clients.iter().map(|c| c["records"].as_u64().unwrap()).sum();
    assert!(total >= 20000, "{report}");

    // A payload file and a throttle.
    let payloads = broker.dir.path().join("payloads.txt");
    std::fs::write(&payloads, "alpha\nbeta\ngamma\n").unwrap();
    let out = strata(&[
        "producer-perf",
        "--topic",
        "payloads",
        "--num-records",
        "300",
        "--payload-file",
        payloads.to_str().unwrap(),
        "--throughput",
        "1000",
        "--producer-props",
        &format!("bootstrap.servers={}", broker.addr),
        "--print-metrics",
    ]);
    assert!(
        out.lines().any(|l| l.starts_with("300 records sent, ")),
        "{out}"
    );
    assert!(
        out.contains("\"msg_cnt\""),
        "librdkafka statistics are printed with --print-metrics"
    );
}

#[test]
fn bench_writes_json_and_svg() {
    let broker = BrokerProcess::start(&[]);
    let json = broker.dir.path().join("bench.json");
    let svg = broker.dir.path().join("bench.svg");
    let out = strata(&[
        "bench",
        "--bootstrap-server",
        &broker.addr,
        "--threads",
        "3",
        "--type",
        "producer",
        "--num-records",
        "30000",
        "--record-size",
        "200",
        "--throughput",
        "20000",
        "--json",
        json.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(out.contains("aggregate: "), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("client ")).count(),
        3,
        "{out}"
    );
    let data: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(data["aggregate"]["records"], 30000);
    assert_eq!(data["clients"].as_array().unwrap().len(), 3);
    let l = &data["aggregate"]["latency_ms"];
    assert!(
        l["p50"].as_f64() <= l["p95"].as_f64()
            && l["p95"].as_f64() <= l["p99"].as_f64()
            && l["p99"].as_f64() <= l["p99.9"].as_f64()
    );
    assert!(
        !data["samples"].as_array().unwrap().is_empty(),
        "a 1.5 s throttled run has throughput samples"
    );
    let drawing = std::fs::read_to_string(&svg).unwrap();
    assert!(
        drawing.starts_with("<svg")
            && drawing.contains("throughput over time")
            && drawing.contains("latency percentiles")
    );

    // Consumers read what the producers wrote, one topic each.
    let out = strata(&[
        "bench",
        "--bootstrap-server",
        &broker.addr,
        "--threads",
        "3",
        "--type",
        "consumer",
        "--num-records",
        "30000",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.contains("consumer bench: 3 clients, 30000 records"),
        "{out}"
    );
}

#[test]
fn a_run_shorter_than_a_second_still_draws_its_throughput() {
    let broker = BrokerProcess::start(&[]);
    let json = broker.dir.path().join("short.json");
    let svg = broker.dir.path().join("short.svg");
    let out = strata(&[
        "bench",
        "--bootstrap-server",
        &broker.addr,
        "--threads",
        "1",
        "--type",
        "producer",
        "--num-records",
        "2000",
        "--record-size",
        "100",
        "--json",
        json.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(out.contains("aggregate: "), "{out}");
    let data: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(
        !data["samples"].as_array().unwrap().is_empty(),
        "the last, partial second is a sample: {data}"
    );
    let drawing = std::fs::read_to_string(&svg).unwrap();
    let line = drawing
        .lines()
        .find(|l| l.contains("<polyline") && l.contains("stroke=\"#0000FF\""))
        .unwrap_or_else(|| panic!("no throughput line in {drawing}"));
    let points = line
        .split("points=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(points.split_whitespace().count() >= 2, "{line}");
}

/// `strata bench --hosts` with an "ssh" that runs the command here: two hosts' benches, merged.
#[test]
fn bench_on_several_hosts_reports_them_together() {
    let broker = BrokerProcess::start(&[]);
    let fake_ssh = broker.dir.path().join("fake-ssh");
    // `fake-ssh HOST COMMAND`: runs COMMAND here, as ssh would run it on HOST.
    std::fs::write(&fake_ssh, "#!/bin/sh\nshift\nexec sh -c \"$*\"\n").unwrap();
    std::fs::set_permissions(
        &fake_ssh,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let json = broker.dir.path().join("hosts.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .env("STRATA_BENCH_SSH", &fake_ssh)
        .args([
            "bench",
            "--bootstrap-server",
            &broker.addr,
            "--hosts",
            "alpha,beta",
            "--remote-strata",
            env!("CARGO_BIN_EXE_strata"),
            "--threads",
            "2",
            "--num-records",
            "4000",
            "--record-size",
            "100",
            "--producer-props",
            "linger.ms=1",
            "--json",
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("producer bench on 2 hosts: 2 clients each, 8000 records"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("host alpha: ")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("host beta: ")), "{text}");
    let data: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(data["aggregate"]["records"], 8000);
    assert_eq!(data["hosts"].as_array().unwrap().len(), 2);
    let l = &data["aggregate"]["latency_ms"];
    assert!(l["p50"].as_f64() <= l["p99"].as_f64() && l["p99"].as_f64() > Some(0.0));
    // Each host wrote its own topics: bench-h0-*, bench-h1-*, 2000 records each.
    let consumer = consumer(&broker.addr, &[]);
    for topic in ["bench-h0-0", "bench-h0-1", "bench-h1-0", "bench-h1-1"] {
        assert_eq!(
            consumer
                .fetch_watermarks(topic, 0, std::time::Duration::from_secs(5))
                .unwrap(),
            (0, 2000),
            "{topic}"
        );
    }
}
