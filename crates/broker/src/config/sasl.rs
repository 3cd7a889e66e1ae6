//! SASL settings of a listener: `sasl.enabled.mechanisms`, PLAIN's users from Kafka's JAAS line,
//! the failed-authentication delay.

use std::collections::BTreeMap;

use super::listeners::listener_value;
use super::{invalid, ConfigError};

/// A SASL listener's settings.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslSettings {
    /// `sasl.enabled.mechanisms` (PLAIN here by default: Kafka's GSSAPI is not offered).
    pub mechanisms: Vec<String>,
    /// PLAIN's users and passwords, from the listener's JAAS line
    /// (`listener.name.<name>.plain.sasl.jaas.config`, `user_<name>="<password>"`).
    pub plain_users: BTreeMap<String, String>,
    /// `connection.failed.authentication.delay.ms`
    pub failed_authentication_delay_ms: u64,
    /// `sasl.server.max.receive.size`: the largest frame read before authentication.
    pub max_receive_size: usize,
    /// OAUTHBEARER's token validation, when that mechanism is enabled.
    pub oauth: Option<OAuthSettings>,
    /// `connections.max.reauth.ms`: how long an authentication holds (KIP-368); 0: forever.
    pub max_reauth_ms: i64,
}

/// OAUTHBEARER's JWT validation (Kafka's `sasl.oauthbearer.*` keys, KIP-768).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    /// `sasl.oauthbearer.jwks.endpoint.url`: a `file:` URL or path, or an http(s) endpoint.
    pub jwks_url: String,
    /// `sasl.oauthbearer.jwks.endpoint.refresh.ms`
    pub jwks_refresh_ms: u64,
    /// `sasl.oauthbearer.expected.audience` (any of them); empty: not checked.
    pub expected_audience: Vec<String>,
    /// `sasl.oauthbearer.expected.issuer`; None: not checked.
    pub expected_issuer: Option<String>,
    /// `sasl.oauthbearer.sub.claim.name`: the claim naming the principal.
    pub sub_claim_name: String,
    /// `sasl.oauthbearer.clock.skew.seconds`
    pub clock_skew_seconds: u64,
}

impl std::fmt::Debug for SaslSettings {
    // Passwords are secrets: only the user names are printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslSettings")
            .field("mechanisms", &self.mechanisms)
            .field("plain_users", &self.plain_users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The mechanisms Strata offers.
pub const SASL_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

pub(super) fn parse_sasl(
    name: &str,
    get: &dyn Fn(&str) -> String,
    explicit: &dyn Fn(&str) -> Option<String>,
) -> Result<SaslSettings, ConfigError> {
    let (mech_key, raw) = listener_value(name, "sasl.enabled.mechanisms", get, explicit);
    let mut mechanisms = Vec::new();
    for m in raw.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let m = m.to_ascii_uppercase();
        if !SASL_MECHANISMS.contains(&m.as_str()) {
            return Err(invalid(
                &mech_key,
                &raw,
                format!(
                    "SASL mechanism {m} is not supported (supported: {})",
                    SASL_MECHANISMS.join(", ")
                ),
            ));
        }
        mechanisms.push(m);
    }
    if mechanisms.is_empty() {
        return Err(invalid(&mech_key, &raw, "no SASL mechanism enabled"));
    }
    let mut plain_users = BTreeMap::new();
    if mechanisms.iter().any(|m| m == "PLAIN") {
        let prefixed = format!(
            "listener.name.{}.plain.sasl.jaas.config",
            name.to_ascii_lowercase()
        );
        let (key, jaas) = match explicit(&prefixed) {
            Some(v) => (prefixed, v),
            None => ("sasl.jaas.config".to_string(), get("sasl.jaas.config")),
        };
        if jaas.is_empty() {
            return Err(ConfigError::Missing(format!(
                "{key} (PLAIN on listener {name} needs its users)"
            )));
        }
        plain_users =
            parse_plain_jaas(&jaas).map_err(|reason| invalid(&key, "[hidden]", reason))?;
    }
    let delay = get("connection.failed.authentication.delay.ms");
    let failed_authentication_delay_ms = delay.parse().map_err(|_| {
        invalid(
            "connection.failed.authentication.delay.ms",
            &delay,
            "Expected a number of milliseconds",
        )
    })?;
    let raw = get("sasl.server.max.receive.size");
    let max_receive_size = raw
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            invalid(
                "sasl.server.max.receive.size",
                &raw,
                "Expected a positive number of bytes",
            )
        })?;
    let oauth = if mechanisms.iter().any(|m| m == "OAUTHBEARER") {
        let value = |key: &str| listener_value(name, key, get, explicit);
        let (url_key, jwks_url) = value("sasl.oauthbearer.jwks.endpoint.url");
        if jwks_url.trim().is_empty() {
            return Err(ConfigError::Missing(format!(
                "{url_key} (OAUTHBEARER on listener {name} checks tokens' signatures against it; \
                 unsigned tokens are not accepted)"
            )));
        }
        let number = |key: &str| -> Result<u64, ConfigError> {
            let (k, raw) = value(key);
            raw.trim()
                .parse::<u64>()
                .map_err(|_| invalid(&k, &raw, "Expected a non-negative number"))
        };
        let (_, audience) = value("sasl.oauthbearer.expected.audience");
        let (_, issuer) = value("sasl.oauthbearer.expected.issuer");
        let (_, sub) = value("sasl.oauthbearer.sub.claim.name");
        Some(OAuthSettings {
            jwks_url: jwks_url.trim().to_string(),
            jwks_refresh_ms: number("sasl.oauthbearer.jwks.endpoint.refresh.ms")?,
            expected_audience: audience
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect(),
            expected_issuer: Some(issuer.trim().to_string()).filter(|i| !i.is_empty()),
            sub_claim_name: sub.trim().to_string(),
            clock_skew_seconds: number("sasl.oauthbearer.clock.skew.seconds")?,
        })
    } else {
        None
    };
    let (reauth_key, raw) = listener_value(name, "connections.max.reauth.ms", get, explicit);
    let max_reauth_ms = raw
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            invalid(
                &reauth_key,
                &raw,
                "Expected a non-negative number of milliseconds",
            )
        })?;
    Ok(SaslSettings {
        mechanisms,
        plain_users,
        failed_authentication_delay_ms,
        max_receive_size,
        oauth,
        max_reauth_ms,
    })
}

