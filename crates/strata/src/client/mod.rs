//! A minimal Kafka admin client for the tools: one connection, versions negotiated with
//! ApiVersions, requests encoded and responses decoded by the kafka-protocol crate.

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

mod secure;

/// A connection's byte stream: TCP, or TLS over it.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub struct Client {
    stream: Box<dyn Stream>,
    correlation_id: i32,
    versions: Vec<(i16, i16, i16)>,
}

impl Client {
    /// Connects over plaintext.
    pub async fn connect(bootstrap: &str) -> Result<Client> {
        Client::connect_with(bootstrap, None).await
    }

    /// Connects with the client settings of a `--command-config` file, if given: TLS
    /// (`security.protocol=SSL`/`SASL_SSL`) and SASL PLAIN or SCRAM, as Kafka's tools take them.
    pub async fn connect_with(
        bootstrap: &str,
        command_config: Option<&std::path::Path>,
    ) -> Result<Client> {
        let settings = match command_config {
            Some(path) => secure::ClientSecurity::load(path)?,
            None => secure::ClientSecurity::default(),
        };
        let addr = bootstrap.split(',').next().unwrap_or(bootstrap).trim();
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        tcp.set_nodelay(true)?;
        let stream: Box<dyn Stream> = match &settings.tls {
            Some(tls) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                Box::new(tls.connect(tcp, host).await?)
            }
            None => Box::new(tcp),
        };
        let mut client = Client {
            stream,
            correlation_id: 0,
            versions: Vec::new(),
        };
        let response: ApiVersionsResponse = client
            .send_versioned(
                ApiVersionsRequest::default()
                    .with_client_software_name(StrBytes::from_static_str("strata"))
                    .with_client_software_version(StrBytes::from_static_str(env!(
                        "CARGO_PKG_VERSION"
                    ))),
                3,
            )
            .await?;
        if response.error_code != 0 {
            bail!("ApiVersions failed with error {}", response.error_code);
        }
        client.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        if let Some(sasl) = &settings.sasl {
            sasl.authenticate(&mut client).await?;
        }
        Ok(client)
    }

    /// The highest version of `R` both sides support (what [`Client::send`] uses).
    pub fn version_for<R: Request>(&self) -> Result<i16> {
        let (_, min, max) = self
            .versions
            .iter()
            .find(|(k, _, _)| *k == R::KEY)
            .copied()
            .ok_or_else(|| anyhow!("the broker does not support {:?}", ApiKey::try_from(R::KEY)))?;
        let version = max.min(R::VERSIONS.max);
        if version < min.max(R::VERSIONS.min) {
            bail!("no common version of {:?}", ApiKey::try_from(R::KEY));
        }
        Ok(version)
    }

    pub async fn send<R: Request>(&mut self, request: R) -> Result<R::Response> {
        let version = self.version_for::<R>()?;
        self.send_versioned(request, version).await
    }

    /// Sends `request` at `version` (tests ask for old versions' answers).
    pub async fn send_versioned<R: Request>(
        &mut self,
        request: R,
        version: i16,
    ) -> Result<R::Response> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("strata-cli")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, R::header_version(version))
            .map_err(|e| anyhow!("{e}"))?;
        request
            .encode(&mut buf, version)
            .map_err(|e| anyhow!("{e}"))?;
        let size = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&buf).await?;
        let size = self
            .stream
            .read_i32()
            .await
            .context("connection closed by the broker")?;
        let mut frame = vec![0u8; size.max(0) as usize];
        self.stream.read_exact(&mut frame).await?;
        let mut frame = Bytes::from(frame);
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .map_err(|e| anyhow!("{e}"))?;
        if header.correlation_id != self.correlation_id {
            bail!(
                "correlation id mismatch: sent {}, got {}",
                self.correlation_id,
                header.correlation_id
            );
        }
        let response = R::Response::decode(&mut frame, version).map_err(|e| anyhow!("{e}"))?;
        let _ = frame.remaining();
        Ok(response)
    }
}

/// An error as the tools print it: Kafka's name of the code, then the broker's message.
pub fn error_text(code: i16, message: Option<&StrBytes>) -> String {
    let name = error_name(code).unwrap_or_else(|| format!("error {code}"));
    match message {
        Some(m) => format!("{name}: {}", m.as_str()),
        None => name,
    }
}

/// Kafka's name of an error code (`UnknownTopicOrPartition`, ...), if it is a known one.
pub fn error_name(code: i16) -> Option<String> {
    kafka_protocol::ResponseError::try_from_code(code).map(|e| format!("{e:?}"))
}
