//! The web console (`http.console.listener`): its JSON state against what clients did, and
//! the page itself in headless Chromium (Debian's `chromium-headless-shell`), which must draw
//! a migration the test starts and a group's lag.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use rdkafka::consumer::{CommitMode, Consumer};

/// GET `path` from the console on `port`.
fn get(port: u16, path: &str) -> (String, String) {
    http_get(&format!("127.0.0.1:{port}"), path)
}

fn state(port: u16) -> serde_json::Value {
    serde_json::from_str(&get(port, "/api/state").1).unwrap()
}

/// The page as Chromium has drawn it after `budget_ms` of its (virtual) time; None when
/// Chromium is not installed.
fn rendered(url: &str, budget_ms: u32, screenshot: Option<&Path>) -> Option<String> {
    let chromium = ["chromium-headless-shell", "chromium"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })?;
    let budget = format!("--virtual-time-budget={budget_ms}");
    let mut args = vec![
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1400,660",
        &budget,
    ];
    let shot;
    if let Some(path) = screenshot {
        shot = format!("--screenshot={}", path.display());
        args.push(&shot);
    } else {
        args.push("--dump-dom");
    }
    args.push(url);
    let out = std::process::Command::new(chromium)
        .args(&args)
        .output()
        .expect("chromium runs");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_console_draws_tiers_segments_a_live_migration_and_group_lag() {
    let tiers = tempfile::tempdir().unwrap();
    let (fast, slow) = (tiers.path().join("fast"), tiers.path().join("slow"));
    let port = free_port();
    let broker = start_with(&[
        "log.channel.type=tiered".to_string(),
        format!("storage.tiers.first.paths={}", fast.display()),
        "storage.tiers.first.sizes=400000".to_string(),
        format!("storage.tiers.second.paths={}", slow.display()),
        "storage.migrate.threshold=-1".to_string(),
        "storage.migrate.interval.ms=50".to_string(),
        format!("http.console.listener=127.0.0.1:{port}"),
    ]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "shown", 1, &[("segment.bytes", "40000")]);
    let producer = producer(&broker.addr, &[("linger.ms", "0"), ("batch.size", "8192")]);
    let records: Vec<KeyValue> = (0..300).map(|_| (None, Some(vec![b's'; 1000]))).collect();
    for chunk in records.chunks(20) {
        produce(&rt, &producer, "shown", 0, chunk);
    }
    let consumer = consumer(&broker.addr, &[("group.id", "watchers")]);
    consume(&consumer, "shown", 0, 0, 100, Duration::from_secs(20));
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();

    let (status, page) = get(port, "/");
    assert!(status.contains("200"), "{status}");
    assert!(page.contains("<title>Strata console</title>"));
    assert!(get(port, "/nothing").0.contains("404"));

    // The state: the segments on the first tier, none moving, the group's lag.
    let s = state(port);
    let shown = s["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "shown")
        .expect("the topic")
        .clone();
    let segments = shown["partitions"][0]["segments"]
        .as_array()
        .unwrap()
        .clone();
    assert!(segments.len() >= 7, "{segments:?}");
    assert!(
        segments.iter().all(|x| x["tier"] == "first"),
        "{segments:?}"
    );
    assert_eq!(s["tiers"][0]["tier"], "first");
    assert_eq!(s["tiers"][0]["capacity_bytes"], 400000);
    assert!(s["policy"]["threshold"].is_null());
    let group = s["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "watchers")
        .expect("the group")
        .clone();
    assert_eq!(group["partitions"][0]["committed"], 100);
    assert_eq!(group["partitions"][0]["lag"], 200);

    // A slow migration, started live: a segment moves for five seconds.
    let (ok, out) = alter_broker_configs(
        &broker.addr,
        "0",
        "storage.migrate.threshold=0.5,storage.migrate.max.bytes.per.sec=8000",
    );
    assert!(ok, "{out}");
    assert!(
        eventually(Duration::from_secs(10), || {
            !state(port)["migrations"]["moving"]
                .as_array()
                .unwrap()
                .is_empty()
        }),
        "{}",
        state(port)
    );
    let moving = state(port)["migrations"]["moving"][0].clone();
    assert_eq!(moving["topic"], "shown");
    assert_eq!(moving["down"], true);

    // The page in Chromium shows the moving segment, the tiers and the group.
    let url = format!("http://127.0.0.1:{port}/");
    let Some(dom) = rendered(&url, 2000, None) else {
        panic!("chromium-headless-shell is not installed (.ci/run installs it)");
    };
    assert!(dom.contains("moving down: first → second tier"), "{dom}");
    assert!(dom.contains("class=\"segment first moving\""), "{dom}");
    assert!(dom.contains("shown-0 @ "), "{dom}");
    assert!(dom.contains("watchers"), "{dom}");
    assert!(dom.contains("Keeps the first tier at 50%"), "{dom}");
    // The README's picture (docs/console.png), once a segment has reached the second tier.
    if let Ok(path) = std::env::var("STRATA_CONSOLE_SCREENSHOT") {
        eventually(Duration::from_secs(20), || {
            state(port)["migrations"]["down"].as_u64() >= Some(1)
        });
        rendered(&url, 2000, Some(Path::new(&path)));
    }
}