/// The users of Kafka's PLAIN JAAS line:
/// `org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="secret" ...;`
/// (`username`/`password`, the broker's own client identity, are allowed and not users). An
/// error never quotes a password.
pub fn parse_plain_jaas(line: &str) -> Result<BTreeMap<String, String>, String> {
    let (module, options) = parse_jaas(line)?;
    if module != "org.apache.kafka.common.security.plain.PlainLoginModule" {
        return Err("expected org.apache.kafka.common.security.plain.PlainLoginModule".into());
    }
    Ok(options
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix("user_").map(|u| (u.to_string(), v)))
        .collect())
}

/// One JAAS login module line, `<module> <flag> key="value" ...;`: the module's class name and
/// its options. An error never quotes a value.
pub fn parse_jaas(line: &str) -> Result<(String, BTreeMap<String, String>), String> {
    let line = line.trim();
    let (module, rest) = line
        .split_once(char::is_whitespace)
        .ok_or("expected a login module and a control flag")?;
    let rest = rest.trim_start();
    let rest = ["required", "requisite", "sufficient", "optional"]
        .iter()
        .find_map(|flag| rest.strip_prefix(flag))
        .ok_or("expected a control flag (required) after the login module")?;
    let rest = rest
        .trim()
        .strip_suffix(';')
        .ok_or("a JAAS line ends with ';'")?;
    let mut options = BTreeMap::new();
    let mut chars = rest.trim().chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_string();
        if key.is_empty() {
            return Err("expected option=\"value\"".to_string());
        }
        if chars.next() != Some('"') {
            return Err(format!("the value of {key} must be in double quotes"));
        }
        let mut value = String::new();
        let mut closed = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                }
                '"' => {
                    closed = true;
                    break;
                }
                c => value.push(c),
            }
        }
        if !closed {
            return Err(format!("the value of {key} has no closing quote"));
        }
        options.insert(key, value);
    }
    Ok((module.to_string(), options))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::listeners::tests::parse;

    #[test]
    fn plain_users_come_from_the_jaas_line() {
        let users = parse_plain_jaas(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="al\"ice";"#,
        )
        .unwrap();
        assert_eq!(
            users.into_iter().collect::<Vec<_>>(),
            [
                ("admin".to_string(), "admin-secret".to_string()),
                ("alice".to_string(), "al\"ice".to_string())
            ]
        );
        for bad in [
            "PlainLoginModule required user_a=\"b\";",
            "org.apache.kafka.common.security.plain.PlainLoginModule required user_a=\"b\"",
            "org.apache.kafka.common.security.plain.PlainLoginModule required user_a=b;",
            "org.apache.kafka.common.security.plain.PlainLoginModule required user_a=\"secret;",
        ] {
            let e = parse_plain_jaas(bad).unwrap_err();
            assert!(!e.contains("secret"), "{e}");
        }
        let (ls, _) = parse(&[
            ("listeners", "SASL_PLAINTEXT://a:1"),
            ("inter.broker.listener.name", "SASL_PLAINTEXT"),
            (
                "listener.name.sasl_plaintext.plain.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required user_bob=\"pw\";",
            ),
        ])
        .unwrap();
        let sasl = ls[0].sasl.as_ref().unwrap();
        assert_eq!(sasl.mechanisms, ["PLAIN"]);
        assert_eq!(sasl.plain_users["bob"], "pw");
        assert!(!format!("{sasl:?}").contains("pw"));
        let e = parse(&[
            ("listeners", "SASL_PLAINTEXT://a:1"),
            ("sasl.enabled.mechanisms", "GSSAPI"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("GSSAPI"), "{e}");
    }
}
