//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka uses them: the credential a
//! broker keeps (salt, StoredKey, ServerKey, iterations; never the password) and the server's
//! side of the exchange. The primitives (PBKDF2, HMAC, SHA-2, the random nonce) are ring's.
//!
//! The exchange, one SaslAuthenticate round trip per message:
//! 1. client-first `n,,n=<user>,r=<client nonce>[,<extensions>]`, answered with server-first
//!    `r=<client nonce><server nonce>,s=<base64 salt>,i=<iterations>`;
//! 2. client-final `c=biws,r=<nonce>,p=<base64 proof>`, answered with server-final
//!    `v=<base64 server signature>` when the proof is right.
//!
//! A user without a credential is answered in step 1 like any other (a salt derived from the
//! name with a per-process secret, the default iterations) and refused in step 2, so the
//! exchange does not tell which users exist.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::rand::SecureRandom;
use ring::{digest, hmac, pbkdf2};
use subtle::ConstantTimeEq;

/// Kafka's SCRAM mechanisms, with the type numbers of its admin APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

/// Kafka's bounds on a credential's iterations.
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The number AlterUserScramCredentials and DescribeUserScramCredentials use.
    pub fn type_id(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_type_id(id: i8) -> Option<ScramMechanism> {
        Self::ALL.into_iter().find(|m| m.type_id() == id)
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn output_len(self) -> usize {
        self.digest().output_len()
    }

    /// Hi(password, salt, i) of RFC 5802: what a client sends in AlterUserScramCredentials.
    pub fn salted_password(self, password: &str, salt: &[u8], iterations: i32) -> Vec<u8> {
        let mut out = vec![0; self.output_len()];
        let iterations = NonZeroU32::new(iterations.max(1) as u32).expect("at least one");
        pbkdf2::derive(
            self.pbkdf2(),
            iterations,
            salt,
            password.as_bytes(),
            &mut out,
        );
        out
    }

    fn hmac_of(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), data)
            .as_ref()
            .to_vec()
    }

    /// The stored credential for a salted password.
    pub fn credential(
        self,
        salt: Vec<u8>,
        salted_password: &[u8],
        iterations: i32,
    ) -> ScramCredential {
        let client_key = self.hmac_of(salted_password, b"Client Key");
        ScramCredential {
            stored_key: digest::digest(self.digest(), &client_key).as_ref().to_vec(),
            server_key: self.hmac_of(salted_password, b"Server Key"),
            salt,
            iterations,
        }
    }
}

impl fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the broker keeps of a user's SCRAM password.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Random bytes from the operating system (salts, nonces, secrets).
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .expect("the operating system's random source");
    out
}

/// The per-process secret that derives the salts shown to users without a credential.
fn unknown_user_secret() -> &'static [u8] {
    static SECRET: OnceLock<Vec<u8>> = OnceLock::new();
    SECRET.get_or_init(|| random_bytes(32))
}

