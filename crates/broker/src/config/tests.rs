//! Parsing the broker config: keys, values, defaults, listeners, tiers.

use super::*;
use strata_storage::tier::TierType;

fn cfg(pairs: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
    BrokerConfig::from_map(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[test]
fn defaults_serve_on_localhost_9092_with_data_dir() {
    let c = cfg(&[]).unwrap();
    assert_eq!(c.listeners[0].bind.port, 9092);
    assert_eq!(c.listeners[0].bind.host, "127.0.0.1");
    assert_eq!(c.log_dirs, vec![PathBuf::from("./data")]);
    assert_eq!(c.log_config(&BTreeMap::new()).retention_ms, 168 * 3_600_000);
}

#[test]
fn invalid_value_names_key_and_value() {
    let e = cfg(&[("num.partitions", "zero")]).unwrap_err().to_string();
    assert!(e.contains("num.partitions") && e.contains("zero"), "{e}");
    let e = cfg(&[("log.segment.bytes", "10")]).unwrap_err().to_string();
    assert!(e.contains("log.segment.bytes") && e.contains("10"), "{e}");
    let e = cfg(&[("listeners", "garbage")]).unwrap_err().to_string();
    assert!(e.contains("listeners") && e.contains("garbage"), "{e}");
}

#[test]
fn retention_precedence_is_ms_then_minutes_then_hours() {
    let c = cfg(&[("log.retention.hours", "1"), ("log.retention.minutes", "2")]).unwrap();
    assert_eq!(c.log_config(&BTreeMap::new()).retention_ms, 120_000);
    let c = cfg(&[("log.retention.minutes", "2"), ("log.retention.ms", "5")]).unwrap();
    assert_eq!(c.log_config(&BTreeMap::new()).retention_ms, 5);
}

#[test]
fn topic_override_beats_broker_default() {
    let c = cfg(&[("log.segment.bytes", "2048")]).unwrap();
    let mut o = BTreeMap::new();
    assert_eq!(c.log_config(&o).segment_bytes, 2048);
    o.insert("segment.bytes".to_string(), "4096".to_string());
    assert_eq!(c.log_config(&o).segment_bytes, 4096);
}

#[test]
fn topic_config_validation() {
    assert!(validate_topic_config("retention.ms", "-1").is_ok());
    assert!(validate_topic_config("retention.ms", "-2").is_err());
    assert!(validate_topic_config("no.such.key", "1").is_err());
    assert!(validate_topic_config("message.timestamp.type", "LogAppendTime").is_ok());
    assert!(validate_topic_config("message.timestamp.type", "Now").is_err());
}

fn tiered(extra: &[(&str, String)]) -> Result<BrokerConfig, ConfigError> {
    let mut pairs: Vec<(String, String)> = vec![("log.channel.type".into(), "tiered".into())];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    BrokerConfig::from_map(pairs.into_iter().collect())
}

#[test]
fn tier_settings_are_parsed_with_pafkas_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("pmem0"),
        dir.path().join("pmem1"),
        dir.path().join("hdd"),
    );
    let c = tiered(&[
        (
            "storage.tiers.first.paths",
            format!("{},{}", a.display(), b.display()),
        ),
        ("storage.tiers.first.sizes", "1000000,2000000".into()),
        ("storage.tiers.second.paths", c.display().to_string()),
    ])
    .unwrap();
    let t = &c.tiers;
    assert_eq!(t.channel, ChannelType::Tiered);
    let first = t.first.as_ref().unwrap();
    assert_eq!(first.kind, TierType::Pmem);
    assert_eq!(
        first
            .dirs
            .iter()
            .map(|d| d.capacity_bytes)
            .collect::<Vec<_>>(),
        vec![1_000_000, 2_000_000]
    );
    assert!(first.dirs[0].path.exists(), "tier directories are created");
    assert_eq!(t.second.as_ref().unwrap().kind, TierType::Hdd);
    assert_eq!(t.migrate_threshold, Some(0.5));
    assert_eq!(t.migrate_threads, 1);
    assert_eq!(t.pmem_pool_ratio, 0.8);
    assert!(!t.preallocate);
    assert_eq!(cfg(&[]).unwrap().tiers.channel, ChannelType::File);
}

#[test]
fn a_mistyped_key_gets_the_key_it_was_meant_to_be() {
    assert_eq!(
        did_you_mean("log.retension.hours"),
        Some("log.retention.hours")
    );
    assert_eq!(did_you_mean("num.partition"), Some("num.partitions"));
    assert_eq!(
        did_you_mean("storage.tiers.frist.paths"),
        Some("storage.tiers.first.paths")
    );
    assert_eq!(did_you_mean("no.such.key"), None);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}

#[test]
fn the_pmem_channel_takes_a_single_tier_type() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("pmem").display().to_string();
    let pmem = |types: &str| {
        BrokerConfig::from_map(
            [
                ("log.channel.type", "pmem"),
                ("storage.tiers.first.paths", first.as_str()),
                ("storage.tiers.types", types),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        )
    };
    let one = pmem("PMEM").unwrap();
    assert_eq!(one.tiers.first.unwrap().kind, TierType::Pmem);
    assert_eq!(
        pmem("SSD,HDD").unwrap().tiers.first.unwrap().kind,
        TierType::Ssd
    );
    assert!(pmem("PMEM,HDD,SSD").is_err());
    // The tiered channel still needs both.
    let e = tiered(&[
        ("storage.tiers.first.paths", first.clone()),
        ("storage.tiers.second.paths", first.clone() + "2"),
        ("storage.tiers.types", "PMEM".into()),
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("expected two types"), "{e}");
}

#[test]
fn bad_tier_settings_name_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("fast").display().to_string();
    let second = dir.path().join("slow").display().to_string();
    let base = |extra: &[(&str, &str)]| {
        let mut v: Vec<(&str, String)> = vec![
            ("storage.tiers.first.paths", first.clone()),
            ("storage.tiers.second.paths", second.clone()),
        ];
        v.extend(extra.iter().map(|(k, val)| (*k, val.to_string())));
        tiered(&v)
    };
    let cases: &[(&str, &str)] = &[
        ("storage.migrate.threshold", "1.5"),
        ("storage.migrate.threshold", "0"),
        ("storage.tiers.first.sizes", "10,20"),
        ("storage.tiers.first.sizes", "0"),
        ("storage.tiers.types", "PMEM,TAPE"),
        ("storage.migrate.threads", "0"),
        ("storage.migrate.hysteresis", "0.7"),
        ("log.pmem.pool.ratio", "2"),
        ("log.channel.type", "cloud"),
    ];
    for (key, value) in cases {
        let e = base(&[(key, value)]).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains(value), "{key}={value}: {e}");
    }
    assert!(base(&[("storage.migrate.threshold", "-1")])
        .unwrap()
        .tiers
        .migrate_threshold
        .is_none());
    let e = tiered(&[
        ("storage.tiers.first.paths", first.clone()),
        ("storage.tiers.second.paths", first.clone()),
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("more than once"), "{e}");
    let e = tiered(&[("storage.tiers.first.paths", first.clone())])
        .unwrap_err()
        .to_string();
    assert!(e.contains("storage.tiers.second.paths"), "{e}");
    let e = tiered(&[]).unwrap_err().to_string();
    assert!(e.contains("storage.tiers.first.paths"), "{e}");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let e = tiered(&[
        ("storage.tiers.first.paths", file.display().to_string()),
        ("storage.tiers.second.paths", second.clone()),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("storage.tiers.first.paths") && e.contains("a-file"),
        "{e}"
    );
}
