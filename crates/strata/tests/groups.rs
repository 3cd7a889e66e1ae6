//! Consumer groups with the real broker and librdkafka: members split a topic's partitions,
//! take over from a member that leaves or dies, commit offsets that survive restarts and kill -9,
//! static members rejoin without a rebalance, cooperative-sticky revokes only what moves.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientConfig, ClientContext, Message, TopicPartitionList};

/// Broker settings that make group tests quick: no initial rebalance delay, short sessions.
const FAST_GROUPS: &[&str] = &[
    "group.initial.rebalance.delay.ms=0",
    "group.min.session.timeout.ms=500",
];

/// A rebalance a member went through: "assign" or "revoke", and the partitions.
type Event = (String, Vec<(String, i32)>);

/// Records every rebalance a member goes through.
#[derive(Default, Clone)]
struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
}

impl Recorder {
    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
}

impl ClientContext for Recorder {}
impl ConsumerContext for Recorder {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let (kind, tpl) = match rebalance {
            Rebalance::Assign(t) => ("assign", Some(*t)),
            Rebalance::Revoke(t) => ("revoke", Some(*t)),
            Rebalance::Error(_) => ("error", None),
        };
        let parts = tpl
            .map(|t| {
                t.elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect()
            })
            .unwrap_or_default();
        self.events.lock().unwrap().push((kind.to_string(), parts));
    }
}

type Member = BaseConsumer<Recorder>;

/// A member of `group` subscribed to `topic` that has read its first `records` records.
fn member_that_read(
    addr: &str,
    group: &str,
    extra: &[(&str, &str)],
    topic: &str,
    records: usize,
) -> Member {
    let (m, _) = member(addr, group, extra);
    m.subscribe(&[topic]).unwrap();
    let (ok, _) = poll_until(&[&m], Duration::from_secs(30), |_, got| {
        got[0].len() == records
    });
    assert!(ok, "{group} read {records} records of {topic}");
    m
}

fn member(addr: &str, group: &str, extra: &[(&str, &str)]) -> (Member, Recorder) {
    let recorder = Recorder::default();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", addr)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "3000")
        .set("heartbeat.interval.ms", "200")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let consumer: Member = config
        .create_with_context(recorder.clone())
        .expect("consumer");
    (consumer, recorder)
}

fn assigned(c: &Member) -> BTreeSet<i32> {
    c.assignment()
        .map(|t| t.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

type Got = Vec<Vec<(i32, i64, Vec<u8>)>>;

/// Polls every member until `done` holds (given the members and what each has received so far)
/// or `timeout` passes.
fn poll_until(
    members: &[&Member],
    timeout: Duration,
    mut done: impl FnMut(&[&Member], &Got) -> bool,
) -> (bool, Got) {
    let deadline = Instant::now() + timeout;
    let mut got = vec![Vec::new(); members.len()];
    while Instant::now() < deadline {
        for (i, m) in members.iter().enumerate() {
            if let Some(Ok(msg)) = m.poll(Duration::from_millis(20)) {
                got[i].push((msg.partition(), msg.offset(), payload(&msg.detach())));
            }
        }
        if done(members, &got) {
            return (true, got);
        }
    }
    (false, got)
}

/// A broker with quick group settings and `topic` of `partitions` partitions holding
/// `per_partition` records each.
fn broker_with_records(topic: &str, partitions: i32, per_partition: usize) -> BrokerProcess {
    let broker = BrokerProcess::start(FAST_GROUPS);
    create_topic(&runtime(), &broker.addr, topic, partitions, &[]);
    produce_spread(&broker.addr, topic, partitions, per_partition);
    broker
}

fn produce_spread(addr: &str, topic: &str, partitions: i32, per_partition: usize) {
    let rt = runtime();
    let producer = producer(addr, &[("linger.ms", "0")]);
    for p in 0..partitions {
        let records: Vec<KeyValue> = (0..per_partition)
            .map(|i| (None, Some(format!("{p}-{i}").into_bytes())))
            .collect();
        produce(&rt, &producer, topic, p, &records);
    }
}

/// Commits offsets `(partition, offset)` of `topic` for the member's group, synchronously.
fn commit_at(m: &Member, topic: &str, offsets: &[(i32, i64)]) {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, rdkafka::Offset::Offset(*o))
            .unwrap();
    }
    m.commit(&tpl, CommitMode::Sync).unwrap();
}

#[test]
fn members_split_partitions_and_take_over_when_one_leaves_or_dies() {
    let broker = broker_with_records("shared", 6, 10);

    let (a, _) = member(&broker.addr, "split", &[]);
    let (b, _) = member(&broker.addr, "split", &[]);
    let (c, _) = member(&broker.addr, "split", &[]);
    for m in [&a, &b, &c] {
        m.subscribe(&["shared"]).unwrap();
    }
    // Three members: two partitions each, all six covered, none twice; every record read (a
    // record read before a rebalance moved its partition, with nothing committed, is read again
    // by the new owner: at least once).
    let distinct = |got: &Got| -> BTreeSet<(i32, i64)> {
        got.iter().flatten().map(|(p, o, _)| (*p, *o)).collect()
    };
    let (ok, got) = poll_until(&[&a, &b, &c], Duration::from_secs(30), |ms, got| {
        ms.iter().all(|m| assigned(m).len() == 2) && distinct(got).len() == 60
    });
    let sets: Vec<BTreeSet<i32>> = [&a, &b, &c].iter().map(|m| assigned(m)).collect();
    assert!(
        ok,
        "assignments {sets:?}, records {:?}",
        got.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
    assert_eq!(union, (0..6).collect());
    assert_eq!(
        distinct(&got),
        (0..6).flat_map(|p| (0..10).map(move |o| (p, o))).collect()
    );

    // One leaves (LeaveGroup on close): the other two split its partitions.
    drop(c);
    let (ok, _) = poll_until(&[&a, &b], Duration::from_secs(15), |ms, _| {
        ms.iter().all(|m| assigned(m).len() == 3)
    });
    assert!(ok, "after a leave: {:?} {:?}", assigned(&a), assigned(&b));

    // Another client joins (kcat, a balanced consumer), then dies with kill -9 (no
    // LeaveGroup): after its session timeout the survivors take its partitions back.
    let mut kcat = std::process::Command::new("kcat")
        .args(["-b", &broker.addr, "-G", "split", "-q", "-o", "beginning"])
        .args([
            "-X",
            "session.timeout.ms=2000",
            "-X",
            "heartbeat.interval.ms=200",
        ])
        .arg("shared")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("kcat is installed (.ci/run installs it)");
    let (ok, _) = poll_until(&[&a, &b], Duration::from_secs(30), |ms, _| {
        ms.iter().map(|m| assigned(m).len()).sum::<usize>() == 4
    });
    assert!(ok, "with kcat: {:?} {:?}", assigned(&a), assigned(&b));
    kcat.kill().unwrap();
    kcat.wait().unwrap();
    let started = Instant::now();
    let (ok, _) = poll_until(&[&a, &b], Duration::from_secs(30), |ms, _| {
        ms.iter().all(|m| assigned(m).len() == 3)
    });
    assert!(ok, "after a death: {:?} {:?}", assigned(&a), assigned(&b));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "taken over only after the session timeout ({:?})",
        started.elapsed()
    );
}

