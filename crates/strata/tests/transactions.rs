//! Transactions through the protocol, as a transactional producer and kafka-transactions.sh
//! speak it: Kafka's errors for bad requests (and nothing changed by them), fencing, the last
//! stable offset, the admin APIs, timeouts, and crashes during a transaction and between its
//! decision and its markers. Client libraries' transactions are in python_clients.rs and
//! js_clients.rs.

mod common;

use std::time::Duration;

use common::txn::*;
use common::*;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::*;
use strata::client::Client;

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
const PRODUCER_FENCED: i16 = 90;

#[test]
fn bad_requests_get_kafkas_errors_and_change_nothing() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "tx", 2, &[]);
    rt.block_on(async {
        let mut admin = Client::connect(&broker.addr).await.unwrap();
        let mut p = TxnClient::connect(&broker.addr, "bad").await;
        // Nothing before InitProducerId.
        p.pid = 5;
        p.epoch = 0;
        assert_eq!(
            p.end(true).await,
            INVALID_PRODUCER_ID_MAPPING,
            "EndTxn first"
        );
        assert_eq!(p.add(&[("tx", 0)]).await, vec![INVALID_PRODUCER_ID_MAPPING]);
        assert_eq!(
            describe(&mut admin, "bad").await.error_code,
            TRANSACTIONAL_ID_NOT_FOUND
        );
        assert_eq!(p.init(0).await, INVALID_TRANSACTION_TIMEOUT);
        assert_eq!(
            p.init(900_001).await,
            INVALID_TRANSACTION_TIMEOUT,
            "over transaction.max.timeout.ms"
        );
        assert_eq!(p.init(60_000).await, 0);
        assert_eq!(p.epoch, 0);
        // No transaction yet: nothing to end.
        assert_eq!(p.end(true).await, INVALID_TXN_STATE);
        // An unknown partition spoils the request: nothing is added.
        assert_eq!(
            p.add(&[("tx", 0), ("tx", 9), ("nope", 0)]).await,
            vec![
                OPERATION_NOT_ATTEMPTED,
                UNKNOWN_TOPIC_OR_PARTITION,
                UNKNOWN_TOPIC_OR_PARTITION
            ]
        );
        let d = describe(&mut admin, "bad").await;
        assert_eq!((d.transaction_state.as_str(), d.topics.len()), ("Empty", 0));
        // A transactional produce to a partition not in the transaction.
        assert_eq!(p.produce("tx", 0, 2).await, INVALID_TXN_STATE);
        // A stale epoch: PRODUCER_FENCED, or INVALID_PRODUCER_EPOCH before version 2.
        p.epoch = 3;
        assert_eq!(p.add(&[("tx", 0)]).await, vec![PRODUCER_FENCED]);
        assert_eq!(
            p.add_at(1, &[("tx", 0)]).await,
            vec![INVALID_PRODUCER_EPOCH]
        );
        assert_eq!(p.end_at(1, true).await, INVALID_PRODUCER_EPOCH);
        let real_pid = p.pid;
        p.pid = real_pid + 100;
        p.epoch = 0;
        assert_eq!(p.add(&[("tx", 0)]).await, vec![INVALID_PRODUCER_ID_MAPPING]);
        p.pid = real_pid;
        let d = describe(&mut admin, "bad").await;
        assert_eq!(
            (d.transaction_state.as_str(), d.topics.len()),
            ("Empty", 0),
            "nothing changed"
        );

        // Now properly: partition 0 in the transaction, partition 1 not.
        assert_eq!(p.add(&[("tx", 0)]).await, vec![0]);
        assert_eq!(p.produce("tx", 0, 3).await, 0);
        assert_eq!(
            p.produce("tx", 1, 3).await,
            INVALID_TXN_STATE,
            "partition 1 not added"
        );
        p.epoch = 1;
        assert_eq!(p.produce("tx", 0, 1).await, INVALID_PRODUCER_EPOCH);
        p.epoch = 0;
        // Abort and commit mixed up.
        let d = describe(&mut admin, "bad").await;
        assert_eq!(d.transaction_state.as_str(), "Ongoing");
        assert_eq!(d.producer_id.0, p.pid);
        assert_eq!(d.topics[0].partitions, vec![0]);
        assert!(d.transaction_start_time_ms > 0);
        assert_eq!(latest(&mut admin, "tx", 0, false).await, 3);
        assert_eq!(
            latest(&mut admin, "tx", 0, true).await,
            0,
            "the open transaction holds the LSO"
        );
        assert_eq!(p.end(false).await, 0);
        assert_eq!(
            p.end(false).await,
            0,
            "a retried abort is answered as before"
        );
        assert_eq!(p.end(true).await, INVALID_TXN_STATE, "commit after abort");
        assert_eq!(
            latest(&mut admin, "tx", 0, true).await,
            4,
            "past the abort marker"
        );
        assert_eq!(
            describe(&mut admin, "bad").await.transaction_state.as_str(),
            "CompleteAbort"
        );
    });
}

