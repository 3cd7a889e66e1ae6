//! The listeners and the connections: TLS on SSL and SASL_SSL listeners, framing, pipelining
//! and ordered responses.
//!
//! Each listener (`listeners`) has its accept loop. On a TLS listener the handshake comes first
//! (bounded by 10 s; a failed or truncated one closes the connection), and the client's
//! principal is taken from its certificate when it sent one. Responses go out through sendfile
//! on plain sockets; through TLS, record bytes are read from the segment and encrypted (no
//! zero-copy: this kernel offers no kTLS).
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
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::broker::Broker;
use crate::config::{BrokerConfig, ListenerConfig};
use crate::handlers::{self, Peer, ANONYMOUS};
use crate::metrics::RequestTiming;
use crate::security::principal::PrincipalMapper;
use crate::security::sasl::{Authenticated, SaslListener, SaslSession};
use crate::wire::{ConnectionError, Part, Response, Slot};
use kafka_protocol::messages::{ApiKey, RequestKind};

/// A TLS listener's acceptor and its `ssl.principal.mapping.rules`.
type Tls = (TlsAcceptor, Arc<PrincipalMapper>);

/// How long a client has to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One bound listener.
struct Bound {
    config: ListenerConfig,
    socket: TcpListener,
    tls: Option<Tls>,
    sasl: Option<Arc<SaslListener>>,
}

/// A running broker's listeners.
pub struct Server {
    broker: Arc<Broker>,
    listeners: Vec<Bound>,
    shutdown: watch::Sender<bool>,
}

impl Server {
    /// Binds every listener (`listeners`); a TLS listener whose key or certificates cannot be
    /// read is an error naming them.
    pub async fn bind(broker: Arc<Broker>) -> io::Result<Server> {
        let mut listeners = Vec::new();
        for config in broker.config.listeners.clone() {
            let addr = BrokerConfig::bind_addr(&config.bind).map_err(io::Error::other)?;
            let tls = match &config.tls {
                Some(settings) => Some((
                    crate::security::tls::acceptor(settings).map_err(|e| {
                        io::Error::new(e.kind(), format!("listener {}: {e}", config.name))
                    })?,
                    Arc::new(
                        PrincipalMapper::parse(&settings.principal_mapping_rules)
                            .map_err(io::Error::other)?,
                    ),
                )),
                None => None,
            };
            let socket = TcpListener::bind(addr).await.map_err(|e| {
                io::Error::new(e.kind(), format!("listener {} on {addr}: {e}", config.name))
            })?;
            broker.set_bound_port(&config.name, socket.local_addr()?.port());
            let sasl =
                match config.sasl.clone() {
                    Some(settings) => Some(Arc::new(SaslListener::new(settings).map_err(|e| {
                        io::Error::other(format!("listener {}: {e}", config.name))
                    })?)),
                    None => None,
                };
            listeners.push(Bound {
                config,
                socket,
                tls,
                sasl,
            });
        }
        broker.groups.start_timer();
        broker.txns.start_timer();
        let (shutdown, _) = watch::channel(false);
        Ok(Server {
            broker,
            listeners,
            shutdown,
        })
    }

