//! SASL OAUTHBEARER with JWTs checked against a JWKS file (signature, expiry, audience,
//! issuer), librdkafka handing the broker tokens from its refresh callback over SASL_SSL; and
//! re-authentication (KIP-368, `connections.max.reauth.ms`): a client that re-authenticates
//! keeps its connection, one that does not is closed once its session ends.

mod common;
mod security_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::KeyPair;
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use security_support::*;

const AUDIENCE: &str = "strata";
const ISSUER: &str = "https://issuer.example";

/// A signing key and the JWKS that publishes it (kid `key-1`).
struct Issuer {
    key: KeyPair,
    kid: String,
}

impl Issuer {
    fn new(kid: &str) -> Issuer {
        Issuer {
            key: KeyPair::generate().unwrap(),
            kid: kid.to_string(),
        }
    }

    fn jwk(&self) -> String {
        let raw = self.key.public_key_raw();
        format!(
            r#"{{"kty":"EC","crv":"P-256","alg":"ES256","use":"sig","kid":"{}","x":"{}","y":"{}"}}"#,
            self.kid,
            URL_SAFE_NO_PAD.encode(&raw[1..33]),
            URL_SAFE_NO_PAD.encode(&raw[33..65])
        )
    }

    /// A token for `sub`, expiring `ttl_s` from now (negative: already expired).
    fn token(&self, sub: &str, aud: &str, iss: &str, ttl_s: i64) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let claims = serde_json::json!({
            "sub": sub, "aud": aud, "iss": iss, "iat": now, "exp": now + ttl_s,
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_ec_der(&self.key.serialize_der()),
        )
        .unwrap()
    }
}

/// A librdkafka context whose OAUTHBEARER refresh callback hands out `token`.
struct Token(String);

impl ClientContext for Token {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        Ok(OAuthToken {
            token: self.0.clone(),
            principal_name: "alice".into(),
            lifetime_ms: now + 3_600_000,
        })
    }
}

impl ConsumerContext for Token {}

fn client(addr: &str, ca: &std::path::Path) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr)
        .set("security.protocol", "sasl_ssl")
        .set("sasl.mechanism", "OAUTHBEARER")
        .set("ssl.ca.location", ca.to_str().unwrap())
        .set("message.timeout.ms", "5000")
        .set("socket.timeout.ms", "5000");
    c
}

fn produce(config: &ClientConfig, token: &str, topic: &str, n: usize) -> bool {
    let producer: FutureProducer<Token> = config
        .create_with_context(Token(token.to_string()))
        .unwrap();
    runtime().block_on(async {
        for i in 0..n {
            let sent = producer
                .send(
                    FutureRecord::<(), _>::to(topic)
                        .partition(0)
                        .payload(&format!("v{i}")),
                    Duration::from_secs(6),
                )
                .await;
            if sent.is_err() {
                return false;
            }
        }
        true
    })
}

/// A broker with PLAINTEXT and SASL_SSL listeners (and SASL_PLAINTEXT on the port of an
/// `sasl.plaintext.port=N` in `extra`), OAUTHBEARER against `jwks`.
fn oauth_broker(
    jwks: &std::path::Path,
    certs: &std::path::Path,
    extra: &[&str],
) -> (BrokerProcess, String) {
    let port = free_port();
    let plain = extra
        .iter()
        .find_map(|e| e.strip_prefix("sasl.plaintext.port="))
        .map(|p| format!(",SASL_PLAINTEXT://127.0.0.1:{p}"))
        .unwrap_or_default();
    let extra: Vec<&&str> = extra
        .iter()
        .filter(|e| !e.starts_with("sasl.plaintext.port="))
        .collect();
    let mut settings = vec![
        format!("listeners=PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:{port}{plain}"),
        format!(
            "ssl.keystore.location={}",
            certs.join("server.pem").display()
        ),
        "sasl.enabled.mechanisms=OAUTHBEARER".to_string(),
        format!(
            "sasl.oauthbearer.jwks.endpoint.url=file://{}",
            jwks.display()
        ),
        format!("sasl.oauthbearer.expected.audience={AUDIENCE}"),
        format!("sasl.oauthbearer.expected.issuer={ISSUER}"),
        "connection.failed.authentication.delay.ms=10".to_string(),
    ];
    settings.extend(extra.iter().map(|s| s.to_string()));
    (start_with(&settings), format!("127.0.0.1:{port}"))
}

