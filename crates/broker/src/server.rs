//! The listener and the connections: framing, pipelining and ordered responses.
//!
//! A connection's reader decodes requests in order. Each request becomes a response slot in a
//! bounded queue (`max.inflight.requests.per.connection`); slots are filled concurrently (a
//! long-polling fetch does not hold up the next request's work) and the writer sends them
//! strictly in request order. Produce requests append to the log in the reader itself, so appends
//! keep the order in which a connection sent them.
//!
//! A frame larger than `socket.request.max.bytes`, a frame that does not decode, or an unknown
//! API key closes the connection, as Kafka does; nothing is allocated for an oversized frame.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::broker::Broker;
use crate::handlers;
use crate::wire::{ConnectionError, Part, Response, Slot};

/// A running broker's listener.
pub struct Server {
    broker: Arc<Broker>,
    listener: TcpListener,
    shutdown: watch::Sender<bool>,
}

impl Server {
    pub async fn bind(broker: Arc<Broker>) -> io::Result<Server> {
        let addr = broker.config.bind_addr().map_err(io::Error::other)?;
        let listener = TcpListener::bind(addr).await?;
        broker.set_bound_port(listener.local_addr()?.port());
        broker.groups.start_timer();
        broker.txns.start_timer();
        let (shutdown, _) = watch::channel(false);
        Ok(Server {
            broker,
            listener,
            shutdown,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// A handle that stops the server.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// Accepts connections until shut down.
    pub async fn run(self) {
        let mut stop = self.shutdown.subscribe();
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let broker = self.broker.clone();
                        let stop = self.shutdown.subscribe();
                        tokio::spawn(async move {
                            if let Err(e) = serve(broker, stream, stop, peer).await {
                                tracing::debug!(%peer, error = %e, "connection closed");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                },
                _ = stop.changed() => break,
            }
        }
    }
}

async fn read_frame(
    reader: &mut (impl AsyncReadExt + Unpin),
    max: usize,
) -> Result<Option<Bytes>, ConnectionError> {
    let mut size_buf = [0u8; 4];
    match reader.read_exact(&mut size_buf).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(size_buf);
    if size < 0 || size as usize > max {
        return Err(ConnectionError::FrameTooLarge {
            size: size as i64,
            max,
        });
    }
    let mut frame = BytesMut::zeroed(size as usize);
    reader.read_exact(&mut frame).await?;
    Ok(Some(frame.freeze()))
}

async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    mut stop: watch::Receiver<bool>,
    peer: SocketAddr,
) -> Result<(), ConnectionError> {
    // How Kafka shows a client's host (DescribeGroups).
    let client_host = format!("/{}", peer.ip());
    stream.set_nodelay(true)?;
    let (mut reader, writer) = stream.into_split();
    let (slots, queue) = mpsc::channel::<Slot>(broker.config.max_inflight_requests_per_connection);
    let writer_task = tokio::spawn(write_responses(writer, queue));
    let max = broker.config.socket_request_max_bytes;
    let result = loop {
        let frame = tokio::select! {
            f = read_frame(&mut reader, max) => f,
            _ = stop.changed() => break Ok(()),
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        match handlers::dispatch(&broker, frame, &client_host) {
            Ok(slot) => {
                let close = matches!(slot, Slot::Close);
                if slots.send(slot).await.is_err() || close {
                    break Ok(());
                }
            }
            Err(e) => break Err(e),
        }
    };
    if let Err(e) = &result {
        tracing::warn!(error = %e, "closing connection");
    }
    drop(slots);
    let _ = writer_task.await;
    result
}

async fn write_responses(mut writer: OwnedWriteHalf, mut queue: mpsc::Receiver<Slot>) {
    while let Some(slot) = queue.recv().await {
        let response = match slot {
            Slot::Ready(r) => r,
            Slot::Pending(handle) => match handle.await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "request handler failed");
                    break;
                }
            },
            Slot::Close => break,
        };
        if let Some(response) = response {
            if let Err(e) = write_response(&mut writer, response).await {
                tracing::debug!(error = %e, "write failed");
                break;
            }
        }
    }
    let _ = writer.shutdown().await;
}

async fn write_response(writer: &mut OwnedWriteHalf, response: Response) -> io::Result<()> {
    for part in response.parts {
        match part {
            Part::Bytes(b) => writer.write_all(&b).await?,
            Part::File {
                file,
                position,
                len,
            } => match file.raw_fd() {
                Some(fd) => {
                    let stream: &TcpStream = writer.as_ref();
                    let mut offset = position;
                    let mut remaining = len;
                    while remaining > 0 {
                        stream.writable().await?;
                        let sent = stream.try_io(Interest::WRITABLE, || {
                            // SAFETY: `file` is held for the whole call and owns the descriptor,
                            // so `fd` stays open and refers to the segment file.
                            let source = unsafe { BorrowedFd::borrow_raw(fd) };
                            let chunk = remaining.min(1 << 30) as usize;
                            rustix::fs::sendfile(stream.as_fd(), source, Some(&mut offset), chunk)
                                .map_err(io::Error::from)
                        });
                        match sent {
                            Ok(0) => {
                                return Err(io::Error::new(
                                    io::ErrorKind::UnexpectedEof,
                                    "segment shorter than its index",
                                ))
                            }
                            Ok(n) => remaining -= n as u64,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                            Err(e) => return Err(e),
                        }
                    }
                }
                None => {
                    let mut buf = vec![0u8; len as usize];
                    file.read_exact_at(&mut buf, position)?;
                    writer.write_all(&buf).await?;
                }
            },
        }
    }
    Ok(())
}