    /// The first listener's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listeners[0].socket.local_addr()
    }

    /// Every listener: its name, security protocol and bound address.
    pub fn local_addrs(&self) -> io::Result<Vec<(String, &'static str, SocketAddr)>> {
        self.listeners
            .iter()
            .map(|l| {
                Ok((
                    l.config.name.clone(),
                    l.config.protocol.name(),
                    l.socket.local_addr()?,
                ))
            })
            .collect()
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// A handle that stops the server.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// Accepts connections on every listener until shut down.
    pub async fn run(self) {
        let mut tasks = Vec::new();
        for bound in self.listeners {
            let broker = self.broker.clone();
            let shutdown = self.shutdown.clone();
            tasks.push(tokio::spawn(accept_loop(broker, bound, shutdown)));
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

async fn accept_loop(broker: Arc<Broker>, bound: Bound, shutdown: watch::Sender<bool>) {
    let mut stop = shutdown.subscribe();
    let listener: Arc<str> = Arc::from(bound.config.name.as_str());
    let bound = Arc::new(bound);
    loop {
        // At max.connections, or over max.connection.creation.rate: not accepting for now.
        tokio::select! {
            _ = broker.connections.wait_to_accept() => {}
            _ = stop.changed() => break,
        }
        tokio::select! {
            accepted = bound.socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    let slot = match broker.connections.admit(peer.ip(), &broker.security.image().quotas) {
                        Ok(slot) => slot,
                        Err(reason) => {
                            tracing::info!(%peer, "connection refused: {reason}");
                            drop(stream);
                            continue;
                        }
                    };
                    let broker = broker.clone();
                    let stop = shutdown.subscribe();
                    let tls = bound.tls.clone();
                    let listener = listener.clone();
                    let sasl = bound.sasl.clone();
                    tokio::spawn(async move {
                        let _counted = crate::metrics::connection_opened(&listener);
                        if let Err(e) = connection(broker, stream, tls, sasl, listener, stop, peer).await {
                            tracing::debug!(%peer, error = %e, "connection closed");
                        }
                        drop(slot);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
}

/// One connection: the TLS handshake on a TLS listener (the client's principal from its
/// certificate), then its requests.
async fn connection(
    broker: Arc<Broker>,
    stream: TcpStream,
    tls: Option<Tls>,
    sasl: Option<Arc<SaslListener>>,
    listener: Arc<str>,
    stop: watch::Receiver<bool>,
    addr: SocketAddr,
) -> Result<(), ConnectionError> {
    stream.set_nodelay(true)?;
    // How Kafka shows a client's host (DescribeGroups).
    let client_host = format!("/{}", addr.ip());
    let Some((acceptor, mapper)) = tls else {
        let peer = Peer {
            client_host,
            listener,
            principal: Arc::from(ANONYMOUS),
            mute: Default::default(),
        };
        let (reader, writer) = stream.into_split();
        return serve(broker, reader, Writer::Plain(writer), stop, peer, sasl).await;
    };
    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(peer = %addr, listener = %listener, error = %e, "TLS handshake failed");
            crate::metrics::authentication(&listener, "SSL", false);
            return Ok(());
        }
        Err(_) => {
            tracing::info!(peer = %addr, listener = %listener, "TLS handshake timed out");
            crate::metrics::authentication(&listener, "SSL", false);
            return Ok(());
        }
    };
    let principal = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(crate::security::tls::subject_principal);
    // The subject's name through ssl.principal.mapping.rules; a name no rule applies to is
    // refused, as Kafka does.
    let principal = match principal {
        None => ANONYMOUS.to_string(),
        Some(dn) => match mapper.map(&dn) {
            Some(name) => {
                tracing::debug!(peer = %addr, subject = %dn, principal = %name, "TLS client certificate");
                format!("User:{name}")
            }
            None => {
                tracing::info!(peer = %addr, listener = %listener, "no ssl.principal.mapping.rules rule applies to the client certificate's subject; closing");
                crate::metrics::authentication(&listener, "SSL", false);
                return Ok(());
            }
        },
    };
    crate::metrics::authentication(&listener, "SSL", true);
    let peer = Peer {
        client_host,
        listener,
        principal: Arc::from(principal),
        mute: Default::default(),
    };
    let (reader, writer) = tokio::io::split(stream);
    serve(broker, reader, Writer::Tls(writer), stop, peer, sasl).await
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
    // Read into uninitialised capacity (no zeroing of what the socket is about to fill).
    let size = size as usize;
    let mut frame = BytesMut::with_capacity(size);
    while frame.len() < size {
        let mut limited = (&mut *reader).take((size - frame.len()) as u64);
        if limited.read_buf(&mut frame).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed mid-request",
            )
            .into());
        }
    }
    Ok(Some(frame.freeze()))
}

async fn serve(
    broker: Arc<Broker>,
    mut reader: impl AsyncRead + Unpin,
    writer: Writer,
    mut stop: watch::Receiver<bool>,
    mut peer: Peer,
    sasl: Option<Arc<SaslListener>>,
) -> Result<(), ConnectionError> {
    // On a SASL listener, the exchange that must come first; None once authenticated.
    let mut session = sasl
        .clone()
        .map(|listener| SaslSession::new(listener, broker.security.clone()));
    // With connections.max.reauth.ms (KIP-368): when the authentication stops holding, and
    // whether the exchange under way is a re-authentication.
    let mut expires_at: Option<i64> = None;
    let mut reauthenticating = false;
    let (slots, queue) = mpsc::channel::<(Slot, Option<RequestTiming>)>(
        broker.config.max_inflight_requests_per_connection,
    );
    let writer_task = tokio::spawn(write_responses(writer, queue));
    let result = loop {
        // Until it has authenticated, a client's frames are bounded by
        // `sasl.server.max.receive.size`, as in Kafka.
        let max = session
            .as_ref()
            .map_or(broker.config.socket_request_max_bytes, |s| {
                s.max_receive_size()
                    .min(broker.config.socket_request_max_bytes)
            });
        let frame = tokio::select! {
            f = read_frame(&mut reader, max) => f,
            _ = stop.changed() => break Ok(()),
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        let timing = RequestTiming::start(&frame);
        if let (None, Some(listener)) = (&session, &sasl) {
            let key = frame.get(0..2).map(|b| i16::from_be_bytes([b[0], b[1]]));
            if key == Some(ApiKey::SaslHandshake as i16) && listener.settings.max_reauth_ms > 0 {
                session = Some(SaslSession::new(listener.clone(), broker.security.clone()));
                reauthenticating = true;
            } else if expires_at.is_some_and(|t| strata_storage::now_ms() > t) {
                // KIP-368: a request after the session ended closes the connection.
                tracing::info!(client = %peer.client_host, listener = %peer.listener, "SASL session expired without re-authentication; closing");
                break Ok(());
            }
        }
        let frame = match session.as_mut() {
            None => frame,
            Some(s) => match sasl_step(s, frame, &peer) {
                Ok(SaslStep::Dispatch(f)) => f,
                Ok(SaslStep::Reply(slot, outcome)) => {
                    let mechanism = s.mechanism().unwrap_or("unknown");
                    match &outcome {
                        Some(Authenticated::Failed | Authenticated::Illegal) => {
                            crate::metrics::authentication(&peer.listener, mechanism, false)
                        }
                        Some(Authenticated::Yes { .. }) => {
                            crate::metrics::authentication(&peer.listener, mechanism, true)
                        }
                        _ => {}
                    }
                    if matches!(outcome, Some(Authenticated::Failed)) {
                        tracing::info!(client = %peer.client_host, listener = %peer.listener, "SASL authentication failed");
                        tokio::time::sleep(s.failure_delay()).await;
                    }
                    let close = matches!(
                        outcome,
                        Some(Authenticated::Failed | Authenticated::Illegal)
                    );
                    // (Continue: the mechanism's next round trip follows.)
                    if let Some(Authenticated::Yes {
                        principal,
                        expires_ms,
                    }) = outcome
                    {
                        if reauthenticating && *peer.principal != *principal {
                            tracing::info!(client = %peer.client_host, listener = %peer.listener, "re-authentication as another principal; closing");
                            break Ok(());
                        }
                        peer.principal = Arc::from(principal);
                        expires_at = expires_ms;
                        session = None;
                        reauthenticating = false;
                    }
                    if slots.send((slot, timing)).await.is_err() || close {
                        break Ok(());
                    }
                    continue;
                }
                Err(e) => break Err(e),
            },
        };
        // A throttled client's next request waits out its throttle time (KIP-219: the response
        // went at once, the connection is muted).
        if let Some(wait) = peer.mute.remaining() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => break Ok(()),
            }
        }
        match handlers::dispatch(&broker, frame, &peer) {
            Ok(slot) => {
                let close = matches!(slot, Slot::Close);
                if slots.send((slot, timing)).await.is_err() || close {
                    break Ok(());
                }
            }
            Err(e) => break Err(e),
        }
    };
    if let Err(e) = &result {
        tracing::warn!(error = %e, "closing connection");
        if !matches!(e, ConnectionError::Io(_)) {
            crate::metrics::invalid_request(&peer.listener);
        }
    }
    drop(slots);
    let _ = writer_task.await;
    result
}

/// What to do with a frame that came before authentication.
enum SaslStep {
    /// ApiVersions: answered as always.
    Dispatch(Bytes),
    /// The SASL exchange's answer, and what it came to (None: the handshake).
    Reply(Slot, Option<Authenticated>),
}

/// One frame on a connection that has not authenticated yet: ApiVersions, SaslHandshake and
/// SaslAuthenticate are taken; anything else closes the connection, as Kafka does.
fn sasl_step(
    session: &mut SaslSession,
    frame: Bytes,
    peer: &Peer,
) -> Result<SaslStep, ConnectionError> {
    let key = frame.get(0..2).map(|b| i16::from_be_bytes([b[0], b[1]]));
    if key == Some(ApiKey::ApiVersions as i16) {
        return Ok(SaslStep::Dispatch(frame));
    }
    let handlers::Decoded::Request { mut ctx, request } = handlers::decode_request(frame)? else {
        return Err(ConnectionError::InvalidRequest(
            "unexpected request during SASL authentication".to_string(),
        ));
    };
    ctx.client_host = peer.client_host.clone();
    ctx.listener = peer.listener.clone();
    match *request {
        RequestKind::SaslHandshake(req) => {
            let response = session.handshake(&req);
            // A mechanism that is not enabled: the list is sent, then the connection closes.
            let outcome = (response.error_code != 0).then_some(Authenticated::Illegal);
            Ok(SaslStep::Reply(handlers::ready(&ctx, &response)?, outcome))
        }
        RequestKind::SaslAuthenticate(req) => {
            let (response, outcome) = session.authenticate(&req);
            Ok(SaslStep::Reply(
                handlers::ready(&ctx, &response)?,
                Some(outcome),
            ))
        }
        _ => Err(ConnectionError::InvalidRequest(format!(
            "{:?} before SASL authentication",
            ctx.api_key
        ))),
    }
}

/// Where responses go: a plain socket (record bytes sent from the page cache with sendfile) or
/// a TLS stream (record bytes read, then encrypted).
enum Writer {
    Plain(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
}

impl Writer {
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Writer::Plain(w) => w.write_all(bytes).await,
            Writer::Tls(w) => w.write_all(bytes).await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Writer::Plain(w) => w.shutdown().await,
            Writer::Tls(w) => w.shutdown().await,
        }
    }
}

