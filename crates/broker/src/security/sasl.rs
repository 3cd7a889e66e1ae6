//! SASL authentication on SASL_PLAINTEXT and SASL_SSL listeners, as Kafka does it: after
//! ApiVersions, a client names its mechanism with SaslHandshake (v1) and sends its tokens in
//! SaslAuthenticate requests; until it has authenticated, any other request closes the
//! connection. PLAIN checks the user and password against the listener's JAAS users (compared
//! in constant time); SCRAM-SHA-256 and SCRAM-SHA-512 run their two round trips against the
//! credentials in the security store. A failed authentication is answered with SASL_AUTHENTICATION_FAILED
//! after `connection.failed.authentication.delay.ms`, and the connection is closed.

use std::sync::Arc;

use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use subtle::ConstantTimeEq;

use super::oauth::{parse_initial_response, OAuthValidator};
use super::scram::{ScramMechanism, ScramServer, ScramStep};
use super::store::SecurityStore;
use crate::config::sasl::SaslSettings;

/// A SASL listener: its settings and, with OAUTHBEARER, the token validator.
#[derive(Debug)]
pub struct SaslListener {
    pub settings: SaslSettings,
    pub oauth: Option<Arc<OAuthValidator>>,
}

impl SaslListener {
    /// The listener's SASL: reads the JWKS when OAUTHBEARER is enabled (an error stops startup).
    pub fn new(settings: SaslSettings) -> Result<SaslListener, String> {
        let oauth = match &settings.oauth {
            Some(o) => Some(OAuthValidator::new(o.clone())?),
            None => None,
        };
        Ok(SaslListener { settings, oauth })
    }
}

/// Where a connection is in its authentication.
#[derive(Debug)]
pub struct SaslSession {
    listener: Arc<SaslListener>,
    store: Arc<SecurityStore>,
    mechanism: Option<String>,
    /// The SCRAM exchange under way.
    scram: Option<ScramServer>,
    /// An OAUTHBEARER token was refused: the error went as a challenge, the client's `%x01`
    /// ends the exchange (RFC 7628).
    oauth_refused: Option<String>,
}

impl std::fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramServer").finish_non_exhaustive()
    }
}

/// What an authentication step came to.
#[derive(Debug)]
pub enum Authenticated {
    /// The client is `principal` now, until `expires_ms` (ms since the epoch) if its
    /// credential expires (an OAUTHBEARER token).
    Yes {
        principal: String,
        expires_ms: Option<i64>,
    },
    /// The mechanism needs another round trip.
    Continue,
    /// Refused: answer, wait the failure delay, close.
    Failed,
    /// Out of order (no mechanism chosen): answer and close.
    Illegal,
}

impl SaslSession {
    pub fn new(listener: Arc<SaslListener>, store: Arc<SecurityStore>) -> SaslSession {
        SaslSession {
            listener,
            store,
            mechanism: None,
            scram: None,
            oauth_refused: None,
        }
    }

    fn settings(&self) -> &SaslSettings {
        &self.listener.settings
    }

    /// The largest frame accepted before authentication (`sasl.server.max.receive.size`).
    /// The mechanism the client chose (SaslHandshake), if any.
    pub fn mechanism(&self) -> Option<&str> {
        self.mechanism.as_deref()
    }

    pub fn max_receive_size(&self) -> usize {
        self.settings().max_receive_size
    }

