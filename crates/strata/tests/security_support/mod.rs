//! What the security tests share: certificates made with rcgen, free ports, librdkafka client
//! settings for SSL and SASL, and a produce-then-read round trip.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kafka_protocol::messages::RequestHeader;
use kafka_protocol::protocol::{Encodable, HeaderVersion, Request, StrBytes};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::common::*;

/// A CA, a server certificate for 127.0.0.1 and a client certificate for `CN=alice,O=corp`,
/// written as PEM files in `dir`: `ca.pem`, `server.pem` (key and chain in one file, as
/// `ssl.keystore.location` takes it), `client.pem` and `client.key`.
pub fn make_certificates(dir: &Path) -> PathBuf {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "strata test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca_cert, &ca_key)
        .unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client
        .distinguished_name
        .push(DnType::OrganizationName, "corp");
    client.distinguished_name.push(DnType::CommonName, "alice");
    let client = client.signed_by(&client_key, &ca_cert, &ca_key).unwrap();

    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(
        dir.join("server.pem"),
        format!(
            "{}{}{}",
            server_key.serialize_pem(),
            server.pem(),
            ca_cert.pem()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("client.pem"), client.pem()).unwrap();
    std::fs::write(dir.join("client.key"), client_key.serialize_pem()).unwrap();
    dir.to_path_buf()
}

/// A broker with a PLAINTEXT listener (first: the tests' harness finds it) and an SSL one.
pub fn tls_broker(certs: &Path, extra: &[String]) -> (BrokerProcess, String) {
    let ssl_port = free_port();
    let mut settings = vec![
        format!("listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:{ssl_port}"),
        format!(
            "ssl.keystore.location={}",
            certs.join("server.pem").display()
        ),
        format!("ssl.truststore.location={}", certs.join("ca.pem").display()),
    ];
    settings.extend(extra.iter().cloned());
    let broker = start_with(&settings);
    (broker, format!("127.0.0.1:{ssl_port}"))
}

pub fn ssl_client(addr: &str, certs: &Path, with_certificate: bool) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr)
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", certs.join("ca.pem").to_str().unwrap())
        .set("message.timeout.ms", "10000")
        .set("socket.timeout.ms", "5000");
    if with_certificate {
        c.set(
            "ssl.certificate.location",
            certs.join("client.pem").to_str().unwrap(),
        )
        .set(
            "ssl.key.location",
            certs.join("client.key").to_str().unwrap(),
        );
    }
    c
}

pub fn produce_and_read(config: &ClientConfig, topic: &str, n: usize) -> Vec<String> {
    let rt = runtime();
    let producer: FutureProducer = config.create().unwrap();
    rt.block_on(async {
        for i in 0..n {
            let value = format!("secret-{i}");
            producer
                .send(
                    FutureRecord::<(), _>::to(topic)
                        .partition(0)
                        .payload(&value),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| e)
                .unwrap();
        }
    });
    let mut config = config.clone();
    config
        .set("group.id", format!("{topic}-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer = config.create().unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < n && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            got.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    got
}

pub const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
     user_admin=\"admin-secret\" user_alice=\"alice-secret\";";

pub fn sasl_client(addr: &str, protocol: &str, user: &str, password: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr)
        .set("security.protocol", protocol)
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", user)
        .set("sasl.password", password)
        .set("message.timeout.ms", "10000")
        .set("socket.timeout.ms", "5000");
    c
}

/// A broker with a PLAINTEXT listener (first: the tests' tools use it) and a SASL_SSL one on a
/// free port keyed with `certs`, then `extra`; the broker and the SASL_SSL address.
pub fn sasl_ssl_broker(certs: &Path, extra: &[&str]) -> (BrokerProcess, String) {
    let port = free_port();
    let mut settings = vec![
        format!("listeners=PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:{port}"),
        format!(
            "ssl.keystore.location={}",
            certs.join("server.pem").display()
        ),
    ];
    settings.extend(extra.iter().map(|s| s.to_string()));
    (start_with(&settings), format!("127.0.0.1:{port}"))
}

/// Sends one request on a raw connection; the response's bytes (header included), or None
/// when the connection closed.
pub fn call<R: Request + Encodable + HeaderVersion>(
    s: &mut TcpStream,
    req: &R,
    version: i16,
) -> Option<bytes::Bytes> {
    let mut body = bytes::BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("t")))
        .encode(&mut body, R::header_version(version))
        .unwrap();
    req.encode(&mut body, version).unwrap();
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    s.write_all(&frame).unwrap();
    let mut size = [0u8; 4];
    s.read_exact(&mut size).ok()?;
    let mut reply = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut reply).ok()?;
    Some(bytes::Bytes::from(reply))
}
