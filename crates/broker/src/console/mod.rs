//! The web console (`http.console.listener`, off by default): one page served by the broker,
//! with no JavaScript build step, that draws the brokers, the tiers against the migration
//! threshold and its band, every partition's segments by tier, size and age, the migrations
//! under way, and the consumer groups with their lag. The page asks `/api/state` (JSON, see
//! [`state`]) every second and redraws itself.
//!
//! HTTP/1.1 through hyper; GET only. The console changes nothing: like the metrics endpoint,
//! it answers anyone who reaches its listener, so bind it where only operators can.

pub mod state;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::broker::Broker;

/// The page: HTML, CSS and JavaScript in one file.
const PAGE: &str = include_str!("index.html");

/// Binds the console's listener (from within a tokio runtime).
pub async fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves the console on `listener` until the runtime stops.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "console: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let broker = broker.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let broker = broker.clone();
                async move { Ok::<_, Infallible>(route(&broker, &req)) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "console connection closed");
            }
        });
    }
}

fn route(broker: &Broker, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
    }
    match req.uri().path() {
        "/" | "/index.html" => reply(StatusCode::OK, "text/html; charset=utf-8", PAGE),
        "/api/state" => match serde_json::to_string(&state::snapshot(broker)) {
            Ok(json) => reply(StatusCode::OK, "application/json", json),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                e.to_string(),
            ),
        },
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    if let Ok(v) = "no-store".parse() {
        response
            .headers_mut()
            .insert(hyper::header::CACHE_CONTROL, v);
    }
    response
}