/// Decodes a SCRAM `saslname` (`=2C` is a comma, `=3D` an equals sign).
fn decode_sasl_name(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let escape = rest.get(i..i + 3)?;
        out.push(match escape {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// The server side of one SCRAM exchange.
pub struct ScramServer {
    mechanism: ScramMechanism,
    state: State,
    /// The server's part of the nonce, fixed only by tests (RFC 7677's example).
    fixed_nonce: Option<String>,
}

enum State {
    Initial,
    /// server-first sent.
    Challenged {
        user: String,
        credential: Option<ScramCredential>,
        nonce: String,
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
    },
    Finished,
}

/// What a client message came to.
#[derive(Debug, PartialEq, Eq)]
pub enum ScramStep {
    /// Send this and wait for the next message.
    Challenge(Vec<u8>),
    /// Authenticated as `user`; send the server-final message.
    Done { user: String, server_final: Vec<u8> },
    /// Refused (malformed, wrong proof, unknown user, out of order).
    Failed,
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> ScramServer {
        ScramServer {
            mechanism,
            state: State::Initial,
            fixed_nonce: None,
        }
    }

    /// One client message; `lookup` finds a user's credential for this mechanism.
    pub fn step(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> ScramStep {
        let state = std::mem::replace(&mut self.state, State::Finished);
        let Ok(message) = std::str::from_utf8(message) else {
            return ScramStep::Failed;
        };
        match state {
            State::Initial => self.client_first(message, lookup),
            State::Challenged {
                user,
                credential,
                nonce,
                gs2_header,
                client_first_bare,
                server_first,
            } => {
                let Some(credential) = credential else {
                    return ScramStep::Failed;
                };
                self.client_final(
                    message,
                    &user,
                    &credential,
                    &nonce,
                    &gs2_header,
                    &client_first_bare,
                    &server_first,
                )
            }
            State::Finished => ScramStep::Failed,
        }
    }

    fn client_first(
        &mut self,
        message: &str,
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> ScramStep {
        // gs2-header: no channel binding ("n") or "y" (client supports it, thinks we do not);
        // an authorization id must be the user itself.
        let mut parts = message.splitn(3, ',');
        let (Some(cbind), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next())
        else {
            return ScramStep::Failed;
        };
        if cbind != "n" && cbind != "y" {
            return ScramStep::Failed;
        }
        let mut fields = bare.split(',');
        let (Some(user), Some(client_nonce)) = (
            fields.next().and_then(|f| f.strip_prefix("n=")),
            fields.next().and_then(|f| f.strip_prefix("r=")),
        ) else {
            return ScramStep::Failed;
        };
        // Extensions: Kafka's `tokenauth` asks for delegation tokens, which are not offered.
        if fields.any(|f| f.starts_with("tokenauth=")) {
            return ScramStep::Failed;
        }
        let Some(user) = decode_sasl_name(user) else {
            return ScramStep::Failed;
        };
        if user.is_empty() || client_nonce.is_empty() || !client_nonce.is_ascii() {
            return ScramStep::Failed;
        }
        if !authzid.is_empty()
            && decode_sasl_name(authzid.trim_start_matches("a=")) != Some(user.clone())
        {
            return ScramStep::Failed;
        }
        let credential = lookup(&user);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (
                self.mechanism
                    .hmac_of(unknown_user_secret(), user.as_bytes()),
                MIN_ITERATIONS,
            ),
        };
        let server_nonce = self
            .fixed_nonce
            .clone()
            .unwrap_or_else(|| BASE64.encode(random_bytes(24)));
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!("r={nonce},s={},i={iterations}", BASE64.encode(&salt));
        let challenge = server_first.clone().into_bytes();
        self.state = State::Challenged {
            user,
            credential,
            nonce,
            gs2_header: format!("{cbind},{authzid},"),
            client_first_bare: bare.to_string(),
            server_first,
        };
        ScramStep::Challenge(challenge)
    }

    #[allow(clippy::too_many_arguments)]
    fn client_final(
        &self,
        message: &str,
        user: &str,
        credential: &ScramCredential,
        nonce: &str,
        gs2_header: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> ScramStep {
        let Some((without_proof, proof)) = message.rsplit_once(",p=") else {
            return ScramStep::Failed;
        };
        let mut fields = without_proof.split(',');
        let (Some(binding), Some(final_nonce)) = (
            fields.next().and_then(|f| f.strip_prefix("c=")),
            fields.next().and_then(|f| f.strip_prefix("r=")),
        ) else {
            return ScramStep::Failed;
        };
        if BASE64.decode(binding).ok().as_deref() != Some(gs2_header.as_bytes())
            || final_nonce != nonce
        {
            return ScramStep::Failed;
        }
        let Ok(proof) = BASE64.decode(proof) else {
            return ScramStep::Failed;
        };
        let m = self.mechanism;
        if proof.len() != m.output_len() {
            return ScramStep::Failed;
        }
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = m.hmac_of(&credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let computed = digest::digest(m.digest(), &client_key);
        if !bool::from(computed.as_ref().ct_eq(&credential.stored_key)) {
            return ScramStep::Failed;
        }
        let server_signature = m.hmac_of(&credential.server_key, auth_message.as_bytes());
        ScramStep::Done {
            user: user.to_string(),
            server_final: format!("v={}", BASE64.encode(server_signature)).into_bytes(),
        }
    }
}

/// Encodes a user name as a SCRAM `saslname`.
fn encode_sasl_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// The client side of one SCRAM exchange (the `strata` tools' `--command-config`).
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    client_first_bare: String,
    client_nonce: String,
    /// The server signature the server-final message must carry, once computed.
    expected: Option<Vec<u8>>,
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient").finish_non_exhaustive()
    }
}

impl ScramClient {
    pub fn new(mechanism: ScramMechanism, user: &str, password: &str) -> ScramClient {
        let client_nonce = BASE64.encode(random_bytes(24));
        ScramClient {
            mechanism,
            password: password.to_string(),
            client_first_bare: format!("n={},r={client_nonce}", encode_sasl_name(user)),
            client_nonce,
            expected: None,
        }
    }

    /// client-first.
    pub fn first_message(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// client-final, answering the server-first message.
    pub fn final_message(&mut self, server_first: &[u8]) -> Result<Vec<u8>, String> {
        let server_first =
            std::str::from_utf8(server_first).map_err(|_| "server-first is not UTF-8")?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for field in server_first.split(',') {
            match field.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v),
                Some(("s=", v)) => salt = BASE64.decode(v).ok(),
                Some(("i=", v)) => iterations = v.parse::<i32>().ok(),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(format!("malformed server-first message: {server_first}"));
        };
        if !nonce.starts_with(&self.client_nonce) || iterations < 1 {
            return Err("the server's nonce or iterations are not acceptable".into());
        }
        let m = self.mechanism;
        let salted = m.salted_password(&self.password, &salt, iterations);
        let client_key = m.hmac_of(&salted, b"Client Key");
        let stored_key = digest::digest(m.digest(), &client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = m.hmac_of(stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = m.hmac_of(&salted, b"Server Key");
        self.expected = Some(m.hmac_of(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message: the server knew the credential.
    pub fn verify_server(&self, server_final: &[u8]) -> Result<(), String> {
        let signature = std::str::from_utf8(server_final)
            .ok()
            .and_then(|s| s.strip_prefix("v="))
            .and_then(|v| BASE64.decode(v).ok());
        match (&self.expected, signature) {
            (Some(expected), Some(got)) if bool::from(expected.ct_eq(&got)) => Ok(()),
            _ => Err("the server's SCRAM signature does not verify".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example, byte for byte.
    #[test]
    fn rfc7677_example_authenticates() {
        let m = ScramMechanism::Sha256;
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = m.salted_password("pencil", &salt, 4096);
        let credential = m.credential(salt, &salted, 4096);
        let start = || {
            let mut server = ScramServer::new(m);
            server.fixed_nonce = Some("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into());
            let step = server.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", |u| {
                (u == "user").then(|| credential.clone())
            });
            assert_eq!(
                step,
                ScramStep::Challenge(
                    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".to_vec()
                )
            );
            server
        };
        let client_final = |proof: &str| {
            format!("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p={proof}")
        };
        let mut wrong = start();
        let step = wrong.step(
            client_final("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVR=").as_bytes(),
            |_| None,
        );
        assert_eq!(step, ScramStep::Failed);
        let mut server = start();
        let step = server.step(
            client_final("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=").as_bytes(),
            |_| None,
        );
        assert_eq!(
            step,
            ScramStep::Done {
                user: "user".into(),
                server_final: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
            }
        );
        assert_eq!(server.step(b"again", |_| None), ScramStep::Failed);
    }

    #[test]
    fn the_client_and_the_server_agree() {
        for m in ScramMechanism::ALL {
            let salt = random_bytes(32);
            let salted = m.salted_password("pa,ss=word", &salt, 4096);
            let credential = m.credential(salt, &salted, 4096);
            let lookup = |u: &str| (u == "us,er=1").then(|| credential.clone());
            for (password, ok) in [("pa,ss=word", true), ("wrong", false)] {
                let mut client = ScramClient::new(m, "us,er=1", password);
                let mut server = ScramServer::new(m);
                let ScramStep::Challenge(first) = server.step(&client.first_message(), lookup)
                else {
                    panic!("{m}: no challenge")
                };
                let last = client.final_message(&first).unwrap();
                match server.step(&last, lookup) {
                    ScramStep::Done { user, server_final } => {
                        assert!(ok, "{m}: a wrong password authenticated");
                        assert_eq!(user, "us,er=1");
                        client.verify_server(&server_final).unwrap();
                        assert!(client.verify_server(b"v=AAAA").is_err());
                    }
                    step => assert!(!ok && step == ScramStep::Failed, "{m}: {step:?}"),
                }
            }
        }
    }

    #[test]
    fn unknown_users_get_a_stable_challenge_and_are_refused() {
        let m = ScramMechanism::Sha512;
        let challenge = |nonce: &str| {
            let mut s = ScramServer::new(m);
            let ScramStep::Challenge(c) =
                s.step(format!("n,,n=ghost,r={nonce}").as_bytes(), |_| None)
            else {
                panic!()
            };
            let c = String::from_utf8(c).unwrap();
            (s, c[c.find(",s=").unwrap()..].to_string())
        };
        let (mut s, salt1) = challenge("abc");
        let (_, salt2) = challenge("def");
        assert_eq!(salt1, salt2);
        assert_eq!(s.step(b"c=biws,r=abc,p=AAAA", |_| None), ScramStep::Failed);
    }

    #[test]
    fn malformed_first_messages_fail() {
        for bad in [
            &b""[..],
            b"n,,",
            b"p=tls-unique,,n=u,r=x",
            b"n,,n=,r=x",
            b"n,,n=u",
            b"n,,n=a=2Xb,r=x",
            b"n,,n=u,r=x,tokenauth=true",
            b"n,a=other,n=u,r=x",
            b"\xff\xfe",
        ] {
            let mut s = ScramServer::new(ScramMechanism::Sha256);
            assert_eq!(s.step(bad, |_| None), ScramStep::Failed, "{bad:?}");
        }
        assert_eq!(decode_sasl_name("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(decode_sasl_name("a=").as_deref(), None);
    }
}
