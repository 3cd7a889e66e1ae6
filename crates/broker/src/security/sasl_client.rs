//! SASL's client side, PLAIN and SCRAM (a broker authenticating to another over the inter-broker
//! listener; the tools authenticating to a broker): SaslHandshake, then the mechanism's
//! SaslAuthenticate exchanges, over whatever connection implements [`SaslExchange`].

use std::future::Future;
use std::io;

use bytes::Bytes;

use super::scram::{ScramClient, ScramMechanism};

/// A connection that can carry SASL's two requests.
pub trait SaslExchange {
    /// SaslHandshake for `mechanism`: its error code and the mechanisms the broker offers.
    fn handshake(
        &mut self,
        mechanism: &str,
    ) -> impl Future<Output = io::Result<(i16, Vec<String>)>> + Send;

    /// One SaslAuthenticate: the broker's bytes, or its error code and message.
    fn token(
        &mut self,
        bytes: Vec<u8>,
    ) -> impl Future<Output = io::Result<Result<Bytes, (i16, Option<String>)>>> + Send;
}

/// Whether this side can authenticate with `mechanism`.
pub fn supported(mechanism: &str) -> bool {
    mechanism == "PLAIN" || ScramMechanism::from_name(mechanism).is_some()
}

fn refused(code: i16, message: Option<String>) -> io::Error {
    let name = kafka_protocol::ResponseError::try_from_code(code)
        .map_or_else(|| format!("error {code}"), |e| format!("{e:?}"));
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        match message {
            Some(m) => format!("SASL authentication failed: {name}: {m}"),
            None => format!("SASL authentication failed: {name}"),
        },
    )
}

async fn token<T: SaslExchange>(connection: &mut T, bytes: Vec<u8>) -> io::Result<Bytes> {
    connection
        .token(bytes)
        .await?
        .map_err(|(code, message)| refused(code, message))
}

/// Authenticates `user` with `password` by `mechanism` (PLAIN or SCRAM-SHA-256/512); SCRAM
/// also checks the broker's proof.
pub async fn authenticate<T: SaslExchange>(
    connection: &mut T,
    mechanism: &str,
    user: &str,
    password: &str,
) -> io::Result<()> {
    let (code, offered) = connection.handshake(mechanism).await?;
    if code != 0 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "the broker does not offer SASL mechanism {mechanism} (it offers {})",
                offered.join(", ")
            ),
        ));
    }
    match ScramMechanism::from_name(mechanism) {
        None if mechanism == "PLAIN" => {
            token(connection, format!("\0{user}\0{password}").into_bytes()).await?;
        }
        None => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("SASL mechanism {mechanism} is not one this client speaks"),
            ))
        }
        Some(m) => {
            let mut scram = ScramClient::new(m, user, password);
            let server_first = token(connection, scram.first_message()).await?;
            let last = scram
                .final_message(&server_first)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let server_final = token(connection, last).await?;
            scram
                .verify_server(&server_final)
                .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?;
        }
    }
    Ok(())
}