#[test]
fn committed_offsets_survive_a_restart_and_kill_dash_nine() {
    let mut broker = broker_with_records("commits", 2, 20);
    {
        let m = member_that_read(&broker.addr, "keepers", &[], "commits", 40);
        commit_at(&m, "commits", &[(0, 12), (1, 7)]);
        let committed = m.committed(Duration::from_secs(5)).unwrap();
        let offsets: BTreeMap<i32, i64> = committed
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset().to_raw().unwrap_or(-1)))
            .collect();
        assert_eq!(offsets, BTreeMap::from([(0, 12), (1, 7)]));
    }
    for crash in [false, true] {
        if crash {
            broker.kill();
        } else {
            broker.stop();
        }
        broker.restart();
        let (m, _) = member(&broker.addr, "keepers", &[]);
        m.subscribe(&["commits"]).unwrap();
        // A new member starts where the group left off: 8 + 13 records remain.
        let (ok, got) = poll_until(&[&m], Duration::from_secs(30), |_, got| got[0].len() >= 21);
        assert!(ok, "crash={crash}: got {}", got[0].len());
        let first: BTreeMap<i32, i64> =
            got[0].iter().fold(BTreeMap::new(), |mut acc, (p, o, _)| {
                acc.entry(*p).or_insert(*o);
                acc
            });
        assert_eq!(first, BTreeMap::from([(0, 12), (1, 7)]), "crash={crash}");
        // Nothing more arrives: exactly the uncommitted records were read.
        let (_, more) = poll_until(&[&m], Duration::from_millis(500), |_, _| false);
        assert!(more[0].is_empty());
    }
}

/// A static member (group.instance.id), here the group's leader, that restarts within its
/// session timeout gets its partitions back without a rebalance: the other member sees none.
#[test]
fn a_static_member_rejoins_without_a_rebalance() {
    let broker = BrokerProcess::start(FAST_GROUPS);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "static", 4, &[]);
    let (a, a_events) = member(&broker.addr, "statics", &[("group.instance.id", "a")]);
    let (b, _) = member(
        &broker.addr,
        "statics",
        &[("group.instance.id", "b"), ("session.timeout.ms", "10000")],
    );
    // b first, so that b is the group's leader: the harder case, since the leader's rejoin
    // must not make it assign again (KIP-814's skip_assignment).
    b.subscribe(&["static"]).unwrap();
    let (ok, _) = poll_until(&[&b], Duration::from_secs(30), |ms, _| {
        assigned(ms[0]).len() == 4
    });
    assert!(ok, "{:?}", assigned(&b));
    a.subscribe(&["static"]).unwrap();
    let (ok, _) = poll_until(&[&a, &b], Duration::from_secs(30), |ms, _| {
        ms.iter().all(|m| assigned(m).len() == 2)
    });
    assert!(ok, "{:?} {:?}", assigned(&a), assigned(&b));
    let b_partitions = assigned(&b);
    let a_before = a_events.events().len();
    // b goes away without leaving (a static member does not send LeaveGroup on close) and a
    // new process with the same instance id comes back.
    drop(b);
    let (b2, _) = member(
        &broker.addr,
        "statics",
        &[("group.instance.id", "b"), ("session.timeout.ms", "10000")],
    );
    b2.subscribe(&["static"]).unwrap();
    let (ok, _) = poll_until(&[&a, &b2], Duration::from_secs(20), |_, _| {
        assigned(&b2).len() == 2
    });
    assert!(ok, "b2 got {:?}", assigned(&b2));
    assert_eq!(assigned(&b2), b_partitions, "the same partitions come back");
    // Give a rebalance, if one were coming, time to show.
    poll_until(&[&a, &b2], Duration::from_secs(2), |_, _| false);
    assert_eq!(
        a_events.events().len(),
        a_before,
        "a saw no rebalance: {:?}",
        a_events.events()
    );
    assert_eq!(assigned(&a).len(), 2);
}

/// With cooperative-sticky, a member joining takes partitions from the others, which revoke only
/// those: no member ever gives up a partition it keeps.
#[test]
fn cooperative_sticky_revokes_only_what_moves() {
    let broker = BrokerProcess::start(FAST_GROUPS);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "coop", 6, &[]);
    let strategy = [("partition.assignment.strategy", "cooperative-sticky")];
    let (a, a_events) = member(&broker.addr, "coops", &strategy);
    a.subscribe(&["coop"]).unwrap();
    let (ok, _) = poll_until(&[&a], Duration::from_secs(30), |ms, _| {
        assigned(ms[0]).len() == 6
    });
    assert!(ok, "{:?}", assigned(&a));
    let (b, _) = member(&broker.addr, "coops", &strategy);
    b.subscribe(&["coop"]).unwrap();
    let (ok, _) = poll_until(&[&a, &b], Duration::from_secs(30), |ms, _| {
        ms.iter().all(|m| assigned(m).len() == 3)
    });
    assert!(ok, "{:?} {:?}", assigned(&a), assigned(&b));
    let kept = assigned(&a);
    let revoked: BTreeSet<i32> = a_events
        .events()
        .iter()
        .filter(|(kind, _)| kind == "revoke")
        .flat_map(|(_, ps)| ps.iter().map(|(_, p)| *p))
        .collect();
    assert_eq!(revoked.len(), 3, "a revoked {revoked:?}");
    assert!(
        revoked.is_disjoint(&kept),
        "revoked {revoked:?}, kept {kept:?}"
    );
    assert_eq!(revoked, assigned(&b));
}

use common::strata_cli as strata;
use common::strata_tool;