#[test]
fn oauthbearer_tokens_are_checked_against_the_jwks() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certificates(dir.path());
    let issuer = Issuer::new("key-1");
    let stranger = Issuer::new("key-1");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, format!(r#"{{"keys":[{}]}}"#, issuer.jwk())).unwrap();
    let (broker, addr) = oauth_broker(&jwks, &certs, &[]);
    create_topic(&runtime(), &broker.addr, "tokens", 1, &[]);
    let config = client(&addr, &certs.join("ca.pem"));

    let good = issuer.token("alice", AUDIENCE, ISSUER, 3600);
    assert!(
        produce(&config, &good, "tokens", 5),
        "a valid token was refused"
    );
    // The records read back with the same token.
    let consumer: BaseConsumer<Token> = config
        .clone()
        .set("group.id", "token-readers")
        .set("auto.offset.reset", "earliest")
        .create_with_context(Token(good.clone()))
        .unwrap();
    consumer.subscribe(&["tokens"]).unwrap();
    let mut read = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while read < 5 && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            assert!(m.payload().is_some());
            read += 1;
        }
    }
    assert_eq!(read, 5);

    for (what, token) in [
        ("expired", issuer.token("alice", AUDIENCE, ISSUER, -120)),
        (
            "for another audience",
            issuer.token("alice", "someone-else", ISSUER, 3600),
        ),
        (
            "from another issuer",
            issuer.token("alice", AUDIENCE, "https://evil.example", 3600),
        ),
        (
            "signed by another key",
            stranger.token("alice", AUDIENCE, ISSUER, 3600),
        ),
        ("not a JWT", "not-a-token".to_string()),
    ] {
        assert!(
            !produce(&config, &token, "tokens", 1),
            "a token {what} was accepted"
        );
    }
    let log = broker.log();
    assert!(log.contains("OAUTHBEARER token refused"), "{log}");
    assert!(!log.contains(&good), "a token in the log");
}

/// KIP-368: with connections.max.reauth.ms, librdkafka re-authenticates on its connection and
/// keeps producing past the session's end; a client that does not is closed at its next
/// request after the session ended. The SaslAuthenticate response says how long it holds.
#[test]
fn sessions_end_unless_clients_reauthenticate() {
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Decodable;
    use std::net::TcpStream;

    let dir = tempfile::tempdir().unwrap();
    let certs = make_certificates(dir.path());
    let issuer = Issuer::new("key-1");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, format!(r#"{{"keys":[{}]}}"#, issuer.jwk())).unwrap();
    // A SASL_PLAINTEXT listener too, for the hand-written client below.
    let plain_port = free_port();
    let (broker, addr) = oauth_broker(
        &jwks,
        &certs,
        &[
            &format!("sasl.plaintext.port={plain_port}"),
            "connections.max.reauth.ms=2000",
        ],
    );
    create_topic(&runtime(), &broker.addr, "reauth", 1, &[]);
    let token = issuer.token("alice", AUDIENCE, ISSUER, 3600);
    let config = client(&addr, &certs.join("ca.pem"));
    let producer: FutureProducer<Token> = config.create_with_context(Token(token.clone())).unwrap();
    runtime().block_on(async {
        let started = std::time::Instant::now();
        let mut i = 0;
        while started.elapsed() < Duration::from_secs(6) {
            producer
                .send(
                    FutureRecord::<(), _>::to("reauth")
                        .partition(0)
                        .payload(&format!("v{i}")),
                    Duration::from_secs(6),
                )
                .await
                .map_err(|(e, _)| e)
                .expect("a produce across re-authentication failed");
            i += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let log = broker.log();
    assert!(!log.contains("expired without re-authentication"), "{log}");

    // By hand: authenticate, learn the session's lifetime, let it end.
    // The response's body, its header read past.
    let call = |s: &mut TcpStream, api: &dyn Fn(&mut TcpStream) -> Option<bytes::Bytes>| {
        let mut reply = api(s)?;
        ResponseHeader::decode(&mut reply, 0).unwrap();
        Some(reply)
    };
    let mut s = TcpStream::connect(("127.0.0.1", plain_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = call(&mut s, &|s| {
        security_support::call(
            s,
            &SaslHandshakeRequest::default().with_mechanism("OAUTHBEARER".into()),
            1,
        )
    })
    .unwrap();
    assert_eq!(
        SaslHandshakeResponse::decode(&mut r, 1).unwrap().error_code,
        0
    );
    let first = format!("n,,\x01auth=Bearer {token}\x01\x01");
    let first = bytes::Bytes::from(first);
    let mut r = call(&mut s, &|s| {
        security_support::call(
            s,
            &SaslAuthenticateRequest::default().with_auth_bytes(first.clone()),
            1,
        )
    })
    .unwrap();
    let a = SaslAuthenticateResponse::decode(&mut r, 1).unwrap();
    assert_eq!(a.error_code, 0);
    assert!(
        a.session_lifetime_ms > 0 && a.session_lifetime_ms <= 2000,
        "{a:?}"
    );
    assert!(security_support::call(&mut s, &MetadataRequest::default(), 9).is_some());
    std::thread::sleep(Duration::from_millis(a.session_lifetime_ms as u64 + 300));
    assert!(
        security_support::call(&mut s, &MetadataRequest::default(), 9).is_none(),
        "served after the session ended"
    );
    assert!(broker.log().contains("expired without re-authentication"));
}