#[test]
fn a_new_producer_fences_the_old_one_and_aborts_its_transaction() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "fence", 1, &[]);
    rt.block_on(async {
        let mut admin = Client::connect(&broker.addr).await.unwrap();
        let mut old = TxnClient::connect(&broker.addr, "f").await;
        assert_eq!(old.init(60_000).await, 0);
        assert_eq!(old.add(&[("fence", 0)]).await, vec![0]);
        assert_eq!(old.produce("fence", 0, 5).await, 0);
        let mut new = TxnClient::connect(&broker.addr, "f").await;
        // The first attempt fences and aborts; the producer retries, as clients do.
        assert_eq!(new.init(60_000).await, CONCURRENT_TRANSACTIONS);
        assert_eq!(new.init(60_000).await, 0);
        assert_eq!((new.pid, new.epoch), (old.pid, 2));
        assert_eq!(
            latest(&mut admin, "fence", 0, true).await,
            6,
            "aborted: stable again"
        );
        assert_eq!(
            old.produce("fence", 0, 1).await,
            INVALID_PRODUCER_EPOCH,
            "zombie write"
        );
        assert_eq!(old.add(&[("fence", 0)]).await, vec![PRODUCER_FENCED]);
        assert_eq!(old.end(true).await, PRODUCER_FENCED);
        assert_eq!(new.add(&[("fence", 0)]).await, vec![0]);
        assert_eq!(new.produce("fence", 0, 2).await, 0);
        assert_eq!(new.end(true).await, 0);
        assert_eq!(latest(&mut admin, "fence", 0, true).await, 9);
        // The read_committed consumer sees only the new producer's two records.
        let committed = consume_partition(&broker.addr, "fence", 0, "read_committed", 2);
        assert_eq!(committed, vec!["v0", "v1"]);
        let everything = consume_partition(&broker.addr, "fence", 0, "read_uncommitted", 7);
        assert_eq!(everything.len(), 7);
    });
}