/// The describe row of one partition: (current offset, log end offset, lag, consumer id).
fn describe_row(out: &str, topic: &str, partition: i32) -> (String, String, String, String) {
    let line = out
        .lines()
        .find(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 7 && f[1] == topic && f[2] == partition.to_string()
        })
        .unwrap_or_else(|| panic!("no row for {topic}-{partition} in:\n{out}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[3].into(), f[4].into(), f[5].into(), f[6].into())
}

#[test]
fn groups_command_lists_describes_with_lag_resets_and_deletes() {
    let broker = BrokerProcess::start(FAST_GROUPS);
    let b = broker.addr.as_str();
    let rt = runtime();
    create_topic(&rt, b, "lagging", 2, &[]);
    produce_spread(b, "lagging", 2, 5);
    let m = member_that_read(b, "watched", &[("client.id", "watcher")], "lagging", 10);
    commit_at(&m, "lagging", &[(0, 3), (1, 5)]);

    let (ok, out, err) = strata_tool("groups", b, &["--list"]);
    assert!(ok, "{err}");
    assert_eq!(out, "watched\n");
    let (_, out, _) = strata_tool("groups", b, &["--list", "--state"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("watched") && l.ends_with("Stable")),
        "{out}"
    );
    let (ok, out, err) = strata_tool("groups", b, &["--describe", "--group", "watched"]);
    assert!(ok, "{err}");
    let (current, end, lag, consumer) = describe_row(&out, "lagging", 0);
    assert_eq!(
        (current.as_str(), end.as_str(), lag.as_str()),
        ("3", "5", "2"),
        "{out}"
    );
    assert!(consumer.starts_with("watcher-"), "{out}");
    assert_eq!(describe_row(&out, "lagging", 1).2, "0");
    // An active group is neither deleted nor reset.
    let (ok, out, _) = strata_tool("groups", b, &["--delete", "--group", "watched"]);
    assert!(!ok);
    assert!(out.contains("NonEmptyGroup"), "{out}");
    let (ok, out, err) = strata_tool(
        "groups",
        b,
        &[
            "--reset-offsets",
            "--group",
            "watched",
            "--topic",
            "lagging",
            "--to-earliest",
            "--execute",
        ],
    );
    assert!(
        !ok && err.contains(
            "Assignments can only be reset if the group 'watched' is inactive, but the current \
             state is Stable."
        ),
        "{err}"
    );
    assert!(
        !out.contains("NEW-OFFSET"),
        "nothing is planned for an active group: {out}"
    );
    // The members and state views, and --all-groups.
    let (ok, out, err) = strata_tool(
        "groups",
        b,
        &["--describe", "--all-groups", "--members", "--verbose"],
    );
    assert!(ok, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("watched "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("watcher") && row.ends_with(" 2 lagging(0,1)"),
        "{out}"
    );
    let (ok, out, err) = strata_tool(
        "groups",
        b,
        &["--describe", "--group", "watched", "--state"],
    );
    assert!(ok, "{err}");
    assert!(
        out.lines().any(|l| l.starts_with("watched ")
            && l.contains(&format!("{b} (0)"))
            && l.contains("Stable")
            && l.ends_with(" 1")),
        "{out}"
    );

    drop(m);
    assert!(eventually(Duration::from_secs(10), || {
        strata_tool("groups", b, &["--list", "--state"])
            .1
            .contains("Empty")
    }));
    let reset = |target: &[&str]| {
        let mut args = vec![
            "groups",
            "--bootstrap-server",
            b,
            "--reset-offsets",
            "--group",
            "watched",
        ];
        args.extend_from_slice(target);
        args.push("--execute");
        let (ok, out, err) = strata(&args);
        assert!(ok, "{err}");
        out
    };
    let describe = || strata_tool("groups", b, &["--describe", "--group", "watched"]).1;
    reset(&["--topic", "lagging", "--to-earliest"]);
    assert_eq!(describe_row(&describe(), "lagging", 0).0, "0");
    assert_eq!(describe_row(&describe(), "lagging", 1).2, "5");
    reset(&["--topic", "lagging:1", "--to-offset", "4"]);
    assert_eq!(describe_row(&describe(), "lagging", 1).0, "4");
    // Beyond the end: kept at the end, with Kafka's warning.
    let (ok, _, err) = strata_tool(
        "groups",
        b,
        &[
            "--reset-offsets",
            "--group",
            "watched",
            "--topic",
            "lagging:1",
            "--to-offset",
            "99",
            "--execute",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        err.contains(
            "New offset (99) is higher than latest offset for topic partition lagging-1. \
             Value will be set to 5"
        ),
        "{err}"
    );
    assert_eq!(describe_row(&describe(), "lagging", 1).0, "5");
    reset(&["--topic", "lagging:1", "--shift-by", "-2"]);
    assert_eq!(describe_row(&describe(), "lagging", 1).0, "3");
    reset(&["--topic", "lagging", "--to-current"]);
    assert_eq!(describe_row(&describe(), "lagging", 1).0, "3");
    assert_eq!(describe_row(&describe(), "lagging", 0).0, "0");
    // --export writes what --from-file reads back.
    let (ok, exported, err) = strata_tool(
        "groups",
        b,
        &[
            "--reset-offsets",
            "--group",
            "watched",
            "--all-topics",
            "--shift-by",
            "1",
            "--export",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(exported, "lagging,0,1\nlagging,1,4\n");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &exported).unwrap();
    reset(&["--from-file", file.path().to_str().unwrap()]);
    assert_eq!(describe_row(&describe(), "lagging", 0).0, "1");
    assert_eq!(describe_row(&describe(), "lagging", 1).0, "4");
    // Every record is younger than a day: a day back is the earliest offset.
    reset(&["--topic", "lagging", "--by-duration", "P1D"]);
    assert_eq!(describe_row(&describe(), "lagging", 1).0, "0");
    assert_eq!(
        describe_row(&describe(), "lagging", 0).0,
        "0",
        "only partition 1 moved"
    );
    reset(&["--all-topics", "--to-latest"]);
    assert_eq!(describe_row(&describe(), "lagging", 0).0, "5");
    reset(&[
        "--topic",
        "lagging",
        "--to-datetime",
        "2000-01-01T00:00:00.000",
    ]);
    assert_eq!(describe_row(&describe(), "lagging", 1).0, "0");
    // A dry run shows the plan and commits nothing.
    let (ok, out, _) = strata_tool(
        "groups",
        b,
        &[
            "--reset-offsets",
            "--group",
            "watched",
            "--topic",
            "lagging",
            "--to-latest",
        ],
    );
    assert!(ok && out.contains("NEW-OFFSET"), "{out}");
    assert_eq!(describe_row(&describe(), "lagging", 1).0, "0");
    // Offsets of one partition deleted: it has no committed offset any more.
    let (ok, out, err) = strata_tool(
        "groups",
        b,
        &[
            "--delete-offsets",
            "--group",
            "watched",
            "--topic",
            "lagging:1",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("lagging ") && l.ends_with("Successful")),
        "{out}"
    );
    let after = describe();
    assert!(
        !after.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 3 && f[1] == "lagging" && f[2] == "1"
        }),
        "{after}"
    );
    assert_eq!(describe_row(&after, "lagging", 0).0, "0");

    let (ok, out, err) = strata_tool("groups", b, &["--delete", "--group", "watched"]);
    assert!(ok, "{out}{err}");
    assert_eq!(strata_tool("groups", b, &["--list"]).1, "");
    let (ok, _, err) = strata_tool("groups", b, &["--describe", "--group", "watched"]);
    assert!(
        !ok && err.contains("Consumer group 'watched' does not exist."),
        "{err}"
    );
}

/// Requests a real client would not send, answered with Kafka's error codes.
#[test]
fn group_requests_with_bad_input_get_kafka_errors() {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    let broker = BrokerProcess::start(FAST_GROUPS);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "bad", 1, &[]);
    rt.block_on(async {
        let s = |v: &str| StrBytes::from_string(v.to_string());
        let mut c = strata::client::Client::connect(&broker.addr).await.unwrap();
        let join = |member: &str, session: i32| {
            JoinGroupRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_member_id(s(member))
                .with_session_timeout_ms(session)
                .with_rebalance_timeout_ms(5000)
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(bytes::Bytes::from_static(&[
                        // ConsumerProtocolSubscription v0: topics ["bad"], no user data
                        0, 0, 0, 0, 0, 1, 0, 3, b'b', b'a', b'd', 0xff, 0xff, 0xff, 0xff,
                    ]))])
        };
        // A session timeout outside group.min/max.session.timeout.ms.
        let r = c.send(join("", 100)).await.unwrap();
        assert_eq!(r.error_code, 26, "INVALID_SESSION_TIMEOUT");
        // A new member first gets its id.
        let r = c.send(join("", 3000)).await.unwrap();
        assert_eq!(r.error_code, 79, "MEMBER_ID_REQUIRED");
        let id = r.member_id.to_string();
        assert!(!id.is_empty());
        let r = c.send(join(&id, 3000)).await.unwrap();
        assert_eq!(r.error_code, 0);
        assert_eq!((r.generation_id, r.leader.as_str()), (1, id.as_str()));
        assert_eq!(r.members.len(), 1);
        // Unknown members, stale generations.
        let hb = |member: &str, generation: i32| {
            HeartbeatRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_member_id(s(member))
                .with_generation_id(generation)
        };
        assert_eq!(
            c.send(hb("nobody", 1)).await.unwrap().error_code,
            25,
            "UNKNOWN_MEMBER_ID"
        );
        assert_eq!(
            c.send(hb(&id, 7)).await.unwrap().error_code,
            22,
            "ILLEGAL_GENERATION"
        );
        let sync = SyncGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_member_id(s(&id))
            .with_generation_id(0);
        assert_eq!(c.send(sync).await.unwrap().error_code, 22);
        let sync = SyncGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_member_id(s(&id))
            .with_generation_id(1);
        assert_eq!(c.send(sync).await.unwrap().error_code, 0);
        assert_eq!(c.send(hb(&id, 1)).await.unwrap().error_code, 0);
        // Commits: oversized metadata, an unknown partition, a stale generation.
        let commit = |generation: i32, partition: i32, metadata: String| {
            OffsetCommitRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_member_id(s(&id))
                .with_generation_id_or_member_epoch(generation)
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("bad")))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(1)
                        .with_committed_metadata(Some(StrBytes::from_string(
                            metadata,
                        )))])])
        };
        let code = |r: OffsetCommitResponse| r.topics[0].partitions[0].error_code;
        assert_eq!(
            code(c.send(commit(1, 0, "m".repeat(5000))).await.unwrap()),
            12,
            "OFFSET_METADATA_TOO_LARGE"
        );
        assert_eq!(
            code(c.send(commit(1, 9, String::new())).await.unwrap()),
            3,
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(
            code(c.send(commit(0, 0, String::new())).await.unwrap()),
            22,
            "ILLEGAL_GENERATION"
        );
        assert_eq!(code(c.send(commit(1, 0, "kept".into())).await.unwrap()), 0);
        // Metadata and leader epoch round-trip; several groups in one OffsetFetch.
        let mut with_epoch = commit(1, 0, "kept".into());
        with_epoch.topics[0].partitions[0].committed_leader_epoch = 7;
        with_epoch.topics[0].partitions[0].committed_offset = 3;
        assert_eq!(code(c.send(with_epoch).await.unwrap()), 0);
        let fetch = |groups: &[&str]| {
            OffsetFetchRequest::default().with_groups(
                groups
                    .iter()
                    .map(|g| {
                        kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup::default()
                            .with_group_id(GroupId(s(g)))
                            .with_topics(None)
                    })
                    .collect(),
            )
        };
        let r = c.send(fetch(&["g", "unknown-group"])).await.unwrap();
        assert_eq!(r.groups.len(), 2);
        let p = &r.groups[0].topics[0].partitions[0];
        assert_eq!(
            (p.committed_offset, p.committed_leader_epoch, p.metadata.as_deref()),
            (3, 7, Some("kept"))
        );
        assert!(r.groups[1].topics.is_empty(), "no offsets for an unknown group");
        // ListGroups with a state filter.
        let listed = |state: &'static str| ListGroupsRequest::default().with_states_filter(vec![s(state)]);
        assert_eq!(c.send(listed("Stable")).await.unwrap().groups.len(), 1);
        assert_eq!(c.send(listed("Empty")).await.unwrap().groups.len(), 0);
        // OffsetDelete of a topic the members subscribe to is refused.
        let delete = OffsetDeleteRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_topics(vec![kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s("bad")))
                .with_partitions(vec![kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(0)])]);
        let r = c.send(delete.clone()).await.unwrap();
        assert_eq!(r.topics[0].partitions[0].error_code, 86, "GROUP_SUBSCRIBED_TO_TOPIC");
        // An empty group id.
        let r = c
            .send(
                JoinGroupRequest::default()
                    .with_session_timeout_ms(3000)
                    .with_protocol_type(s("consumer")),
            )
            .await
            .unwrap();
        assert_eq!(r.error_code, 24, "INVALID_GROUP_ID");
        // The member leaves; the group is deletable; its offsets go with it.
        let leave = LeaveGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_members(vec![
                kafka_protocol::messages::leave_group_request::MemberIdentity::default()
                    .with_member_id(s(&id)),
            ]);
        let r = c.send(leave).await.unwrap();
        assert_eq!((r.error_code, r.members[0].error_code), (0, 0));
        let r = c
            .send(DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]))
            .await
            .unwrap();
        assert_eq!(r.groups[0].group_state.as_str(), "Empty");
        // Empty now: the offset can be deleted.
        let r = c.send(delete).await.unwrap();
        assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0));
        let r = c.send(fetch(&["g"])).await.unwrap();
        assert!(r.groups[0].topics.is_empty());
        let r = c
            .send(
                DeleteGroupsRequest::default()
                    .with_groups_names(vec![GroupId(s("g")), GroupId(s("none"))]),
            )
            .await
            .unwrap();
        assert_eq!(r.results[0].error_code, 0);
        assert_eq!(r.results[1].error_code, 69, "GROUP_ID_NOT_FOUND");
    });
}

