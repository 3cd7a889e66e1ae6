//! A broker's connection to another's inter-broker listener (a follower's to its leader, the
//! transaction coordinator's to partition leaders): with the listener's security (TLS, SASL
//! PLAIN or SCRAM, `config::inter_broker`), Kafka requests encoded and responses decoded by the
//! kafka-protocol crate, one at a time, each with a deadline.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::inter_broker::{InterBrokerClient, SaslCredentials};
use crate::security::sasl_client::{self, SaslExchange};

/// Where another broker's inter-broker listener is (host, port), from the metadata image.
pub type Resolve = Arc<dyn Fn(i32) -> Option<(String, u16)> + Send + Sync>;

/// A connection's byte stream: TCP, or TLS over it.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// How this broker reaches the others: where (`Resolve`) and with what security.
#[derive(Clone)]
pub struct Connector {
    me: i32,
    resolve: Resolve,
    tls: Option<(tokio_rustls::TlsConnector, bool)>,
    sasl: Option<SaslCredentials>,
}

impl Connector {
    /// A connector for broker `me`, with the client side of its inter-broker listener (None:
    /// plaintext). An error names the key or file that could not be read.
    pub fn new(
        me: i32,
        resolve: Resolve,
        security: Option<&InterBrokerClient>,
    ) -> io::Result<Connector> {
        let tls = match security.and_then(|s| s.tls.as_ref().map(|t| (t, s.verify_hostname))) {
            Some((settings, verify)) => {
                Some((crate::security::tls::connector(settings, verify)?, verify))
            }
            None => None,
        };
        Ok(Connector {
            me,
            resolve,
            tls,
            sasl: security.and_then(|s| s.sasl.clone()),
        })
    }

    /// Connects to `broker`'s inter-broker listener (`role` names this side in its client id),
    /// each step within `timeout`.
    pub async fn connect(
        &self,
        broker: i32,
        role: &str,
        timeout: Duration,
    ) -> io::Result<BrokerClient> {
        let (host, port) = (self.resolve)(broker).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("broker {broker} has no inter-broker endpoint"),
            )
        })?;
        let within = |what: &'static str| {
            move |_| io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
        };
        let tcp = tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port)))
            .await
            .map_err(within("connect"))??;
        tcp.set_nodelay(true)?;
        let stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(tcp),
            Some((tls, _)) => {
                let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}"))
                })?;
                Box::new(
                    tokio::time::timeout(timeout, tls.connect(name, tcp))
                        .await
                        .map_err(within("TLS handshake"))??,
                )
            }
        };
        let mut client = BrokerClient {
            stream,
            correlation_id: 0,
            client_id: StrBytes::from_string(format!("broker-{}-{role}", self.me)),
            timeout,
        };
        if let Some(sasl) = &self.sasl {
            sasl_client::authenticate(&mut client, &sasl.mechanism, &sasl.username, &sasl.password)
                .await?;
        }
        Ok(client)
    }
}

/// The largest response a follower accepts (a fetch answers at most
/// `replica.fetch.response.max.bytes` plus one batch per partition).
const MAX_RESPONSE_BYTES: usize = 256 << 20;

pub struct BrokerClient {
    stream: Box<dyn Stream>,
    correlation_id: i32,
    client_id: StrBytes,
    timeout: Duration,
}

impl SaslExchange for BrokerClient {
    async fn handshake(&mut self, mechanism: &str) -> io::Result<(i16, Vec<String>)> {
        let request =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into()));
        let response = self.send(&request, 1).await?;
        Ok((
            response.error_code,
            response.mechanisms.iter().map(|m| m.to_string()).collect(),
        ))
    }

    async fn token(&mut self, bytes: Vec<u8>) -> io::Result<Result<Bytes, (i16, Option<String>)>> {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes));
        let response = self.send(&request, 2).await?;
        Ok(match response.error_code {
            0 => Ok(response.auth_bytes),
            code => Err((code, response.error_message.map(|m| m.to_string()))),
        })
    }
}

impl BrokerClient {
    /// Sends `request` at `version` and reads its response, within the socket timeout.
    pub async fn send<R: Request>(&mut self, request: &R, version: i16) -> io::Result<R::Response> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.exchange(request, version))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer from the leader"))?
    }

    async fn exchange<R: Request>(&mut self, request: &R, version: i16) -> io::Result<R::Response> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, R::header_version(version))
            .map_err(io::Error::other)?;
        request
            .encode(&mut buf, version)
            .map_err(io::Error::other)?;
        let size = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&buf).await?;
        let size = self.stream.read_i32().await?;
        if size < 0 || size as usize > MAX_RESPONSE_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("response of {size} bytes"),
            ));
        }
        // Read into uninitialised capacity: a fetch's megabytes are not zeroed first.
        let size = size as usize;
        let mut frame = BytesMut::with_capacity(size);
        let mut limited = (&mut self.stream).take(size as u64);
        while frame.len() < size {
            if limited.read_buf(&mut frame).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the leader closed the connection",
                ));
            }
        }
        let mut frame = frame.freeze();
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .map_err(io::Error::other)?;
        if header.correlation_id != self.correlation_id {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "correlation id {} answered {}",
                    header.correlation_id, self.correlation_id
                ),
            ));
        }
        R::Response::decode(&mut frame, version).map_err(io::Error::other)
    }
}
