//! Listeners and TLS: several listeners at once, SSL with the broker's key and chain in PEM,
//! mutual TLS against a truststore, Metadata answering with the endpoints of the listener a
//! client came in on, and hostile bytes on a TLS port. Certificates are made here (rcgen).

mod common;
mod security_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use security_support::*;

/// librdkafka over SSL: it bootstraps on the SSL listener, Metadata sends it back to that
/// listener (not the plaintext one), and records go both ways; the plaintext listener serves at
/// the same time.
#[test]
fn librdkafka_produces_and_consumes_over_ssl() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certificates(dir.path());
    let secret = "org.apache.kafka.common.security.plain.PlainLoginModule required user_admin=\"hunter2-secret\";";
    let (broker, ssl_addr) = tls_broker(
        &certs,
        &[format!(
            "listener.name.sasl_ssl.plain.sasl.jaas.config={secret}"
        )],
    );
    let rt = runtime();
    create_topic(&rt, &broker.addr, "secure", 1, &[]);
    // A secret setting is listed without its value, and never logged.
    let (ok, out, err) = strata_tool(
        "configs",
        &broker.addr,
        &[
            "--describe",
            "--entity-type",
            "brokers",
            "--entity-name",
            "0",
            "--all",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("sasl.jaas.config"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
    assert!(!broker.log().contains("hunter2"));
    let got = produce_and_read(&ssl_client(&ssl_addr, &certs, false), "secure", 50);
    let want: Vec<String> = (0..50).map(|i| format!("secret-{i}")).collect();
    assert_eq!(got, want);
    // The same records through the plaintext listener.
    let mut plain = ClientConfig::new();
    plain.set("bootstrap.servers", &broker.addr);
    let consumer: BaseConsumer = plain
        .clone()
        .set("group.id", "plain-reader")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    let b = &metadata.brokers()[0];
    assert_eq!(
        format!("{}:{}", b.host(), b.port()),
        broker.addr,
        "the plaintext listener's Metadata names the plaintext endpoint"
    );
    let ssl_consumer: BaseConsumer = ssl_client(&ssl_addr, &certs, false).create().unwrap();
    let metadata = ssl_consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    let b = &metadata.brokers()[0];
    assert_eq!(format!("{}:{}", b.host(), b.port()), ssl_addr);
}

/// Mutual TLS: with `ssl.client.auth=required` a client with a certificate the truststore
/// vouches for gets in, one without gets nowhere.
#[test]
fn mutual_tls_requires_a_trusted_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certificates(dir.path());
    let (broker, ssl_addr) = tls_broker(
        &certs,
        &["listener.name.ssl.ssl.client.auth=required".to_string()],
    );
    let rt = runtime();
    create_topic(&rt, &broker.addr, "mtls", 1, &[]);
    let got = produce_and_read(&ssl_client(&ssl_addr, &certs, true), "mtls", 5);
    assert_eq!(got.len(), 5);
    // No certificate: the handshake fails, nothing is produced.
    let mut refused = ssl_client(&ssl_addr, &certs, false);
    refused.set("message.timeout.ms", "3000");
    let producer: FutureProducer = refused.create().unwrap();
    let sent = rt.block_on(async {
        producer
            .send(
                FutureRecord::<(), _>::to("mtls")
                    .partition(0)
                    .payload("intruder"),
                Duration::from_secs(5),
            )
            .await
    });
    assert!(sent.is_err(), "a client without a certificate produced");
    assert!(
        broker.log().contains("TLS handshake failed"),
        "{}",
        broker.log()
    );
}

/// ssl.principal.mapping.rules (Kafka's RULE syntax) turns the client certificate's subject
/// (`O=corp,CN=alice` as RFC 2253 writes the one the tests make) into `User:ALICE`, which ACLs
/// then name; a certificate no rule applies to is refused.
#[test]
fn certificate_principals_follow_the_mapping_rules() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certificates(dir.path());
    let produce_one = |addr: &str| {
        let mut config = ssl_client(addr, &certs, true);
        config.set("message.timeout.ms", "5000");
        let producer: FutureProducer = config.create().unwrap();
        runtime().block_on(async {
            producer
                .send(
                    FutureRecord::<(), _>::to("mapped")
                        .partition(0)
                        .payload("x"),
                    Duration::from_secs(6),
                )
                .await
                .is_ok()
        })
    };
    let (broker, ssl_addr) = tls_broker(
        &certs,
        &[
            "listener.name.ssl.ssl.client.auth=required".to_string(),
            r"ssl.principal.mapping.rules=RULE:^O=corp,CN=([^,]*)$/$1/U,DEFAULT".to_string(),
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
                .to_string(),
            "super.users=User:ANONYMOUS".to_string(),
        ],
    );
    create_topic(&runtime(), &broker.addr, "mapped", 1, &[]);
    assert!(!produce_one(&ssl_addr), "produced before any ACL");
    let (ok, out, err) = strata_tool(
        "acls",
        &broker.addr,
        &[
            "--add",
            "--allow-principal",
            "User:ALICE",
            "--producer",
            "--topic",
            "mapped",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(produce_one(&ssl_addr), "User:ALICE's ACL did not apply");

    let (mut broker, ssl_addr) = tls_broker(
        &certs,
        &[
            "listener.name.ssl.ssl.client.auth=required".to_string(),
            r"ssl.principal.mapping.rules=RULE:^O=other,CN=([^,]*)$/$1/".to_string(),
        ],
    );
    create_topic(&runtime(), &broker.addr, "mapped", 1, &[]);
    assert!(
        !produce_one(&ssl_addr),
        "a certificate no rule applies to produced"
    );
    assert!(broker
        .log()
        .contains("no ssl.principal.mapping.rules rule applies"));
    // A rule that does not parse stops startup, naming the key.
    broker.stop();
    broker.set_override("ssl.principal.mapping.rules=RULE:broken");
    let out = broker.start_refused();
    assert!(out.contains("ssl.principal.mapping.rules"), "{out}");
}

/// A renewed key and certificate written over the keystore file are served to the next
/// clients without a restart (the file is checked at most once a second).
#[test]
fn a_renewed_certificate_file_is_picked_up_without_a_restart() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let certs = make_certificates(first.path());
    let renewed = make_certificates(second.path());
    let (broker, ssl_addr) = tls_broker(&certs, &[]);
    create_topic(&runtime(), &broker.addr, "renewed", 1, &[]);
    let trusting = |ca_dir: &std::path::Path| {
        let mut c = ssl_client(&ssl_addr, ca_dir, false);
        c.set("message.timeout.ms", "4000");
        let producer: FutureProducer = c.create().unwrap();
        runtime().block_on(async {
            producer
                .send(
                    FutureRecord::<(), _>::to("renewed")
                        .partition(0)
                        .payload("x"),
                    Duration::from_secs(5),
                )
                .await
                .is_ok()
        })
    };
    assert!(trusting(&certs));
    assert!(
        !trusting(&renewed),
        "a client trusting only the new CA connected early"
    );
    // A new key and chain from another CA, over the same file (its mtime moves on).
    std::thread::sleep(Duration::from_millis(1100));
    let tmp = certs.join("server.pem.new");
    std::fs::copy(renewed.join("server.pem"), &tmp).unwrap();
    std::fs::rename(&tmp, certs.join("server.pem")).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert!(trusting(&renewed), "the renewed certificate was not served");
    assert!(!trusting(&certs), "the old certificate is still served");
    assert!(broker.log().contains("TLS certificate reloaded"));
}

/// Plaintext Kafka bytes sent to the TLS port, and a handshake cut short, close the connection;
/// the broker keeps serving on both listeners.
#[test]
fn plaintext_and_truncated_handshakes_on_a_tls_port_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certificates(dir.path());
    let (broker, ssl_addr) = tls_broker(&certs, &[]);
    // An ApiVersions request in the clear.
    let mut s = TcpStream::connect(&ssl_addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(&[0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0, 0])
        .unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    // A TLS alert at most, then the end of the stream; never a Kafka response.
    assert!(n == 0 || buf[0] == 0x15, "got {:?}", &buf[..n]);
    // The first bytes of a ClientHello, then silence: closed within the handshake timeout.
    let mut s = TcpStream::connect(&ssl_addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    let started = std::time::Instant::now();
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "a truncated handshake was answered");
    assert!(started.elapsed() < Duration::from_secs(25));
    // Both listeners still serve.
    let rt = runtime();
    create_topic(&rt, &broker.addr, "after", 1, &[]);
    assert_eq!(
        produce_and_read(&ssl_client(&ssl_addr, &certs, false), "after", 3).len(),
        3
    );
}

/// A TLS listener whose key cannot be read stops the broker at startup with a message naming
/// the listener and the file.
#[test]
fn a_tls_listener_without_a_readable_key_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(&[]);
    broker.stop();
    broker.set_override("listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0");
    broker.set_override(&format!(
        "ssl.keystore.location={}",
        dir.path().join("missing.pem").display()
    ));
    let log = broker.start_refused();
    assert!(
        log.contains("listener SSL") && log.contains("missing.pem"),
        "{log}"
    );
}