/// Protocol clients connected to `addr`.
async fn clients<const N: usize>(addr: &str) -> [strata::client::Client; N] {
    let mut out = Vec::new();
    for _ in 0..N {
        out.push(strata::client::Client::connect(addr).await.unwrap());
    }
    out.try_into().ok().unwrap()
}

/// Sends a JoinGroup without a member id; returns the id it hands out (MEMBER_ID_REQUIRED).
async fn handed_out_member_id(
    c: &mut strata::client::Client,
    join: kafka_protocol::messages::JoinGroupRequest,
) -> String {
    c.send(join).await.unwrap().member_id.to_string()
}

/// Commits `rounds` requests, each committing `partitions` partitions of `topic` for `group` as
/// a simple (generation -1) committer; offset = round number.
async fn commit_rounds(
    c: &mut strata::client::Client,
    group: &str,
    topic: &str,
    partitions: i32,
    rounds: i64,
) {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    let s = |v: &str| StrBytes::from_string(v.to_string());
    for round in 1..=rounds {
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(
                    (0..partitions)
                        .map(|p| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(round)
                        })
                        .collect(),
                )]);
        let r = c.send(request).await.unwrap();
        assert!(r.topics[0].partitions.iter().all(|p| p.error_code == 0));
    }
}

async fn fetched(c: &mut strata::client::Client, group: &str) -> BTreeMap<i32, i64> {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    let r = c
        .send(
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                .with_topics(None)]),
        )
        .await
        .unwrap();
    r.groups[0]
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (p.partition_index, p.committed_offset))
        })
        .collect()
}

