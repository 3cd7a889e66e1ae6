//! `strata bench --hosts`: the same bench on several client machines at once, over ssh, reported
//! as one: one client machine cannot load a broker that is faster than it.
//!
//! Each host runs `strata bench` with the options given here (topics prefixed by the host's
//! index unless they share one) and prints its results as JSON with its latency histogram; the
//! histograms are merged exactly, throughput samples are added second by second, and the
//! results, JSON and chart are those of all hosts together.

use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;

use super::bench::{aggregate_line, finish, samples_json, summary_json, BenchArgs, Sample};
use super::stats::{summarize, Summary};

/// The `strata bench` command line a host runs.
fn remote_command(args: &BenchArgs, host_index: usize) -> Vec<String> {
    let mut cli = vec![
        args.remote_strata.clone(),
        "bench".into(),
        "--emit-json".into(),
        "--bootstrap-server".into(),
        args.bootstrap_server.clone(),
        "--threads".into(),
        args.threads.to_string(),
        "--type".into(),
        args.client_type.name().into(),
        "--num-records".into(),
        args.num_records.to_string(),
        "--record-size".into(),
        args.record_size.to_string(),
        "--throughput".into(),
        args.throughput.to_string(),
        "--partitions".into(),
        args.partitions.to_string(),
    ];
    match &args.shared_topic {
        Some(t) => cli.extend(["--shared-topic".into(), t.clone()]),
        None => cli.extend([
            "--topic-prefix".into(),
            format!("{}-h{host_index}", args.topic_prefix),
        ]),
    }
    for (flag, value) in [("--dynamic", &args.dynamic), ("--group", &args.group)] {
        if let Some(v) = value {
            cli.extend([flag.to_string(), v.clone()]);
        }
    }
    for (flag, props) in [
        ("--producer-props", &args.producer_props),
        ("--consumer-props", &args.consumer_props),
    ] {
        if !props.is_empty() {
            cli.push(flag.to_string());
            cli.extend(props.iter().cloned());
        }
    }
    cli
}

/// Quotes `word` for the remote shell (ssh hands the command line to it).
fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// One host's results.
struct HostResult {
    host: String,
    report: serde_json::Value,
}

fn f64_of(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

pub fn run(args: &BenchArgs, hosts: &str) -> Result<()> {
    let hosts: Vec<&str> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    if hosts.is_empty() {
        bail!("--hosts names no host");
    }
    let ssh = std::env::var("STRATA_BENCH_SSH").unwrap_or_else(|_| "ssh".into());
    let ssh: Vec<&str> = ssh.split_whitespace().collect();
    let Some((program, ssh_args)) = ssh.split_first() else {
        bail!("STRATA_BENCH_SSH is empty");
    };
    let mut children = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let command: Vec<String> = remote_command(args, i)
            .iter()
            .map(|w| shell_quote(w))
            .collect();
        eprintln!("[{host}] {}", command.join(" "));
        let child = Command::new(program)
            .args(ssh_args)
            .arg(host)
            .arg(command.join(" "))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot run {program} for host {host}"))?;
        children.push((host.to_string(), child));
    }
    let mut results = Vec::new();
    let mut failed = Vec::new();
    for (host, child) in children {
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        match serde_json::from_str::<serde_json::Value>(text.trim()) {
            Ok(report) if out.status.success() => results.push(HostResult { host, report }),
            _ => failed.push(format!("{host} ({})", out.status)),
        }
    }
    if !failed.is_empty() {
        bail!("the bench failed on {}", failed.join(", "));
    }

    // Together: records and bytes add up, the run lasts as long as the slowest host, latencies
    // are the merged histograms', throughput samples add up second by second.
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let (mut records, mut bytes, mut sum_us, mut max_us, mut elapsed_s, mut errors) =
        (0u64, 0u64, 0f64, 0u64, 0f64, 0u64);
    let mut per_second: Vec<(f64, f64)> = Vec::new();
    for r in &results {
        let a = &r.report["aggregate"];
        let n = a["records"].as_u64().unwrap_or(0);
        records += n;
        bytes += a["bytes"].as_u64().unwrap_or(0);
        sum_us += f64_of(&a["latency_ms"]["avg"]) * 1000.0 * n as f64;
        max_us = max_us.max((f64_of(&a["latency_ms"]["max"]) * 1000.0) as u64);
        elapsed_s = elapsed_s.max(f64_of(&a["elapsed_s"]));
        errors += r.report["errors"].as_u64().unwrap_or(0);
        for pair in r.report["histogram"].as_array().into_iter().flatten() {
            let (v, c) = (pair[0].as_u64().unwrap_or(0), pair[1].as_u64().unwrap_or(0));
            histogram
                .record_n(v.clamp(1, 3_600_000_000), c)
                .context("merge histograms")?;
        }
        for s in r.report["samples"].as_array().into_iter().flatten() {
            let second = f64_of(&s["t_s"]).ceil().max(1.0) as usize - 1;
            if per_second.len() <= second {
                per_second.resize(second + 1, (0.0, 0.0));
            }
            per_second[second].0 += f64_of(&s["records_per_s"]);
            per_second[second].1 += f64_of(&s["mb_per_s"]);
        }
    }
    let aggregate: Summary = summarize(
        records,
        bytes,
        std::time::Duration::from_secs_f64(elapsed_s),
        sum_us as u64,
        max_us,
        &histogram,
    );
    let samples: Vec<Sample> = per_second
        .iter()
        .enumerate()
        .map(|(i, (r, m))| Sample {
            t_s: (i + 1) as f64,
            records_per_s: *r,
            mb_per_s: *m,
        })
        .collect();
    let kind = args.client_type.name();
    println!(
        "{kind} bench on {} hosts: {} clients each, {records} records of {} bytes, {:.2} s",
        results.len(),
        args.threads,
        args.record_size,
        aggregate.elapsed_s
    );
    println!("{}", aggregate_line(&aggregate));
    for r in &results {
        let a = &r.report["aggregate"];
        println!(
            "host {}: {:.1} records/sec ({:.2} MB/sec), latency ms p50 {:.2} p99 {:.2} p99.9 {:.2}",
            r.host,
            f64_of(&a["records_per_s"]),
            f64_of(&a["mb_per_s"]),
            f64_of(&a["latency_ms"]["p50"]),
            f64_of(&a["latency_ms"]["p99"]),
            f64_of(&a["latency_ms"]["p99.9"])
        );
    }
    let report = serde_json::json!({
        "type": kind,
        "hosts": results.iter().map(|r| {
            let mut v = r.report.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("histogram");
                o.insert("host".into(), serde_json::Value::from(r.host.clone()));
            }
            v
        }).collect::<Vec<_>>(),
        "threads": args.threads,
        "record_size": args.record_size,
        "errors": errors,
        "aggregate": summary_json(&aggregate),
        "samples": samples_json(&samples),
    });
    let title = format!(
        "strata bench: {} hosts x {} {kind} clients, {} B records",
        results.len(),
        args.threads,
        args.record_size
    );
    finish(args, &report, &title, &samples, &aggregate, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_words_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("linger.ms=5"), "linger.ms=5");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
