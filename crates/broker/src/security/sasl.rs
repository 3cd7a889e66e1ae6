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

use super::scram::{ScramMechanism, ScramServer, ScramStep};
use super::store::SecurityStore;
use crate::config::sasl::SaslSettings;

/// Where a connection is in its authentication.
#[derive(Debug)]
pub struct SaslSession {
    settings: Arc<SaslSettings>,
    store: Arc<SecurityStore>,
    mechanism: Option<String>,
    /// The SCRAM exchange under way.
    scram: Option<ScramServer>,
}

impl std::fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramServer").finish_non_exhaustive()
    }
}

/// What an authentication step came to.
#[derive(Debug)]
pub enum Authenticated {
    /// The client is `principal` now.
    Yes { principal: String },
    /// The mechanism needs another round trip.
    Continue,
    /// Refused: answer, wait the failure delay, close.
    Failed,
    /// Out of order (no mechanism chosen): answer and close.
    Illegal,
}

impl SaslSession {
    pub fn new(settings: Arc<SaslSettings>, store: Arc<SecurityStore>) -> SaslSession {
        SaslSession {
            settings,
            store,
            mechanism: None,
            scram: None,
        }
    }

    /// The largest frame accepted before authentication (`sasl.server.max.receive.size`).
    pub fn max_receive_size(&self) -> usize {
        self.settings.max_receive_size
    }

    /// How long to wait before answering a failed authentication.
    pub fn failure_delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.settings.failed_authentication_delay_ms)
    }

    /// SaslHandshake: the mechanism the client wants, if enabled; the enabled ones either way.
    pub fn handshake(&mut self, req: &SaslHandshakeRequest) -> SaslHandshakeResponse {
        let wanted = req.mechanism.as_str().to_string();
        let mut response = SaslHandshakeResponse::default().with_mechanisms(
            self.settings
                .mechanisms
                .iter()
                .map(|m| StrBytes::from_string(m.clone()))
                .collect(),
        );
        if self.settings.mechanisms.contains(&wanted) {
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
        let Some(mechanism) = &self.mechanism else {
            let response = SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "SaslAuthenticate before a SaslHandshake named a mechanism",
                )));
            return (response, Authenticated::Illegal);
        };
        let outcome = match (mechanism.as_str(), self.scram.as_mut()) {
            ("PLAIN", _) => match self.plain(&req.auth_bytes) {
                Some(user) => ScramStep::Done {
                    user,
                    server_final: Vec::new(),
                },
                None => ScramStep::Failed,
            },
            (_, Some(scram)) => {
                let store = &self.store;
                let mechanism = ScramMechanism::from_name(mechanism).expect("a SCRAM mechanism");
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
            ScramStep::Done { user, server_final } => (
                SaslAuthenticateResponse::default().with_auth_bytes(server_final.into()),
                Authenticated::Yes {
                    principal: format!("User:{user}"),
                },
            ),
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
        let expected = self.settings.plain_users.get(user);
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
            Arc::new(SaslSettings {
                mechanisms: vec!["PLAIN".into()],
                plain_users: [("alice".to_string(), "alice-secret".to_string())].into(),
                failed_authentication_delay_ms: 100,
                max_receive_size: 524288,
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
        assert!(matches!(a, Authenticated::Yes { principal } if principal == "User:alice"));
    }
}