/// The records the last start's reload of `__consumer_offsets` read, from the broker's log.
fn reloaded_records(broker: &BrokerProcess) -> u64 {
    broker
        .log()
        .lines()
        .rev()
        .find(|l| l.contains("committed offsets loaded"))
        .and_then(|l| l.split(" records=").nth(1))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("no committed offsets loaded line with records")
}

/// The highest offset the cleaner has cleaned `__consumer_offsets` up to, from the broker's log.
fn offsets_cleaned_up_to(broker: &BrokerProcess) -> i64 {
    broker
        .log()
        .lines()
        .filter(|l| l.contains("log cleaned") && l.contains("topic=__consumer_offsets"))
        .filter_map(|l| {
            l.split(" up_to=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(-1)
}

/// `__consumer_offsets` is a compacted topic cleaned by the log cleaner: however many commits
/// were made, the reload at startup reads about the live offsets plus one bounded active
/// segment (the coordinator rolls it for the cleaner once it holds 10,000 records and more than
/// twice the live keys); every last commit is there after a restart and after a crash.
#[test]
fn the_offsets_log_stays_bounded_however_many_commits_are_made() {
    let mut args = FAST_GROUPS.to_vec();
    args.push("log.cleaner.backoff.ms=100");
    let mut broker = BrokerProcess::start(&args);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "hot", 10, &[]);
    rt.block_on(async {
        let mut c = strata::client::Client::connect(&broker.addr).await.unwrap();
        commit_rounds(&mut c, "hot-group", "hot", 10, 4000).await;
        assert_eq!(
            fetched(&mut c, "hot-group").await,
            (0..10).map(|p| (p, 4000)).collect()
        );
    });
    let (ok, policy, err) = strata_tool(
        "configs",
        &broker.addr,
        &[
            "--describe",
            "--entity-type",
            "topics",
            "--entity-name",
            "__consumer_offsets",
        ],
    );
    assert!(ok, "{err}");
    assert!(policy.contains("cleanup.policy=compact"), "{policy}");
    // 40,000 records over 10 live keys: rolled at 10,000, 20,000, 30,000 and 40,000 records,
    // and the cleaner woken each time.
    let deadline = Instant::now() + Duration::from_secs(60);
    while offsets_cleaned_up_to(&broker) < 40_000 {
        assert!(Instant::now() < deadline, "not cleaned:\n{}", broker.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    for crash in [false, true] {
        if crash {
            broker.kill();
        } else {
            broker.stop();
        }
        broker.restart();
        let read = reloaded_records(&broker);
        assert!(read <= 100, "crash={crash}: the reload read {read} records");
        rt.block_on(async {
            let mut c = strata::client::Client::connect(&broker.addr).await.unwrap();
            assert_eq!(
                fetched(&mut c, "hot-group").await,
                (0..10).map(|p| (p, 4000)).collect(),
                "crash={crash}"
            );
        });
    }
}

/// The broker's "committed offsets loaded" time from its log, in µs (the last start's).
fn reload_us(broker: &BrokerProcess) -> u64 {
    broker.logged_elapsed_us("committed offsets loaded")
}

/// The reload time after 1,000,000 offset commits (100 partitions x 10,000 rounds) against
/// 1,000 commits of the same offsets, and with 9,900 more records in the active segment (just
/// before it is rolled for the cleaner): run by `bench/run.py groups-reload`, which reports it.
#[test]
#[ignore]
fn reload_time_of_a_million_commits() {
    for rounds in [10i64, 10_000, 10_099] {
        let mut args = FAST_GROUPS.to_vec();
        args.push("log.cleaner.backoff.ms=100");
        let mut broker = BrokerProcess::start(&args);
        let rt = runtime();
        create_topic(&rt, &broker.addr, "many", 100, &[]);
        let started = Instant::now();
        rt.block_on(async {
            let mut c = strata::client::Client::connect(&broker.addr).await.unwrap();
            commit_rounds(&mut c, "reload", "many", 100, rounds).await;
        });
        let commit_s = started.elapsed().as_secs_f64();
        // The cleaner has compacted what was rolled.
        let rolled = rounds * 100 / 10_000 * 10_000;
        let deadline = Instant::now() + Duration::from_secs(120);
        while rolled > 0 && offsets_cleaned_up_to(&broker) < rolled {
            assert!(Instant::now() < deadline, "not cleaned:\n{}", broker.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        broker.stop();
        broker.restart();
        let us = reload_us(&broker);
        let read = reloaded_records(&broker);
        rt.block_on(async {
            let mut c = strata::client::Client::connect(&broker.addr).await.unwrap();
            assert_eq!(fetched(&mut c, "reload").await.len(), 100);
        });
        println!(
            "RELOAD commits={} records_kept={read} reload_us={us} commit_s={commit_s:.1}",
            rounds * 100
        );
    }
}

/// The coordinator restarts while a group rebalances: the members find it again, rejoin, and
/// split the partitions; no committed offset is lost.
#[test]
fn members_rejoin_after_a_coordinator_restart_mid_rebalance() {
    let mut broker = broker_with_records("restart", 4, 5);
    let a = member_that_read(&broker.addr, "restarting", &[], "restart", 20);
    commit_at(&a, "restart", &[(0, 5), (1, 5), (2, 5), (3, 5)]);
    // A second member starts a rebalance; the broker goes down in the middle of it.
    let (b, _) = member(&broker.addr, "restarting", &[]);
    b.subscribe(&["restart"]).unwrap();
    poll_until(&[&a, &b], Duration::from_millis(300), |_, _| false);
    broker.kill();
    broker.restart();
    let (ok, _) = poll_until(&[&a, &b], Duration::from_secs(60), |ms, _| {
        ms.iter().all(|m| assigned(m).len() == 2)
    });
    assert!(ok, "{:?} {:?}", assigned(&a), assigned(&b));
    let committed = a.committed(Duration::from_secs(10)).unwrap();
    for e in committed.elements() {
        assert_eq!(e.offset(), rdkafka::Offset::Offset(5), "{e:?}");
    }
}

/// librdkafka's new consumer protocol (KIP-848, `group.protocol=consumer`): the coordinator
/// assigns, members reconcile; a member leaving hands its partitions over; ConsumerGroupDescribe
/// and `strata groups --describe` show the group; commits work with member epochs.
#[test]
fn a_kip_848_consumer_group_assigns_on_the_server() {
    let broker = BrokerProcess::start(&[
        "group.initial.rebalance.delay.ms=0",
        "group.consumer.heartbeat.interval.ms=200",
        "group.consumer.session.timeout.ms=3000",
    ]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "modern", 4, &[]);
    produce_spread(&broker.addr, "modern", 4, 5);
    let new_member = || -> (Member, Recorder) {
        let recorder = Recorder::default();
        let consumer: Member = ClientConfig::new()
            .set("bootstrap.servers", &broker.addr)
            .set("group.id", "kip848")
            .set("group.protocol", "consumer")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "100")
            .create_with_context(recorder.clone())
            .expect("consumer");
        (consumer, recorder)
    };
    let (a, _) = new_member();
    a.subscribe(&["modern"]).unwrap();
    let (ok, got) = poll_until(&[&a], Duration::from_secs(30), |ms, got| {
        assigned(ms[0]).len() == 4 && got[0].len() == 20
    });
    assert!(ok, "a alone: {:?}, {} records", assigned(&a), got[0].len());
    let (b, _) = new_member();
    b.subscribe(&["modern"]).unwrap();
    let (ok, _) = poll_until(&[&a, &b], Duration::from_secs(30), |ms, _| {
        ms.iter().all(|m| assigned(m).len() == 2)
    });
    assert!(ok, "a {:?}, b {:?}", assigned(&a), assigned(&b));
    assert!(assigned(&a).is_disjoint(&assigned(&b)));
    // Commits carry the member epoch.
    let offsets: Vec<(i32, i64)> = assigned(&a).into_iter().map(|p| (p, 5)).collect();
    commit_at(&a, "modern", &offsets);
    // The group as ConsumerGroupDescribe shows it.
    rt.block_on(async {
        use kafka_protocol::messages::*;
        use kafka_protocol::protocol::StrBytes;
        let mut c = strata::client::Client::connect(&broker.addr).await.unwrap();
        let r = c
            .send(
                ConsumerGroupDescribeRequest::default()
                    .with_group_ids(vec![GroupId(StrBytes::from_static_str("kip848"))]),
            )
            .await
            .unwrap();
        let g = &r.groups[0];
        assert_eq!(g.error_code, 0);
        assert_eq!(g.group_state.as_str(), "Stable");
        assert_eq!(g.assignor_name.as_str(), "uniform");
        assert_eq!(g.members.len(), 2);
        for m in &g.members {
            assert_eq!(m.member_epoch, g.assignment_epoch);
            assert_eq!(m.assignment.topic_partitions[0].partitions.len(), 2);
        }
    });
    let (ok, out, err) = strata_tool("groups", &broker.addr, &["--describe", "--group", "kip848"]);
    assert!(ok, "{err}");
    let owners: BTreeSet<String> = (0..4).map(|p| describe_row(&out, "modern", p).3).collect();
    assert_eq!(owners.len(), 2, "{out}");
    // One leaves: the other gets all four.
    drop(b);
    let (ok, _) = poll_until(&[&a], Duration::from_secs(30), |ms, _| {
        assigned(ms[0]).len() == 4
    });
    assert!(ok, "after b left: {:?}", assigned(&a));
    // Classic and new groups side by side: a classic member cannot join this group.
    let (classic, _) = member(&broker.addr, "kip848", &[]);
    classic.subscribe(&["modern"]).unwrap();
    let (_, got) = poll_until(&[&classic], Duration::from_secs(3), |_, _| false);
    assert!(got[0].is_empty() && assigned(&classic).is_empty());
}

/// The classic protocol's timers and limits over the wire: a member that does not rejoin within
/// the rebalance timeout is dropped from the new generation; the first rebalance of a group waits
/// `group.initial.rebalance.delay.ms`; `group.max.size` turns members away; oversized member
/// metadata is refused.
#[test]
fn rebalance_timeout_initial_delay_max_size_and_oversized_metadata() {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    let s = |v: &str| StrBytes::from_string(v.to_string());
    let join = |group: &str, member: &str, rebalance_ms: i32, metadata: Vec<u8>| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s(member))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(rebalance_ms)
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(bytes::Bytes::from(metadata))])
    };
    let rt = runtime();
    let broker = BrokerProcess::start(FAST_GROUPS);
    rt.block_on(async {
        let [mut c1, mut c2] = clients::<2>(&broker.addr).await;
        let id1 = handed_out_member_id(&mut c1, join("slow", "", 1000, vec![])).await;
        let r = c1.send(join("slow", &id1, 1000, vec![])).await.unwrap();
        assert_eq!((r.error_code, r.generation_id), (0, 1));
        // A second member joins; the first never rejoins: after its rebalance timeout (1 s) the
        // new generation has only the second.
        let id2 = handed_out_member_id(&mut c2, join("slow", "", 1000, vec![])).await;
        let started = Instant::now();
        let hb = |member: &str, generation: i32| {
            HeartbeatRequest::default()
                .with_group_id(GroupId(s("slow")))
                .with_member_id(s(member))
                .with_generation_id(generation)
        };
        // While the second waits, the first hears that a rebalance is under way.
        let (r, first_heartbeat) = tokio::join!(c2.send(join("slow", &id2, 1000, vec![])), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            c1.send(hb(&id1, 1)).await.unwrap().error_code
        });
        assert_eq!(first_heartbeat, 27, "REBALANCE_IN_PROGRESS");
        let r = r.unwrap();
        assert_eq!((r.error_code, r.generation_id), (0, 2));
        assert_eq!(r.leader.as_str(), id2);
        assert_eq!(r.members.len(), 1);
        // At the first member's rebalance timeout: not sooner, and not at a session timeout.
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
            "{waited:?}"
        );
        assert_eq!(
            c1.send(hb(&id1, 1)).await.unwrap().error_code,
            25,
            "UNKNOWN_MEMBER_ID"
        );
        // A second process with the same group.instance.id fences the first.
        let static_join = |member: &str| {
            let mut j = join("fenced", member, 1000, vec![]);
            j.group_instance_id = Some(s("instance-1"));
            j
        };
        let old = c1.send(static_join("")).await.unwrap();
        assert_eq!(old.error_code, 0);
        let new = c2.send(static_join("")).await.unwrap();
        assert_eq!(new.error_code, 0);
        assert_ne!(old.member_id, new.member_id);
        let fenced = HeartbeatRequest::default()
            .with_group_id(GroupId(s("fenced")))
            .with_member_id(old.member_id.clone())
            .with_group_instance_id(Some(s("instance-1")))
            .with_generation_id(old.generation_id);
        assert_eq!(
            c1.send(fenced).await.unwrap().error_code,
            82,
            "FENCED_INSTANCE_ID"
        );
        // Member metadata larger than a record of the offsets topic may hold.
        let r = c1
            .send(join("big", "", 1000, vec![7; 2 << 20]))
            .await
            .unwrap();
        assert_eq!(r.error_code, 10, "MESSAGE_TOO_LARGE");
    });
    let broker = BrokerProcess::start(&[
        "group.initial.rebalance.delay.ms=1000",
        "group.min.session.timeout.ms=500",
        "group.max.size=1",
    ]);
    rt.block_on(async {
        let [mut c1, mut c2] = clients::<2>(&broker.addr).await;
        let id1 = handed_out_member_id(&mut c1, join("small", "", 5000, vec![])).await;
        let started = Instant::now();
        let r = c1.send(join("small", &id1, 5000, vec![])).await.unwrap();
        assert_eq!(r.error_code, 0);
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "the first rebalance waits for more members ({:?})",
            started.elapsed()
        );
        let r = c2.send(join("small", "", 5000, vec![])).await.unwrap();
        assert_eq!(r.error_code, 81, "GROUP_MAX_SIZE_REACHED");
    });
}