/// SASL PLAIN on SASL_PLAINTEXT and SASL_SSL listeners (users from Kafka's JAAS line):
/// librdkafka with the right password produces and consumes, with a wrong one gets nothing
/// through; no password reaches the log.
#[test]
fn sasl_plain_over_plaintext_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certificates(dir.path());
    let (sasl_port, sasl_ssl_port) = (free_port(), free_port());
    let settings = [
        format!(
            "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{sasl_port},SASL_SSL://127.0.0.1:{sasl_ssl_port}"
        ),
        format!("ssl.keystore.location={}", certs.join("server.pem").display()),
        format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}"),
        format!("listener.name.sasl_ssl.plain.sasl.jaas.config={JAAS}"),
        "connection.failed.authentication.delay.ms=50".to_string(),
    ];
    let broker = start_with(&settings);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "authed", 1, &[]);
    let sasl_addr = format!("127.0.0.1:{sasl_port}");
    let got = produce_and_read(
        &sasl_client(&sasl_addr, "sasl_plaintext", "alice", "alice-secret"),
        "authed",
        10,
    );
    assert_eq!(got.len(), 10);
    let mut over_tls = sasl_client(
        &format!("127.0.0.1:{sasl_ssl_port}"),
        "sasl_ssl",
        "admin",
        "admin-secret",
    );
    over_tls.set("ssl.ca.location", certs.join("ca.pem").to_str().unwrap());
    create_topic(&rt, &broker.addr, "authed-tls", 1, &[]);
    assert_eq!(produce_and_read(&over_tls, "authed-tls", 10).len(), 10);

    // A wrong password: nothing produced.
    let mut wrong = sasl_client(&sasl_addr, "sasl_plaintext", "alice", "not-her-password");
    wrong.set("message.timeout.ms", "3000");
    let producer: FutureProducer = wrong.create().unwrap();
    let sent = rt.block_on(async {
        producer
            .send(
                FutureRecord::<(), _>::to("authed")
                    .partition(0)
                    .payload("x"),
                Duration::from_secs(5),
            )
            .await
    });
    assert!(sent.is_err(), "a wrong password produced");
    let log = broker.log();
    assert!(log.contains("SASL authentication failed"), "{log}");
    for secret in ["alice-secret", "admin-secret", "not-her-password"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

/// On a SASL listener a request before authentication closes the connection; ApiVersions is
/// answered; SaslAuthenticate with a wrong password gets SASL_AUTHENTICATION_FAILED, then the
/// connection closes.
#[test]
fn requests_before_sasl_authentication_close_the_connection() {
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Decodable;
    let port = free_port();
    let settings = [
        format!("listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{port}"),
        format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}"),
    ];
    let _broker = start_with(&settings);
    let addr = format!("127.0.0.1:{port}");
    let connect = || {
        let s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };
    // Metadata first: closed.
    let mut s = connect();
    assert!(call(&mut s, &MetadataRequest::default(), 9).is_none());
    // ApiVersions, then a wrong password.
    let mut s = connect();
    assert!(call(&mut s, &ApiVersionsRequest::default(), 0).is_some());
    let mut r = call(
        &mut s,
        &SaslHandshakeRequest::default().with_mechanism("PLAIN".into()),
        1,
    )
    .unwrap();
    let _ = ResponseHeader::decode(&mut r, 0).unwrap();
    let h = SaslHandshakeResponse::decode(&mut r, 1).unwrap();
    assert_eq!(h.error_code, 0);
    let mut r = call(
        &mut s,
        &SaslAuthenticateRequest::default()
            .with_auth_bytes(bytes::Bytes::from_static(b"\0alice\0wrong")),
        1,
    )
    .unwrap();
    let _ = ResponseHeader::decode(&mut r, 0).unwrap();
    let a = SaslAuthenticateResponse::decode(&mut r, 1).unwrap();
    assert_eq!(a.error_code, 58, "SASL_AUTHENTICATION_FAILED");
    assert!(
        call(&mut s, &ApiVersionsRequest::default(), 0).is_none(),
        "closed after"
    );
    // A 100 MB SaslAuthenticate announced after the handshake: closed before any of it is read
    // (sasl.server.max.receive.size), and the broker stays well.
    let mut s = connect();
    assert!(call(&mut s, &ApiVersionsRequest::default(), 0).is_some());
    assert!(call(
        &mut s,
        &SaslHandshakeRequest::default().with_mechanism("PLAIN".into()),
        1
    )
    .is_some());
    s.write_all(&(100 * 1024 * 1024i32).to_be_bytes()).unwrap();
    let _ = s.write_all(&[0, 36, 0, 1, 0, 0, 0, 9]);
    let mut buf = [0u8; 16];
    assert_eq!(
        s.read(&mut buf).unwrap_or(0),
        0,
        "a 100 MB token was answered"
    );
    let mut s = connect();
    assert!(call(&mut s, &ApiVersionsRequest::default(), 0).is_some());
}

