//! The README's examples say what they show: checks of its commands against the broker's own
//! configuration rules, so that an example that cannot show what its text promises fails here.

use strata_broker::BrokerConfig;

const README: &str = include_str!("../../../README.md");

/// The shell code blocks of the README, each with its line continuations joined.
fn shell_blocks() -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in README.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```sh") => current = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.extend(current.take()),
            (Some(block), l) => {
                block.push_str(l.trim_end_matches('\\'));
                if !l.ends_with('\\') {
                    block.push('\n');
                }
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The value after `flag` in a command line.
fn flag<'a>(command: &'a str, flag: &str) -> Option<&'a str> {
    let mut words = command.split_whitespace();
    words.find(|w| *w == flag)?;
    words.next()
}

#[test]
fn the_tiered_example_writes_enough_to_make_segments_move() {
    let block = shell_blocks()
        .into_iter()
        .find(|b| b.contains("log.channel.type=tiered") && b.contains("producer-perf"))
        .expect("the README has a tiered example with a producer");
    let server = block
        .lines()
        .find(|l| l.contains(" server "))
        .expect("the example starts a server");
    let producer = block
        .lines()
        .find(|l| l.contains("producer-perf"))
        .expect("the example runs producer-perf");
    // The broker's own reading of the example's settings (tier paths moved to a scratch dir).
    let scratch = tempfile::tempdir().unwrap();
    let overrides: Vec<String> = server
        .split("--override")
        .skip(1)
        .map(|o| o.trim().to_string())
        .map(|o| match o.split_once('=') {
            Some((key, _)) if key.ends_with(".paths") => {
                format!("{key}={}", scratch.path().join(key).display())
            }
            _ => o,
        })
        .collect();
    let config = BrokerConfig::load(None, &overrides).expect("the example's settings are valid");
    let first = config.tiers.first.as_ref().expect("a first tier");
    let capacity: u64 = first.dirs.iter().map(|d| d.capacity_bytes).sum();
    let threshold = config.tiers.migrate_threshold.expect("migration is on");
    let band_top = threshold + config.tiers.migrate_hysteresis;
    let records: u64 = flag(producer, "--num-records").unwrap().parse().unwrap();
    let size: u64 = flag(producer, "--record-size").unwrap().parse().unwrap();
    let written = records * size;
    // Segments move down only once usage passes the top of the band, by at least a segment.
    assert!(
        written as f64
            > band_top * capacity as f64
                + config.log_config(&Default::default()).segment_bytes as f64,
        "the example writes {written} bytes into a first tier of {capacity}: nothing moves \
         below {:.0}% ({} bytes)",
        band_top * 100.0,
        (band_top * capacity as f64) as u64
    );
    assert!(
        written < capacity,
        "the example overfills the first tier ({written} of {capacity} bytes)"
    );
}

#[test]
fn the_readme_commands_name_a_binary_that_exists() {
    // Every `strata ...` command is explained: the README says where the binary is.
    assert!(README.contains("target/release/strata"));
    for block in shell_blocks() {
        for line in block
            .lines()
            .filter(|l| l.trim_start().starts_with("strata "))
        {
            let command = line.split_whitespace().nth(1).unwrap_or("");
            // Options of the default command (the server) need no subcommand.
            if command.starts_with('-') {
                continue;
            }
            let known = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
                .args([command, "--help"])
                .output()
                .unwrap()
                .status
                .success();
            assert!(known, "unknown command in the README: {line}");
        }
    }
}

#[test]
fn strata_without_a_command_runs_the_broker_with_its_options() {
    use std::io::BufRead;
    let data = tempfile::tempdir().unwrap();
    let mut broker = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "--override",
            "listeners=PLAINTEXT://127.0.0.1:0",
            "--override",
            &format!("log.dirs={}", data.path().display()),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(broker.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = broker.kill();
    let _ = broker.wait();
    assert!(line.starts_with("listening on 127.0.0.1:"), "{line:?}");
    assert!(
        data.path().join(".lock").exists(),
        "the broker used the overridden log.dirs"
    );
}