/// librdkafka's roundrobin assignor (the classic protocol's client-side assignment) over the
/// coordinator.
#[test]
fn roundrobin_members_split_partitions() {
    let broker = BrokerProcess::start(FAST_GROUPS);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "rr", 4, &[]);
    let strategy = [("partition.assignment.strategy", "roundrobin")];
    let (a, _) = member(&broker.addr, "rrs", &strategy);
    let (b, _) = member(&broker.addr, "rrs", &strategy);
    a.subscribe(&["rr"]).unwrap();
    b.subscribe(&["rr"]).unwrap();
    let (ok, _) = poll_until(&[&a, &b], Duration::from_secs(30), |ms, _| {
        ms.iter().all(|m| assigned(m).len() == 2)
    });
    assert!(ok, "{:?} {:?}", assigned(&a), assigned(&b));
    let protocol = rt.block_on(async {
        use kafka_protocol::messages::*;
        let mut c = strata::client::Client::connect(&broker.addr).await.unwrap();
        let r = c
            .send(DescribeGroupsRequest::default().with_groups(vec![GroupId(
                kafka_protocol::protocol::StrBytes::from_static_str("rrs"),
            )]))
            .await
            .unwrap();
        r.groups[0].protocol_data.to_string()
    });
    assert_eq!(protocol, "roundrobin");
}