    /// How long to wait before answering a failed authentication.
    pub fn failure_delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.settings().failed_authentication_delay_ms)
    }

    /// SaslHandshake: the mechanism the client wants, if enabled; the enabled ones either way.
    pub fn handshake(&mut self, req: &SaslHandshakeRequest) -> SaslHandshakeResponse {
        let wanted = req.mechanism.as_str().to_string();
        let mut response = SaslHandshakeResponse::default().with_mechanisms(
            self.settings()
                .mechanisms
                .iter()
                .map(|m| StrBytes::from_string(m.clone()))
                .collect(),
        );
        if self.settings().mechanisms.contains(&wanted) {
            self.scram = ScramMechanism::from_name(&wanted).map(ScramServer::new);
            self.mechanism = Some(wanted);
        } else {
            response.error_code = ResponseError::UnsupportedSaslMechanism.code();
        }
        response
    }

    /// SaslAuthenticate: one token of the chosen mechanism.
    pub fn authenticate(
        &mut self,
        req: &SaslAuthenticateRequest,
    ) -> (SaslAuthenticateResponse, Authenticated) {
        let Some(mechanism) = self.mechanism.clone() else {
            let response = SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "SaslAuthenticate before a SaslHandshake named a mechanism",
                )));
            return (response, Authenticated::Illegal);
        };
        let mut expires_ms = None;
        let outcome = match (mechanism.as_str(), self.scram.as_mut()) {
            ("PLAIN", _) => match self.plain(&req.auth_bytes) {
                Some(user) => ScramStep::Done {
                    user,
                    server_final: Vec::new(),
                },
                None => ScramStep::Failed,
            },
            ("OAUTHBEARER", _) => match self.oauthbearer(&req.auth_bytes) {
                Ok((user, expires)) => {
                    expires_ms = expires;
                    ScramStep::Done {
                        user,
                        server_final: Vec::new(),
                    }
                }
                Err(Some(challenge)) => ScramStep::Challenge(challenge),
                Err(None) => {
                    let reason = self.oauth_refused.take().unwrap_or_default();
                    return (
                            SaslAuthenticateResponse::default()
                                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                                .with_error_message(Some(StrBytes::from_string(format!(
                                    "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}: {reason}"
                                )))),
                            Authenticated::Failed,
                        );
                }
            },
            (_, Some(scram)) => {
                let store = &self.store;
                let mechanism = ScramMechanism::from_name(&mechanism).expect("a SCRAM mechanism");
                scram.step(&req.auth_bytes, |user| {
                    store.scram_credential(user, mechanism)
                })
            }
            _ => ScramStep::Failed,
        };
        match outcome {
            ScramStep::Challenge(bytes) => (
                SaslAuthenticateResponse::default().with_auth_bytes(bytes.into()),
                Authenticated::Continue,
            ),
            ScramStep::Done { user, server_final } => {
                // KIP-368: with connections.max.reauth.ms, the session holds that long, or
                // until the token expires if sooner; the client re-authenticates before.
                let now = strata_storage::now_ms();
                let max = self.settings().max_reauth_ms;
                let lifetime = match (max > 0, expires_ms) {
                    (false, _) => 0,
                    (true, Some(exp)) => max.min(exp - now).max(1),
                    (true, None) => max,
                };
                (
                    SaslAuthenticateResponse::default()
                        .with_auth_bytes(server_final.into())
                        .with_session_lifetime_ms(lifetime),
                    Authenticated::Yes {
                        principal: format!("User:{user}"),
                        expires_ms: (lifetime > 0).then_some(now + lifetime),
                    },
                )
            }
            ScramStep::Failed => (
                SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
                    )))),
                Authenticated::Failed,
            ),
        }
    }

    /// OAUTHBEARER (RFC 7628): the principal and the token's expiry; a refused token is
    /// answered with an error challenge first (Err(Some)), and the client's answer to it ends
    /// the exchange (Err(None)).
    fn oauthbearer(&mut self, message: &[u8]) -> Result<(String, Option<i64>), Option<Vec<u8>>> {
        if self.oauth_refused.is_some() {
            return Err(None);
        }
        let Some(validator) = self.listener.oauth.clone() else {
            self.oauth_refused = Some("no token validator".into());
            return Err(None);
        };
        let outcome = match parse_initial_response(message) {
            None => Err("malformed OAUTHBEARER initial response".to_string()),
            Some((authzid, token)) => validator.validate(&token).and_then(|v| match authzid {
                Some(a) if a != v.name => Err(format!(
                    "the authorization id {a} is not the token's principal {}",
                    v.name
                )),
                _ => Ok((v.name, v.expires_ms)),
            }),
        };
        outcome.map_err(|reason| {
            tracing::info!("OAUTHBEARER token refused: {reason}");
            self.oauth_refused = Some(reason);
            Some(br#"{"status":"invalid_token"}"#.to_vec())
        })
    }

    /// PLAIN (RFC 4616): `authzid NUL user NUL password`; the user when the password is right
    /// (an authorization id other than the user is refused, as Kafka does).
    fn plain(&self, token: &[u8]) -> Option<String> {
        let mut parts = token.splitn(3, |b| *b == 0);
        let (authzid, user, password) = (parts.next()?, parts.next()?, parts.next()?);
        let user = std::str::from_utf8(user).ok()?;
        if user.is_empty() || (!authzid.is_empty() && authzid != user.as_bytes()) {
            return None;
        }
        // A user that does not exist costs the same comparison as a wrong password.
        let expected = self.settings().plain_users.get(user);
        let reference = expected
            .map(String::as_bytes)
            .unwrap_or(b"\0no such user\0");
        let same: bool = reference.ct_eq(password).into();
        (same && expected.is_some()).then(|| user.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn session() -> SaslSession {
        let dir = tempfile::tempdir().unwrap();
        let store = SecurityStore::open(
            Arc::new(strata_storage::io::RealIo),
            dir.path().join("security.metadata"),
        )
        .unwrap();
        SaslSession::new(
            Arc::new(SaslListener {
                settings: SaslSettings {
                    mechanisms: vec!["PLAIN".into()],
                    plain_users: [("alice".to_string(), "alice-secret".to_string())].into(),
                    failed_authentication_delay_ms: 100,
                    max_receive_size: 524288,
                    oauth: None,
                    max_reauth_ms: 0,
                },
                oauth: None,
            }),
            Arc::new(store),
        )
    }

    fn auth(s: &mut SaslSession, token: &[u8]) -> (i16, Authenticated) {
        let (r, a) = s.authenticate(
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)),
        );
        (r.error_code, a)
    }

    #[test]
    fn plain_accepts_the_right_password_only() {
        let mut s = session();
        let (code, a) = auth(&mut s, b"\0alice\0alice-secret");
        assert_eq!(code, ResponseError::IllegalSaslState.code());
        assert!(matches!(a, Authenticated::Illegal));
        let r =
            s.handshake(&SaslHandshakeRequest::default().with_mechanism("SCRAM-SHA-512".into()));
        assert_eq!(r.error_code, ResponseError::UnsupportedSaslMechanism.code());
        assert_eq!(r.mechanisms, vec![StrBytes::from_static_str("PLAIN")]);
        let r = s.handshake(&SaslHandshakeRequest::default().with_mechanism("PLAIN".into()));
        assert_eq!(r.error_code, 0);
        for bad in [
            &b"\0alice\0wrong"[..],
            b"\0bob\0alice-secret",
            b"\0alice",
            b"mallory\0alice\0alice-secret",
            b"",
        ] {
            let (code, a) = auth(&mut s, bad);
            assert_eq!(
                code,
                ResponseError::SaslAuthenticationFailed.code(),
                "{bad:?}"
            );
            assert!(matches!(a, Authenticated::Failed));
        }
        let (code, a) = auth(&mut s, b"alice\0alice\0alice-secret");
        assert_eq!(code, 0);
        assert!(matches!(a, Authenticated::Yes { principal, .. } if principal == "User:alice"));
    }
}