/// A TLS ClientHello sent to a plaintext listener: its first bytes read as a frame size far
/// above socket.request.max.bytes, so the connection closes; the broker serves on.
#[test]
fn tls_to_a_plaintext_port_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certificates(dir.path());
    let (broker, _) = tls_broker(&certs, &[]);
    let mut s = TcpStream::connect(&broker.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    hello.extend_from_slice(&[0u8; 64]);
    s.write_all(&hello).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        s.read(&mut buf).unwrap_or(0),
        0,
        "a ClientHello was answered"
    );
    let rt = runtime();
    create_topic(&rt, &broker.addr, "still-serving", 1, &[]);
    assert!(broker.log().contains("closing connection"));
}

/// kafka-python (a client not built on librdkafka) over SASL_SSL with PLAIN.
#[test]
fn kafka_python_uses_sasl_plain_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certificates(dir.path());
    let jaas = format!("listener.name.sasl_ssl.plain.sasl.jaas.config={JAAS}");
    let (broker, addr) = sasl_ssl_broker(&certs, &[&jaas]);
    create_topic(&runtime(), &broker.addr, "py-secure", 1, &[]);
    let script = format!("{}/tests/python/sasl_ssl.py", env!("CARGO_MANIFEST_DIR"));
    let mut command = std::process::Command::new("python3");
    command.arg(script).arg(&addr).arg(certs.join("ca.pem"));
    assert_script_ok(command, "sasl_ssl.py (kafka-python)", &broker);
}
