//! Test support: real brokers (the `strata` binary as a child process, or the broker library
//! in-process with an injected I/O layer) and librdkafka clients.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::TopicPartitionList;

pub mod txn;

/// A broker process with its data in a temporary directory.
pub struct BrokerProcess {
    pub dir: tempfile::TempDir,
    pub addr: String,
    child: Option<Child>,
    overrides: Vec<String>,
    /// Environment variables the process starts with.
    env: Vec<(String, String)>,
    pub stderr_log: PathBuf,
}

impl BrokerProcess {
    pub fn start(overrides: &[&str]) -> BrokerProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        let stderr_log = dir.path().join("broker.log");
        let mut broker = BrokerProcess {
            dir,
            addr: String::new(),
            child: None,
            overrides,
            env: Vec::new(),
            stderr_log,
        };
        broker.spawn();
        broker
    }

    /// Sets (Some) or removes (None) an environment variable for the next (re)start.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.env.retain(|(k, _)| k != key);
        if let Some(v) = value {
            self.env.push((key.to_string(), v.to_string()));
        }
    }

    /// A broker on a given data directory, not started yet: [`Self::restart`] starts it,
    /// [`Self::start_refused`] expects it not to start.
    pub fn on_data_dir(data_dir: &Path, overrides: &[&str]) -> BrokerProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        overrides.push(format!("log.dirs={}", data_dir.display()));
        let stderr_log = dir.path().join("broker.log");
        BrokerProcess {
            dir,
            addr: String::new(),
            child: None,
            overrides,
            env: Vec::new(),
            stderr_log,
        }
    }

    /// Changes a setting for the next restart (`key=value`, replacing an earlier one of `key`).
    #[allow(dead_code)]
    pub fn set_override(&mut self, setting: &str) {
        let key = setting.split('=').next().unwrap_or_default();
        self.overrides
            .retain(|o| o.split('=').next().unwrap_or_default() != key);
        self.overrides.push(setting.to_string());
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Drops a setting for the next restart.
    pub fn remove_override(&mut self, key: &str) {
        self.overrides
            .retain(|o| o.split('=').next().unwrap_or_default() != key);
    }

    /// Starts the broker expecting it to refuse to start: returns what it logged. Panics if it
    /// starts listening instead.
    pub fn start_refused(&mut self) -> String {
        let before = self.log().len();
        match self.try_spawn() {
            Ok(()) => panic!("the broker started; log:\n{}", self.log()),
            Err(status) => {
                assert!(!status.success(), "a refused start exits non-zero");
                self.log()[before..].to_string()
            }
        }
    }

    fn spawn(&mut self) {
        if let Err(status) = self.try_spawn() {
            panic!("the broker exited with {status}; log: {}", self.log());
        }
    }

    /// Starts the process; Err with its exit status when it ends before listening.
    fn try_spawn(&mut self) -> Result<(), std::process::ExitStatus> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
        cmd.arg("server")
            .arg("--override")
            .arg(format!("log.dirs={}", self.data_dir().display()))
            .arg("--override")
            .arg(if self.addr.is_empty() {
                "listeners=PLAINTEXT://127.0.0.1:0".to_string()
            } else {
                format!("listeners=PLAINTEXT://{}", self.addr)
            });
        for o in &self.overrides {
            cmd.arg("--override").arg(o);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_log)
            .expect("log file");
        cmd.stdout(Stdio::piped()).stderr(Stdio::from(log)).env(
            "RUST_LOG",
            std::env::var("STRATA_TEST_LOG").unwrap_or_else(|_| "info".into()),
        );
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd.spawn().expect("spawn strata");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listening line");
        if line.is_empty() {
            return Err(child.wait().expect("wait"));
        }
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}; log: {}", self.log()));
        self.addr = addr.to_string();
        self.child = Some(child);
        Ok(())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// The `elapsed_us` of the broker's last log line with `message` (a startup step's time).
    pub fn logged_elapsed_us(&self, message: &str) -> u64 {
        self.log()
            .lines()
            .rev()
            .filter(|l| l.contains(message))
            .filter_map(|l| l.split("elapsed_us=").nth(1))
            .find_map(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {message:?} with elapsed_us in the log"))
    }

    /// Whether the process was started and not stopped or killed since.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGTERM and wait: a clean shutdown.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe_kill(child.id(), "TERM");
            let status = child.wait().expect("wait");
            assert!(
                status.success(),
                "broker exited with {status}; log:\n{}",
                self.log()
            );
        }
    }

    /// Waits for the process to end by itself (a crash point): its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port with the same data.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill first");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The port may linger for a moment after the previous process exits.
            if self.addr.is_empty()
                || std::net::TcpListener::bind(&self.addr).is_ok()
                || Instant::now() > deadline
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.spawn();
    }

    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "20000")
        .set("linger.ms", "1");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("producer")
}