#[test]
fn admin_apis_list_describe_and_abort_a_transaction() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "adm", 1, &[]);
    rt.block_on(async {
        let mut admin = Client::connect(&broker.addr).await.unwrap();
        let mut a = TxnClient::connect(&broker.addr, "adm-a").await;
        let mut b = TxnClient::connect(&broker.addr, "adm-b").await;
        assert_eq!(a.init(60_000).await, 0);
        assert_eq!(b.init(60_000).await, 0);
        assert_eq!(a.add(&[("adm", 0)]).await, vec![0]);
        assert_eq!(a.produce("adm", 0, 4).await, 0);

        let listed = admin
            .send(ListTransactionsRequest::default())
            .await
            .unwrap();
        let mut states: Vec<(String, String)> = listed
            .transaction_states
            .iter()
            .map(|t| {
                (
                    t.transactional_id.to_string(),
                    t.transaction_state.to_string(),
                )
            })
            .collect();
        states.sort();
        assert_eq!(
            states,
            vec![
                ("adm-a".into(), "Ongoing".into()),
                ("adm-b".into(), "Empty".into())
            ]
        );
        let ongoing = admin
            .send(
                ListTransactionsRequest::default()
                    .with_state_filters(vec![s("Ongoing"), s("NoSuchState")]),
            )
            .await
            .unwrap();
        assert_eq!(ongoing.transaction_states.len(), 1);
        assert_eq!(ongoing.unknown_state_filters, vec![s("NoSuchState")]);
        let by_pid = admin
            .send(
                ListTransactionsRequest::default()
                    .with_producer_id_filters(vec![ProducerId(b.pid)]),
            )
            .await
            .unwrap();
        assert_eq!(
            by_pid.transaction_states[0].transactional_id.as_str(),
            "adm-b"
        );

        let producers = describe_producers(&mut admin, "adm", 0).await;
        let p = &producers.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let active = &p.active_producers[0];
        assert_eq!(
            (
                active.producer_id.0,
                active.producer_epoch,
                active.last_sequence,
                active.current_txn_start_offset
            ),
            (a.pid, 0, 3, 0)
        );

        // kafka-transactions.sh abort: an ABORT marker written for the producer.
        let written = write_abort_marker(&mut admin, a.pid, a.epoch, "adm").await;
        assert_eq!(written.markers[0].topics[0].partitions[0].error_code, 0);
        assert_eq!(
            latest(&mut admin, "adm", 0, true).await,
            5,
            "stable past the marker"
        );
        let producers = describe_producers(&mut admin, "adm", 0).await;
        assert_eq!(
            producers.topics[0].partitions[0].active_producers[0].current_txn_start_offset,
            -1
        );
        let unknown = write_abort_marker(&mut admin, a.pid, a.epoch, "gone").await;
        assert_eq!(
            unknown.markers[0].topics[0].partitions[0].error_code,
            UNKNOWN_TOPIC_OR_PARTITION
        );
    });
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let broker =
        BrokerProcess::start(&["transaction.abort.timed.out.transaction.cleanup.interval.ms=100"]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "slow", 1, &[]);
    rt.block_on(async {
        let mut admin = Client::connect(&broker.addr).await.unwrap();
        let mut p = TxnClient::connect(&broker.addr, "slow").await;
        assert_eq!(p.init(500).await, 0);
        assert_eq!(p.add(&[("slow", 0)]).await, vec![0]);
        assert_eq!(p.produce("slow", 0, 3).await, 0);
        assert_eq!(latest(&mut admin, "slow", 0, true).await, 0);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while latest(&mut admin, "slow", 0, true).await != 4 {
            assert!(
                std::time::Instant::now() < deadline,
                "the transaction was never aborted"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let d = describe(&mut admin, "slow").await;
        assert_eq!(
            (d.transaction_state.as_str(), d.producer_epoch),
            ("CompleteAbort", 1)
        );
        assert_eq!(
            p.end(true).await,
            PRODUCER_FENCED,
            "its producer was fenced"
        );
    });
    assert!(broker
        .log()
        .contains("aborting a transaction past its timeout"));
}

#[test]
fn crashes_during_a_transaction_and_between_decision_and_markers() {
    let mut broker =
        BrokerProcess::start(&["transaction.abort.timed.out.transaction.cleanup.interval.ms=100"]);
    broker.set_env("STRATA_CRASH_AT", Some("txn-after-prepare"));
    broker.kill();
    broker.restart();
    let rt = runtime();
    create_topic(&rt, &broker.addr, "crash", 2, &[]);
    let (committed_pid, open_pid) = rt.block_on(async {
        // A transaction left open by the crash, with a short timeout.
        let mut open = TxnClient::connect(&broker.addr, "open").await;
        assert_eq!(open.init(2_000).await, 0);
        assert_eq!(open.add(&[("crash", 1)]).await, vec![0]);
        assert_eq!(open.produce("crash", 1, 4).await, 0);
        // A committed transaction whose markers the crash prevents.
        let mut p = TxnClient::connect(&broker.addr, "decided").await;
        assert_eq!(p.init(60_000).await, 0);
        assert_eq!(p.add(&[("crash", 0), ("crash", 1)]).await, vec![0, 0]);
        assert_eq!(p.produce("crash", 0, 5).await, 0);
        assert_eq!(p.produce("crash", 1, 1).await, 0);
        let end = tokio::time::timeout(
            Duration::from_secs(10),
            p.client.send(
                EndTxnRequest::default()
                    .with_transactional_id(txn_id("decided"))
                    .with_producer_id(ProducerId(p.pid))
                    .with_producer_epoch(p.epoch)
                    .with_committed(true),
            ),
        )
        .await
        .expect("the broker answers or goes away");
        assert!(end.is_err(), "the broker crashed before answering EndTxn");
        (p.pid, open.pid)
    });
    assert!(
        broker.wait_exit(Duration::from_secs(10)).is_some(),
        "crashed at the crash point"
    );
    broker.set_env("STRATA_CRASH_AT", None);
    broker.restart();
    assert!(broker.log().contains("completing a decided transaction"));
    rt.block_on(async {
        let mut admin = Client::connect(&broker.addr).await.unwrap();
        let d = describe(&mut admin, "decided").await;
        assert_eq!(
            (d.transaction_state.as_str(), d.producer_id.0),
            ("CompleteCommit", committed_pid)
        );
        // Partition 0 is stable at once: the commit was completed at startup.
        assert_eq!(latest(&mut admin, "crash", 0, true).await, 6);
        // Partition 1 waits for the open transaction, which its timeout aborts.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while latest(&mut admin, "crash", 1, true).await
            != latest(&mut admin, "crash", 1, false).await
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the open transaction stalls consumers"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let d = describe(&mut admin, "open").await;
        assert_eq!(
            (d.transaction_state.as_str(), d.producer_id.0),
            ("CompleteAbort", open_pid)
        );
    });
    let p0 = consume_partition(&broker.addr, "crash", 0, "read_committed", 5);
    assert_eq!(
        p0,
        vec!["v0", "v1", "v2", "v3", "v4"],
        "every committed record, once"
    );
    let p1 = consume_partition(&broker.addr, "crash", 1, "read_committed", 1);
    assert_eq!(
        p1,
        vec!["v0"],
        "the committed record of partition 1, not the aborted four"
    );
    // A clean restart keeps every id in its state.
    broker.stop();
    broker.restart();
    rt.block_on(async {
        let mut admin = Client::connect(&broker.addr).await.unwrap();
        assert_eq!(
            describe(&mut admin, "decided")
                .await
                .transaction_state
                .as_str(),
            "CompleteCommit"
        );
        assert_eq!(
            describe(&mut admin, "open")
                .await
                .transaction_state
                .as_str(),
            "CompleteAbort"
        );
    });
}

/// `strata transactions find-hanging` on the "tool" topic, with no grace time.
fn find_hanging(broker: &str) -> (bool, String, String) {
    strata_tool(
        "transactions",
        broker,
        &[
            "find-hanging",
            "--topic",
            "tool",
            "--max-transaction-timeout",
            "0",
        ],
    )
}

#[test]
fn the_transactions_tool_lists_describes_finds_and_aborts_hanging_transactions() {
    let mut broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "tool", 1, &[]);
    let pid = rt.block_on(async {
        let mut p = TxnClient::connect(&broker.addr, "tool-tx").await;
        assert_eq!(p.init(60_000).await, 0);
        assert_eq!(p.add(&[("tool", 0)]).await, vec![0]);
        assert_eq!(p.produce("tool", 0, 3).await, 0);
        p.pid
    });
    let b = broker.addr.clone();
    let (ok, out, err) = strata_tool("transactions", &b, &["list"]);
    assert!(ok, "{err}");
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "TransactionalId",
            "Coordinator",
            "ProducerId",
            "TransactionState"
        ]
    );
    assert_eq!(lines[1], ["tool-tx", "0", &pid.to_string(), "Ongoing"]);
    let (ok, out, err) = strata_tool(
        "transactions",
        &b,
        &["describe", "--transactional-id", "tool-tx"],
    );
    assert!(ok, "{err}");
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..6],
        ["0", "tool-tx", &pid.to_string(), "0", "Ongoing", "60000"]
    );
    assert_eq!(row[8], "tool-0");
    let (ok, _, err) = strata_tool(
        "transactions",
        &b,
        &["describe", "--transactional-id", "nope"],
    );
    assert!(!ok && err.contains("TransactionalIdNotFound"), "{err}");
    let (ok, out, _) = strata_tool(
        "transactions",
        &b,
        &["describe-producers", "--topic", "tool", "--partition", "0"],
    );
    assert!(ok);
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        (row[0], row[1], row[3], row[5]),
        (pid.to_string().as_str(), "0", "2", "0")
    );
    // Known to its coordinator as ongoing: not hanging, however old.
    let (ok, out, _) = find_hanging(&b);
    assert!(ok);
    assert_eq!(out.lines().count(), 1, "only the header: {out}");

    // The coordinator's state lost (its topic removed while the broker was down): the open
    // transaction on the partition now hangs, and holds read_committed consumers back.
    broker.stop();
    for entry in std::fs::read_dir(broker.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("__transaction_state-")
        {
            std::fs::remove_dir_all(path).unwrap();
        }
    }
    broker.restart();
    let b = broker.addr.clone();
    let (ok, out, _) = find_hanging(&b);
    assert!(ok);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(
        (rows[0][0], rows[0][1], rows[0][2], rows[0][5]),
        ("tool", "0", pid.to_string().as_str(), "0")
    );
    let stable = |rt: &tokio::runtime::Runtime| {
        rt.block_on(async {
            let mut admin = Client::connect(&b).await.unwrap();
            latest(&mut admin, "tool", 0, true).await
        })
    };
    assert_eq!(stable(&rt), 0, "the hanging transaction holds the LSO");
    let (ok, _, err) = strata_tool(
        "transactions",
        &b,
        &[
            "abort",
            "--topic",
            "tool",
            "--partition",
            "0",
            "--start-offset",
            "7",
        ],
    );
    assert!(
        !ok && err.contains("Could not find any open transactions"),
        "{err}"
    );
    let (ok, out, err) = strata_tool(
        "transactions",
        &b,
        &[
            "abort",
            "--topic",
            "tool",
            "--partition",
            "0",
            "--start-offset",
            "0",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("Aborted"), "{out}");
    assert_eq!(stable(&rt), 4, "past the abort marker");
    let (_, out, _) = find_hanging(&b);
    assert_eq!(out.lines().count(), 1, "nothing hangs now: {out}");
}

