//! A follower's connection to its leader's inter-broker listener: Kafka requests encoded and
//! responses decoded by the kafka-protocol crate, one at a time, each with a deadline.

use std::io;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response a follower accepts (a fetch answers at most
/// `replica.fetch.response.max.bytes` plus one batch per partition).
const MAX_RESPONSE_BYTES: usize = 256 << 20;

pub struct BrokerClient {
    stream: TcpStream,
    correlation_id: i32,
    client_id: StrBytes,
    timeout: Duration,
}

impl BrokerClient {
    pub async fn connect(
        host: &str,
        port: u16,
        broker_id: i32,
        timeout: Duration,
    ) -> io::Result<BrokerClient> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        Ok(BrokerClient {
            stream,
            correlation_id: 0,
            client_id: StrBytes::from_string(format!("broker-{broker_id}-fetcher")),
            timeout,
        })
    }

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