pub fn consumer(bootstrap: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        // librdkafka's assign() needs a group id even when no group is joined.
        .set("group.id", "strata-tests")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("consumer")
}

/// A record's key and value, either of which may be null.
pub type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Produces `records` (key, value) to one partition and returns their offsets.
pub fn produce(
    rt: &tokio::runtime::Runtime,
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    records: &[KeyValue],
) -> Vec<i64> {
    rt.block_on(async {
        let mut futures = Vec::new();
        for (k, v) in records {
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(topic).partition(partition);
            if let Some(k) = k {
                record = record.key(k.as_slice());
            }
            if let Some(v) = v {
                record = record.payload(v.as_slice());
            }
            futures.push(
                producer
                    .send_result(record)
                    .map_err(|(e, _)| e)
                    .expect("queue"),
            );
        }
        let mut offsets = Vec::new();
        for f in futures {
            let delivery = f
                .await
                .expect("delivered")
                .unwrap_or_else(|(e, _)| panic!("delivery failed: {e}"));
            offsets.push(delivery.offset);
        }
        offsets
    })
}

/// Reads `count` messages of one partition from `offset`, failing after `timeout`.
pub fn consume(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    offset: i64,
    count: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset))
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < count {
        assert!(
            Instant::now() < deadline,
            "timed out after {} of {count} messages",
            out.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    out
}

pub fn payload(m: &OwnedMessage) -> Vec<u8> {
    m.payload().map(|p| p.to_vec()).unwrap_or_default()
}

/// Waits until `f` holds, up to `timeout`.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A port free now (from the kernel's ephemeral range).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `path` from an HTTP endpoint of the broker (`host:port`): (status line, body).
pub fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// The broker's Prometheus page (`metrics.prometheus.listener=127.0.0.1:<port>`).
pub fn scrape_metrics(port: u16) -> String {
    http_get(&format!("127.0.0.1:{port}"), "/metrics").1
}

/// The value of the first sample of `name` (exactly: `name{...}` or `name value`) whose labels
/// contain `labels`; -1 when there is none.
pub fn metric_value(body: &str, name: &str, labels: &str) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                && l.contains(labels)
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

/// Creates a topic through the protocol (the `strata topics` code path).
pub fn create_topic(
    rt: &tokio::runtime::Runtime,
    bootstrap: &str,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    rt.block_on(async {
        let admin: AdminClient<_> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .expect("admin");
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        for (k, v) in configs {
            topic = topic.set(k, v);
        }
        let results = admin
            .create_topics(&[topic], &AdminOptions::new())
            .await
            .expect("create topics");
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
        }
    });
}