/// A KIP-848 member subscribing by regex: the broker resolves it against the topics, and a topic
/// created later that matches is assigned too. An invalid regex is refused.
#[test]
fn a_kip_848_regex_subscription_follows_new_topics() {
    let broker = BrokerProcess::start(&[
        "group.consumer.heartbeat.interval.ms=200",
        "group.consumer.session.timeout.ms=3000",
    ]);
    let rt = runtime();
    for t in ["regex-a", "regex-b", "other"] {
        create_topic(&rt, &broker.addr, t, 2, &[]);
    }
    let recorder = Recorder::default();
    let consumer: Member = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", "by-regex")
        .set("group.protocol", "consumer")
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "500")
        .create_with_context(recorder)
        .expect("consumer");
    consumer.subscribe(&["^regex-.*"]).unwrap();
    let topics = |m: &Member| -> BTreeSet<String> {
        m.assignment()
            .map(|t| t.elements().iter().map(|e| e.topic().to_string()).collect())
            .unwrap_or_default()
    };
    let count = |m: &Member| m.assignment().map(|t| t.count()).unwrap_or(0);
    let (ok, _) = poll_until(&[&consumer], Duration::from_secs(30), |ms, _| {
        count(ms[0]) == 4
    });
    assert!(ok, "{:?}", consumer.assignment());
    assert_eq!(
        topics(&consumer),
        BTreeSet::from(["regex-a".into(), "regex-b".into()])
    );
    create_topic(&rt, &broker.addr, "regex-c", 2, &[]);
    let (ok, _) = poll_until(&[&consumer], Duration::from_secs(30), |ms, _| {
        topics(ms[0]).contains("regex-c")
    });
    let described = rt.block_on(async {
        use kafka_protocol::messages::*;
        let mut c = strata::client::Client::connect(&broker.addr).await.unwrap();
        c.send(
            ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(
                kafka_protocol::protocol::StrBytes::from_static_str("by-regex"),
            )]),
        )
        .await
        .unwrap()
    });
    assert!(ok, "{:?}\n{described:?}", consumer.assignment());
    // The broker resolved it: the member's subscription is the regex itself.
    let member = &described.groups[0].members[0];
    assert!(
        member
            .subscribed_topic_regex
            .as_deref()
            .is_some_and(|r| r.contains("regex-")),
        "{member:?}"
    );
    rt.block_on(async {
        use kafka_protocol::messages::*;
        use kafka_protocol::protocol::StrBytes;
        let mut c = strata::client::Client::connect(&broker.addr).await.unwrap();
        let r = c
            .send(
                ConsumerGroupHeartbeatRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("bad-regex")))
                    .with_member_id(StrBytes::from_static_str("m1"))
                    .with_member_epoch(0)
                    .with_rebalance_timeout_ms(5000)
                    .with_subscribed_topic_names(Some(vec![]))
                    .with_subscribed_topic_regex(Some(StrBytes::from_static_str("(unclosed")))
                    .with_topic_partitions(Some(vec![])),
            )
            .await
            .unwrap();
        assert_eq!(r.error_code, 128, "INVALID_REGULAR_EXPRESSION");
    });
}

