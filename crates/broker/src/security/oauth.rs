//! SASL OAUTHBEARER (RFC 7628) with Kafka's broker-side JWT validation (KIP-768): the client's
//! bearer token must be a JWT signed by a key of the JWKS at `sasl.oauthbearer.jwks.endpoint.url`
//! (a `file:` URL or path, or an `http(s):` endpoint, read again every
//! `sasl.oauthbearer.jwks.endpoint.refresh.ms`), unexpired (with
//! `sasl.oauthbearer.clock.skew.seconds` of leeway), for `sasl.oauthbearer.expected.audience`
//! and from `sasl.oauthbearer.expected.issuer` when those are set. The principal is
//! `User:<the sasl.oauthbearer.sub.claim.name claim>`. Signatures and claims are checked by the
//! jsonwebtoken crate; unsigned tokens are never accepted.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};

use crate::config::sasl::OAuthSettings;

/// The keys of the JWKS, as last read.
struct Keys {
    set: JwkSet,
    read_at: Instant,
}

pub struct OAuthValidator {
    settings: OAuthSettings,
    keys: RwLock<Keys>,
}

impl std::fmt::Debug for OAuthValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthValidator")
            .field("jwks", &self.settings.jwks_url)
            .finish_non_exhaustive()
    }
}

fn is_remote(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// Reads the JWKS from a `file:` URL (or a plain path) or an `http(s):` endpoint.
fn read_jwks(url: &str) -> Result<JwkSet, String> {
    let text = if is_remote(url) {
        ureq::get(url)
            .timeout(Duration::from_secs(10))
            .call()
            .map_err(|e| format!("cannot fetch the JWKS from {url}: {e}"))?
            .into_string()
            .map_err(|e| format!("cannot read the JWKS from {url}: {e}"))?
    } else {
        let path = url.strip_prefix("file://").unwrap_or(url);
        std::fs::read_to_string(path).map_err(|e| format!("cannot read the JWKS {path}: {e}"))?
    };
    serde_json::from_str(&text).map_err(|e| format!("the JWKS at {url} does not parse: {e}"))
}

/// What a token came to: the principal's name and when the token expires (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    pub name: String,
    pub expires_ms: Option<i64>,
}

impl OAuthValidator {
    /// Reads the JWKS (an error when it cannot be read: the broker does not start).
    pub fn new(settings: OAuthSettings) -> Result<Arc<OAuthValidator>, String> {
        let set = read_jwks(&settings.jwks_url)?;
        let validator = Arc::new(OAuthValidator {
            settings,
            keys: RwLock::new(Keys {
                set,
                read_at: Instant::now(),
            }),
        });
        // Read again in the background every refresh interval, so that rotated keys are
        // known; a failed read keeps the keys read before.
        let weak = Arc::downgrade(&validator);
        let every = Duration::from_millis(validator.settings.jwks_refresh_ms.max(1000));
        std::thread::Builder::new()
            .name("jwks-refresh".into())
            .spawn(move || loop {
                std::thread::sleep(every);
                let Some(v) = weak.upgrade() else { return };
                v.refresh();
            })
            .map_err(|e| format!("cannot start the JWKS refresh: {e}"))?;
        Ok(validator)
    }

    fn refresh(&self) {
        match read_jwks(&self.settings.jwks_url) {
            Ok(set) => {
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Keys {
                    set,
                    read_at: Instant::now(),
                }
            }
            Err(e) => tracing::warn!("JWKS not refreshed: {e}"),
        }
    }

    /// Checks a bearer token: signature, expiry, audience, issuer; the principal's name.
    pub fn validate(&self, token: &str) -> Result<Validated, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
        let find = |keys: &Keys| -> Option<DecodingKey> {
            let jwk = match &header.kid {
                Some(kid) => keys.set.find(kid)?,
                None if keys.set.keys.len() == 1 => &keys.set.keys[0],
                None => return None,
            };
            DecodingKey::from_jwk(jwk).ok()
        };
        let key = {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            find(&keys)
        };
        // A key id not seen yet: the JWKS may have been rotated; read it again (at most every
        // ten seconds), as Kafka's refreshing key resolver does.
        let key = match key {
            Some(k) => k,
            None => {
                let stale = self
                    .keys
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .read_at
                    .elapsed()
                    > Duration::from_secs(10);
                // (An http(s) endpoint is only read by the background refresh: a request
                // never waits on the network.)
                if stale && !is_remote(&self.settings.jwks_url) {
                    self.refresh();
                }
                let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
                find(&keys).ok_or("no key of the JWKS matches the token's key id")?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.clock_skew_seconds;
        validation.set_required_spec_claims(&["exp"]);
        if self.settings.expected_audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.settings.expected_audience);
        }
        if let Some(issuer) = &self.settings.expected_issuer {
            validation.set_issuer(&[issuer]);
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key,
            &validation,
        )
        .map_err(|e| format!("invalid token: {e}"))?;
        let name = data
            .claims
            .get(&self.settings.sub_claim_name)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("the token has no {} claim", self.settings.sub_claim_name))?;
        let expires_ms = data
            .claims
            .get("exp")
            .and_then(|v| v.as_f64())
            .map(|s| (s * 1000.0) as i64);
        Ok(Validated {
            name: name.to_string(),
            expires_ms,
        })
    }
}

/// The bearer token of an RFC 7628 client-first message (`n,[a=authzid],^Aauth=Bearer
/// <token>^A...^A^A`) and its authorization id, if any.
pub fn parse_initial_response(message: &[u8]) -> Option<(Option<String>, String)> {
    let text = std::str::from_utf8(message).ok()?;
    let rest = text
        .strip_prefix("n,")
        .or_else(|| text.strip_prefix("y,"))?;
    let (authzid, rest) = rest.split_once(',')?;
    let authzid = match authzid {
        "" => None,
        a => Some(a.strip_prefix("a=")?.to_string()),
    };
    let pairs = rest.strip_prefix('\u{1}')?.strip_suffix("\u{1}\u{1}")?;
    let mut token = None;
    for pair in pairs.split('\u{1}') {
        let (key, value) = pair.split_once('=')?;
        if key == "auth" {
            let bearer = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))?;
            token = Some(bearer.trim().to_string());
        }
    }
    Some((authzid, token.filter(|t| !t.is_empty())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_responses_parse_as_rfc_7628_writes_them() {
        assert_eq!(
            parse_initial_response(b"n,,\x01auth=Bearer abc.def.ghi\x01\x01"),
            Some((None, "abc.def.ghi".to_string()))
        );
        assert_eq!(
            parse_initial_response(b"n,a=alice,\x01host=h\x01auth=Bearer t\x01traceId=1\x01\x01"),
            Some((Some("alice".into()), "t".into()))
        );
        for bad in [
            &b""[..],
            b"n,,auth=Bearer t",
            b"n,,\x01auth=Basic t\x01\x01",
            b"n,,\x01auth=Bearer \x01\x01",
            b"p=x,,\x01auth=Bearer t\x01\x01",
            b"\xff",
        ] {
            assert_eq!(parse_initial_response(bad), None, "{bad:?}");
        }
    }
}