async fn write_responses(
    mut writer: Writer,
    mut queue: mpsc::Receiver<(Slot, Option<RequestTiming>)>,
) {
    // Record bytes going out over TLS pass through this buffer, kept for the connection's life
    // (allocated at its first file range).
    let mut chunk = Vec::new();
    while let Some((slot, timing)) = queue.recv().await {
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
            if let Err(e) = write_response(&mut writer, response, &mut chunk).await {
                tracing::debug!(error = %e, "write failed");
                break;
            }
        }
        if let Some(t) = timing {
            t.finish();
        }
    }
    let _ = writer.shutdown().await;
}

async fn write_response(
    writer: &mut Writer,
    response: Response,
    chunk: &mut Vec<u8>,
) -> io::Result<()> {
    for part in response.parts {
        match part {
            Part::Bytes(b) => writer.write_all(&b).await?,
            Part::File {
                file,
                position,
                len,
            } => match (&mut *writer, file.raw_fd()) {
                (Writer::Plain(writer), Some(fd)) => {
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
                (writer, _) => {
                    // No sendfile (a TLS stream, or a file without a descriptor): the bytes
                    // are read a chunk at a time and written.
                    let mut at = position;
                    let end = position + len;
                    if chunk.is_empty() {
                        chunk.resize(1 << 20, 0);
                    }
                    while at < end {
                        let n = (end - at).min(chunk.len() as u64) as usize;
                        file.read_exact_at(&mut chunk[..n], at)?;
                        writer.write_all(&chunk[..n]).await?;
                        at += n as u64;
                    }
                }
            },
        }
    }
    Ok(())
}