/// A static KIP-848 member (group.instance.id) that restarts gets its partitions back and the
/// other member keeps its own throughout: nothing is revoked from it.
#[test]
fn a_static_kip_848_member_returns_to_its_partitions() {
    let broker = BrokerProcess::start(&[
        "group.consumer.heartbeat.interval.ms=200",
        "group.consumer.session.timeout.ms=10000",
    ]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "static848", 4, &[]);
    let new_member = |instance: &str| -> (Member, Recorder) {
        let recorder = Recorder::default();
        let consumer: Member = ClientConfig::new()
            .set("bootstrap.servers", &broker.addr)
            .set("group.id", "statics848")
            .set("group.protocol", "consumer")
            .set("group.instance.id", instance)
            .set("enable.auto.commit", "false")
            .create_with_context(recorder.clone())
            .expect("consumer");
        consumer.subscribe(&["static848"]).unwrap();
        (consumer, recorder)
    };
    let (a, a_events) = new_member("a");
    let (b, _) = new_member("b");
    let (ok, _) = poll_until(&[&a, &b], Duration::from_secs(30), |ms, _| {
        ms.iter().all(|m| assigned(m).len() == 2)
    });
    assert!(ok, "{:?} {:?}", assigned(&a), assigned(&b));
    let b_partitions = assigned(&b);
    let a_partitions = assigned(&a);
    let revoked_before = a_events
        .events()
        .iter()
        .filter(|(kind, ps)| kind == "revoke" && !ps.is_empty())
        .count();
    drop(b);
    let (b2, _) = new_member("b");
    let (ok, _) = poll_until(&[&a, &b2], Duration::from_secs(20), |_, _| {
        assigned(&b2).len() == 2
    });
    assert!(ok, "b2 got {:?}", assigned(&b2));
    assert_eq!(assigned(&b2), b_partitions, "the same partitions come back");
    poll_until(&[&a, &b2], Duration::from_secs(1), |_, _| false);
    assert_eq!(assigned(&a), a_partitions, "a kept its partitions");
    let revoked_after = a_events
        .events()
        .iter()
        .filter(|(kind, ps)| kind == "revoke" && !ps.is_empty())
        .count();
    assert_eq!(revoked_after, revoked_before, "{:?}", a_events.events());
}

/// The coordinator keeps a Stable group's membership in `__consumer_offsets`: after a restart
/// (clean or kill -9) the members go on heartbeating with their generation, and nobody gives up a
/// partition.
#[test]
fn a_stable_group_stays_stable_across_coordinator_restarts() {
    let mut broker = broker_with_records("steady", 4, 5);
    let (a, a_events) = member(
        &broker.addr,
        "steady-group",
        &[("session.timeout.ms", "10000")],
    );
    let (b, b_events) = member(
        &broker.addr,
        "steady-group",
        &[("session.timeout.ms", "10000")],
    );
    a.subscribe(&["steady"]).unwrap();
    b.subscribe(&["steady"]).unwrap();
    let (ok, _) = poll_until(&[&a, &b], Duration::from_secs(30), |ms, _| {
        ms.iter().all(|m| assigned(m).len() == 2)
    });
    assert!(ok, "{:?} {:?}", assigned(&a), assigned(&b));
    keeps_partitions_across_restarts(&mut broker, [(&a, &a_events), (&b, &b_events)]);
    let state = strata_tool("groups", &broker.addr, &["--list", "--state"]).1;
    assert!(state.contains("Stable"), "{state}");
}

/// A KIP-848 group's state (epochs, members, assignments) is kept in `__consumer_offsets` too: after
/// a restart, clean or kill -9, the members heartbeat on with their epochs and keep their
/// partitions.
#[test]
fn a_kip_848_group_keeps_its_assignment_across_coordinator_restarts() {
    let mut broker = BrokerProcess::start(&[
        "group.consumer.heartbeat.interval.ms=200",
        "group.consumer.session.timeout.ms=10000",
    ]);
    create_topic(&runtime(), &broker.addr, "steady848", 4, &[]);
    let new_member = || -> (Member, Recorder) {
        let recorder = Recorder::default();
        let consumer: Member = ClientConfig::new()
            .set("bootstrap.servers", &broker.addr)
            .set("group.id", "steady848-group")
            .set("group.protocol", "consumer")
            .set("enable.auto.commit", "false")
            .create_with_context(recorder.clone())
            .expect("consumer");
        consumer.subscribe(&["steady848"]).unwrap();
        (consumer, recorder)
    };
    let (a, a_events) = new_member();
    let (b, b_events) = new_member();
    let (ok, _) = poll_until(&[&a, &b], Duration::from_secs(30), |ms, _| {
        ms.iter().all(|m| assigned(m).len() == 2)
    });
    assert!(ok, "{:?} {:?}", assigned(&a), assigned(&b));
    keeps_partitions_across_restarts(&mut broker, [(&a, &a_events), (&b, &b_events)]);
}

/// Restarts the broker twice (clean, then kill -9) while `members` poll: none of them revokes a
/// partition and each keeps what it had.
fn keeps_partitions_across_restarts(
    broker: &mut BrokerProcess,
    members: [(&Member, &Recorder); 2],
) {
    let revocations = |events: &Recorder| {
        events
            .events()
            .iter()
            .filter(|(kind, ps)| kind == "revoke" && !ps.is_empty())
            .count()
    };
    let before: Vec<usize> = members.iter().map(|(_, e)| revocations(e)).collect();
    let parts: Vec<BTreeSet<i32>> = members.iter().map(|(m, _)| assigned(m)).collect();
    let consumers: Vec<&Member> = members.iter().map(|(m, _)| *m).collect();
    for crash in [false, true] {
        if crash {
            broker.kill();
        } else {
            broker.stop();
        }
        broker.restart();
        // Long enough for several heartbeats against the restarted coordinator.
        poll_until(&consumers, Duration::from_secs(3), |_, _| false);
        let after: Vec<usize> = members.iter().map(|(_, e)| revocations(e)).collect();
        assert_eq!(
            after,
            before,
            "crash={crash}: {:?}",
            members.iter().map(|(_, e)| e.events()).collect::<Vec<_>>()
        );
        let now: Vec<BTreeSet<i32>> = members.iter().map(|(m, _)| assigned(m)).collect();
        assert_eq!(now, parts, "crash={crash}");
    }
}