/// Segment files of a partition, sorted.
pub fn segment_files(data: &Path, topic: &str, partition: i32) -> Vec<PathBuf> {
    let dir = data.join(format!("{topic}-{partition}"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// An in-process broker on an injected I/O layer.
pub struct InProcessBroker {
    pub addr: String,
    pub broker: Arc<strata_broker::Broker>,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessBroker {
    pub fn start(
        data: &Path,
        io: Arc<dyn strata_storage::io::Io>,
        overrides: &[&str],
    ) -> InProcessBroker {
        let mut values = std::collections::BTreeMap::new();
        values.insert("log.dirs".to_string(), data.display().to_string());
        values.insert(
            "listeners".to_string(),
            "PLAINTEXT://127.0.0.1:0".to_string(),
        );
        for o in overrides {
            let (k, v) = o.split_once('=').expect("key=value");
            values.insert(k.to_string(), v.to_string());
        }
        let config = strata_broker::BrokerConfig::from_map(values).expect("config");
        let broker = strata_broker::Broker::open(config, io).expect("broker");
        let (tx, rx) = std::sync::mpsc::channel();
        let b = broker.clone();
        let thread = std::thread::spawn(move || {
            let rt = runtime();
            rt.block_on(async move {
                let server = strata_broker::Server::bind(b).await.expect("bind");
                tx.send((
                    server.local_addr().expect("addr").to_string(),
                    server.shutdown_handle(),
                ))
                .expect("send");
                server.run().await;
            });
        });
        let (addr, stop) = rx.recv().expect("server started");
        InProcessBroker {
            addr,
            broker,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for InProcessBroker {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The compression codec of every batch stored for a partition (0 none, 1 gzip, 2 snappy,
/// 3 lz4, 4 zstd), read from its segment files.
pub fn stored_codecs(data: &Path, topic: &str, partition: i32) -> Vec<i16> {
    let mut codecs = Vec::new();
    for file in segment_files(data, topic, partition) {
        let bytes = std::fs::read(&file).expect("segment");
        let mut at = 0;
        while at < bytes.len() {
            let header =
                strata_storage::batch::check_batch(&bytes[at..]).expect("stored batches are valid");
            codecs.push(header.compression());
            at += header.total_size();
        }
    }
    codecs
}

/// Runs `program` with `args` and `input` on its stdin, to its end.
#[allow(dead_code)]
pub fn output_with_stdin(program: &str, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs the `strata` binary; returns (success, stdout, stderr).
#[allow(dead_code)]
pub fn strata_cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("run strata");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `strata <tool> --bootstrap-server <broker> <args>`: an admin tool against a broker.
pub fn strata_tool(tool: &str, broker: &str, args: &[&str]) -> (bool, String, String) {
    let mut all = vec![tool, "--bootstrap-server", broker];
    all.extend_from_slice(args);
    strata_cli(&all)
}

/// `strata configs --alter --broker <broker> --add-config <configs>` (`k=v,k2=v2`): whether it
/// succeeded, and what it printed.
#[allow(dead_code)]
pub fn alter_broker_configs(addr: &str, broker: &str, configs: &str) -> (bool, String) {
    let (ok, out, err) = strata_tool(
        "configs",
        addr,
        &["--alter", "--broker", broker, "--add-config", configs],
    );
    (ok, format!("{out}{err}"))
}

/// Produces 1 KiB records to partition 0 of `topic` until the broker refuses one; checks that
/// the refusal is KAFKA_STORAGE_ERROR, that every acknowledged record reads back while storage is
/// full, and that writing resumes by itself once DeleteRecords frees the segments. Returns how
/// many records were acknowledged.
#[allow(dead_code)]
pub fn fill_until_storage_error_then_resume(addr: &str, topic: &str) -> i64 {
    use rdkafka::admin::{AdminClient, AdminOptions};
    let rt = runtime();
    let producer = no_retry_producer(addr);
    let value = vec![b'f'; 1000];
    let (acknowledged, error) = produce_until_refused(&rt, addr, topic, 1000);
    let acknowledged = acknowledged as i64;
    assert_eq!(
        error,
        Some(rdkafka::error::RDKafkaErrorCode::KafkaStorageError),
        "storage fills up"
    );
    // Reads continue while nothing can be written.
    let consumer = consumer(addr, &[]);
    let got = consume(
        &consumer,
        topic,
        0,
        0,
        acknowledged as usize,
        Duration::from_secs(20),
    );
    assert!(got.iter().all(|m| payload(m) == value));
    // Space returns (DeleteRecords drops the oldest segments): writing resumes by itself.
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .expect("admin");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Offset(acknowledged))
        .expect("tpl");
    rt.block_on(admin.delete_records(&tpl, &AdminOptions::new()))
        .expect("delete records");
    let offsets = produce(&rt, &producer, topic, 0, &[(None, Some(value.clone()))]);
    assert_eq!(offsets, vec![acknowledged]);
    acknowledged
}

/// Produces 1 kB records one at a time (no retries) until one is refused; returns how many were
/// acknowledged and the refusal's error code.
pub fn produce_until_refused(
    rt: &tokio::runtime::Runtime,
    addr: &str,
    topic: &str,
    limit: usize,
) -> (usize, Option<rdkafka::error::RDKafkaErrorCode>) {
    let producer = no_retry_producer(addr);
    let value = vec![b'f'; 1000];
    rt.block_on(async {
        let mut acknowledged = 0;
        for _ in 0..limit {
            let record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(topic).partition(0).payload(&value);
            match producer.send(record, Duration::from_secs(5)).await {
                Ok(_) => acknowledged += 1,
                Err((e, _)) => return (acknowledged, e.rdkafka_error_code()),
            }
        }
        (acknowledged, None)
    })
}

/// A producer that sends each record at once and gives up on the first error (no retries), so
/// that a refusal reaches the test.
pub fn no_retry_producer(addr: &str) -> FutureProducer {
    producer(
        addr,
        &[
            ("linger.ms", "0"),
            ("message.timeout.ms", "3000"),
            ("retries", "0"),
        ],
    )
}

/// Runs a client script (`command` with `args`, e.g. python3 or node), which prints OK at the
/// end when all is well; fails the test with its output and the broker's log otherwise.
#[allow(dead_code)]
pub fn assert_script_ok(mut command: Command, what: &str, broker: &BrokerProcess) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what} runs: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "{what} failed:\n{stdout}\n{}\nbroker log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        broker.log()
    );
}

/// Starts a broker with settings given as owned strings.
#[allow(dead_code)]
pub fn start_with(settings: &[String]) -> BrokerProcess {
    let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
    BrokerProcess::start(&refs)
}

/// Where kafkajs is installed (.ci/run puts it under ~/.cache/strata-node; STRATA_NODE_PATH
/// overrides), checked to be there.
pub fn node_modules() -> String {
    let node_path = std::env::var("STRATA_NODE_PATH").unwrap_or_else(|_| {
        format!(
            "{}/.cache/strata-node/node_modules",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    assert!(
        std::path::Path::new(&node_path).join("kafkajs").is_dir(),
        "kafkajs is not installed in {node_path}: run .ci/run, or `npm install --prefix ~/.cache/strata-node kafkajs@2.2.4`"
    );
    node_path
}
