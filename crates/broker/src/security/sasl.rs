//! SASL authentication on SASL_PLAINTEXT and SASL_SSL listeners, as Kafka does it: after
//! ApiVersions, a client names its mechanism with SaslHandshake (v1) and sends its tokens in
//! SaslAuthenticate requests; until it has authenticated, any other request closes the
//! connection. PLAIN checks the user and password against the listener's JAAS users (compared
//! in constant time). A failed authentication is answered with SASL_AUTHENTICATION_FAILED
//! after `connection.failed.authentication.delay.ms`, and the connection is closed.

use std::sync::Arc;

use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use subtle::ConstantTimeEq;

use crate::config::sasl::SaslSettings;

/// Where a connection is in its authentication.
#[derive(Debug)]
pub struct SaslSession {
    settings: Arc<SaslSettings>,
    mechanism: Option<String>,
}

/// What an authentication step came to.
#[derive(Debug)]
pub enum Authenticated {
    /// The client is `principal` now.
    Yes { principal: String },
    /// Refused: answer, wait the failure delay, close.
    Failed,
    /// Out of order (no mechanism chosen): answer and close.
    Illegal,
}

impl SaslSession {
    pub fn new(settings: Arc<SaslSettings>) -> SaslSession {
        SaslSession {
            settings,
            mechanism: None,
        }
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
        let outcome = match mechanism.as_str() {
            "PLAIN" => self.plain(&req.auth_bytes),
            _ => None,
        };
        match outcome {
            Some(user) => (
                SaslAuthenticateResponse::default(),
                Authenticated::Yes {
                    principal: format!("User:{user}"),
                },
            ),
            None => (
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
        SaslSession::new(Arc::new(SaslSettings {
            mechanisms: vec!["PLAIN".into()],
            plain_users: [("alice".to_string(), "alice-secret".to_string())].into(),
            failed_authentication_delay_ms: 100,
        }))
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