/// The coordinator's reload time after 100,000 transactions: by 10 transactional ids (10,000
/// each) and by 1,000 ids (100 each), over 10 partitions, committed one by one. Run by
/// `bench/transactions.py`, which reports it.
#[test]
#[ignore]
fn reload_time_after_100k_transactions() {
    for ids in [10usize, 1000] {
        let mut broker = BrokerProcess::start(&["log.cleaner.backoff.ms=100"]);
        let rt = runtime();
        create_topic(&rt, &broker.addr, "reload", 10, &[]);
        let per_id = 100_000 / ids;
        let started = std::time::Instant::now();
        rt.block_on(async {
            let tasks: Vec<_> = (0..10)
                .map(|task| {
                    let addr = broker.addr.clone();
                    tokio::spawn(async move {
                        for id in (task..ids).step_by(10) {
                            let mut p = TxnClient::connect(&addr, &format!("reload-{id}")).await;
                            assert_eq!(p.init(60_000).await, 0);
                            for i in 0..per_id {
                                let partition = ((id + i) % 10) as i32;
                                assert_eq!(p.add(&[("reload", partition)]).await, vec![0]);
                                assert_eq!(p.produce("reload", partition, 1).await, 0);
                                assert_eq!(p.end(true).await, 0);
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        let txn_s = started.elapsed().as_secs_f64();
        // The cleaner compacts the segments the coordinator rolled: wait until it has been idle
        // for a second.
        let passes = |b: &BrokerProcess| {
            b.log()
                .lines()
                .filter(|l| l.contains("log cleaned") && l.contains("topic=__transaction_state"))
                .count()
        };
        let mut seen = passes(&broker);
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let now = passes(&broker);
            if now == seen {
                break;
            }
            seen = now;
        }
        broker.stop();
        broker.restart();
        let us = broker.logged_elapsed_us("transaction state loaded");
        // The records the reload read, from the same log line.
        let kept: u64 = broker
            .log()
            .lines()
            .rev()
            .find(|l| l.contains("transaction state loaded"))
            .and_then(|l| l.split(" records=").nth(1))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("records in the load line");
        rt.block_on(async {
            let mut admin = Client::connect(&broker.addr).await.unwrap();
            let d = describe(&mut admin, "reload-0").await;
            assert_eq!(d.transaction_state.as_str(), "CompleteCommit");
            assert_eq!(
                latest(&mut admin, "reload", 0, true).await,
                latest(&mut admin, "reload", 0, false).await
            );
        });
        println!("TXN_RELOAD ids={ids} transactions=100000 state_records={kept} reload_us={us} txn_s={txn_s:.1}");
    }
}

#[test]
fn unused_transactional_ids_expire_but_not_those_with_a_transaction_open() {
    let mut broker = BrokerProcess::start(&[
        "transactional.id.expiration.ms=300",
        "transaction.remove.expired.transaction.cleanup.interval.ms=100",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms=100",
    ]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "exp", 1, &[]);
    rt.block_on(async {
        let mut admin = Client::connect(&broker.addr).await.unwrap();
        let mut idle = TxnClient::connect(&broker.addr, "idle").await;
        assert_eq!(idle.init(60_000).await, 0);
        let mut busy = TxnClient::connect(&broker.addr, "busy").await;
        assert_eq!(busy.init(60_000).await, 0);
        assert_eq!(busy.add(&[("exp", 0)]).await, vec![0]);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while describe(&mut admin, "idle").await.error_code != TRANSACTIONAL_ID_NOT_FOUND {
            assert!(
                std::time::Instant::now() < deadline,
                "the idle id never expired"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            describe(&mut admin, "busy")
                .await
                .transaction_state
                .as_str(),
            "Ongoing"
        );
        // An expired id starts over: a new producer id.
        let old_pid = idle.pid;
        assert_eq!(idle.init(60_000).await, 0);
        assert_ne!(idle.pid, old_pid);
    });
    // The expiry is in the log: a restart does not bring the id back.
    broker.stop();
    broker.restart();
    rt.block_on(async {
        let mut admin = Client::connect(&broker.addr).await.unwrap();
        assert_eq!(
            describe(&mut admin, "busy")
                .await
                .transaction_state
                .as_str(),
            "Ongoing"
        );
    });
}

async fn describe_producers(
    admin: &mut Client,
    topic: &str,
    partition: i32,
) -> DescribeProducersResponse {
    admin
        .send(
            DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(vec![partition])]),
        )
        .await
        .unwrap()
}

/// WriteTxnMarkers with an ABORT for the producer on partition 0 of `topic` (what
/// kafka-transactions.sh's abort sends).
async fn write_abort_marker(
    admin: &mut Client,
    pid: i64,
    epoch: i16,
    topic: &str,
) -> WriteTxnMarkersResponse {
    admin
        .send(
            WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_transaction_result(false)
                .with_coordinator_epoch(0)
                .with_topics(vec![WritableTxnMarkerTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_indexes(vec![0])])]),
        )
        .await
        .unwrap()
}
