//! Listeners, as Kafka configures them: `listeners` (`NAME://host:port`, several),
//! `listener.security.protocol.map` (each name's security protocol), `advertised.listeners`
//! (what Metadata tells clients, per listener name), `inter.broker.listener.name`, and each
//! listener's TLS settings: the `ssl.*` keys, overridden per listener with Kafka's
//! `listener.name.<name>.` prefix (the name in lower case).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::sasl::{parse_sasl, SaslSettings};
use super::{invalid, ConfigError};

/// A listener's security protocol (`listener.security.protocol.map`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(s: &str) -> Option<SecurityProtocol> {
        match s.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections are TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether clients authenticate with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// An endpoint: `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// `ssl.client.auth`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// Where a PEM comes from: a file (re-read when it changes), or the value itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemSource {
    File(PathBuf),
    Inline(String),
}

/// A TLS listener's settings.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The private key and certificate chain: one PEM file (`ssl.keystore.location`), or the
    /// key (`ssl.keystore.key`) and chain (`ssl.keystore.certificate.chain`) inline.
    pub keystore: PemSource,
    pub inline_chain: Option<String>,
    /// The CAs client certificates are checked against (`ssl.truststore.*`).
    pub truststore: Option<PemSource>,
    pub client_auth: ClientAuth,
    /// `ssl.enabled.protocols`: TLSv1.2 and/or TLSv1.3.
    pub tls12: bool,
    pub tls13: bool,
    /// `ssl.principal.mapping.rules`
    pub principal_mapping_rules: String,
}

impl std::fmt::Debug for TlsSettings {
    // Inline keys are secrets: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = |s: &PemSource| match s {
            PemSource::File(p) => p.display().to_string(),
            PemSource::Inline(_) => "(inline)".to_string(),
        };
        f.debug_struct("TlsSettings")
            .field("keystore", &source(&self.keystore))
            .field("truststore", &self.truststore.as_ref().map(source))
            .field("client_auth", &self.client_auth)
            .field("tls12", &self.tls12)
            .field("tls13", &self.tls13)
            .finish_non_exhaustive()
    }
}

/// One listener: where it binds, what it advertises, its protocol, TLS and SASL settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub bind: Listener,
    /// None: not advertised (absent from `advertised.listeners`).
    pub advertised: Option<Listener>,
    pub tls: Option<TlsSettings>,
    pub sasl: Option<SaslSettings>,
}

/// Kafka's default `listener.security.protocol.map`.
pub const DEFAULT_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

fn parse_endpoints(key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    let mut out: Vec<Listener> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, rest) = entry
            .split_once("://")
            .ok_or_else(|| invalid(key, value, "Expected NAME://host:port"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| invalid(key, value, "Expected NAME://host:port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| invalid(key, value, "Invalid port"))?;
        let name = name.to_ascii_uppercase();
        if name.is_empty() {
            return Err(invalid(key, value, "Expected NAME://host:port"));
        }
        if out.iter().any(|l| l.name == name) {
            return Err(invalid(
                key,
                value,
                format!("Each listener must have a different name, {name} is repeated"),
            ));
        }
        out.push(Listener {
            name,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
        });
    }
    if out.is_empty() {
        return Err(invalid(key, value, "Expected NAME://host:port"));
    }
    Ok(out)
}

fn parse_protocol_map(value: &str) -> Result<BTreeMap<String, SecurityProtocol>, ConfigError> {
    let key = "listener.security.protocol.map";
    let mut map = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, protocol) = entry
            .split_once(':')
            .ok_or_else(|| invalid(key, value, "Expected NAME:PROTOCOL"))?;
        let protocol = SecurityProtocol::parse(protocol.trim()).ok_or_else(|| {
            invalid(
                key,
                value,
                format!("Unknown security protocol {protocol}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
            )
        })?;
        map.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    Ok(map)
}

/// Parses the listeners. `get(key)` is a broker key's value (its default when unset);
/// `explicit(key)` a key only if set (for per-listener overrides).
pub fn parse_listeners(
    get: &dyn Fn(&str) -> String,
    explicit: &dyn Fn(&str) -> Option<String>,
) -> Result<(Vec<ListenerConfig>, String, Vec<Listener>), ConfigError> {
    let all = parse_endpoints("listeners", &get("listeners"))?;
    // The controller listeners (`controller.listener.names`) carry the metadata quorum, not
    // clients' requests: they are set apart (PLAINTEXT, as Kafka assumes them when the protocol
    // map leaves them out).
    let controller_names = super::quorum::controller_listener_names(get);
    let (controller, binds): (Vec<Listener>, Vec<Listener>) = all
        .into_iter()
        .partition(|l| controller_names.contains(&l.name));
    // A controller-only node serves the quorum alone.
    if super::quorum::controller_only(get) {
        if let Some(other) = binds.first() {
            return Err(invalid(
                "listeners",
                &get("listeners"),
                format!("The listeners config must only contain KRaft controller listeners from controller.listener.names when process.roles=controller (found {})", other.name),
            ));
        }
        return Ok((Vec::new(), String::new(), controller));
    }
    if binds.is_empty() {
        return Err(invalid(
            "listeners",
            &get("listeners"),
            "At least one listener besides the controller listeners is required",
        ));
    }
    let map_raw = get("listener.security.protocol.map");
    let map = parse_protocol_map(if map_raw.is_empty() {
        DEFAULT_PROTOCOL_MAP
    } else {
        &map_raw
    })?;
    let advertised_raw = get("advertised.listeners");
    let advertised = if advertised_raw.is_empty() {
        binds
            .iter()
            .map(|l| {
                let mut l = l.clone();
                if l.host.is_empty() || l.host == "0.0.0.0" || l.host == "::" {
                    l.host = "127.0.0.1".to_string();
                }
                l
            })
            .collect()
    } else {
        parse_endpoints("advertised.listeners", &advertised_raw)?
    };
    let advertised: Vec<Listener> = advertised
        .into_iter()
        .filter(|a| !controller_names.contains(&a.name))
        .collect();
    for a in &advertised {
        if !binds.iter().any(|b| b.name == a.name) {
            return Err(invalid(
                "advertised.listeners",
                &advertised_raw,
                format!(
                    "Advertised listener {} must be one of the listeners ({})",
                    a.name,
                    binds
                        .iter()
                        .map(|b| b.name.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ));
        }
    }
    let mut out = Vec::new();
    for bind in binds {
        let protocol = *map.get(&bind.name).ok_or_else(|| {
            invalid(
                "listener.security.protocol.map",
                &map_raw,
                format!("No security protocol defined for listener {}", bind.name),
            )
        })?;
        let tls = if protocol.uses_tls() {
            Some(parse_tls(&bind.name, get, explicit)?)
        } else {
            None
        };
        let sasl = if protocol.uses_sasl() {
            Some(parse_sasl(&bind.name, get, explicit)?)
        } else {
            None
        };
        out.push(ListenerConfig {
            name: bind.name.clone(),
            protocol,
            advertised: advertised.iter().find(|a| a.name == bind.name).cloned(),
            bind,
            tls,
            sasl,
        });
    }
    let inter_broker = match get("inter.broker.listener.name") {
        name if !name.is_empty() => name.to_ascii_uppercase(),
        _ => {
            // Kafka: the listener of `security.inter.broker.protocol` (PLAINTEXT).
            let protocol = get("security.inter.broker.protocol");
            let wanted = SecurityProtocol::parse(&protocol).ok_or_else(|| {
                invalid(
                    "security.inter.broker.protocol",
                    &protocol,
                    "Expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                )
            })?;
            match out.iter().find(|l| l.name == wanted.name()) {
                Some(l) => l.name.clone(),
                // One broker needs no inter-broker listener: the first one stands for it.
                None => out[0].name.clone(),
            }
        }
    };
    if !out
        .iter()
        .any(|l| l.name == inter_broker && l.advertised.is_some())
    {
        return Err(invalid(
            "inter.broker.listener.name",
            &inter_broker,
            "inter.broker.listener.name must be a listener name defined in advertised.listeners",
        ));
    }
    if controller_names.contains(&inter_broker) {
        return Err(invalid(
            "inter.broker.listener.name",
            &inter_broker,
            "controller.listener.names must not contain the inter-broker listener",
        ));
    }
    Ok((out, inter_broker, controller))
}

/// A listener's value of an `ssl.*` key: `listener.name.<name>.<key>` when set, else `key`.
pub(super) fn listener_value(
    name: &str,
    key: &str,
    get: &dyn Fn(&str) -> String,
    explicit: &dyn Fn(&str) -> Option<String>,
) -> (String, String) {
    let prefixed = format!("listener.name.{}.{key}", name.to_ascii_lowercase());
    match explicit(&prefixed) {
        Some(v) => (prefixed, v),
        None => (key.to_string(), get(key)),
    }
}

fn parse_tls(
    name: &str,
    get: &dyn Fn(&str) -> String,
    explicit: &dyn Fn(&str) -> Option<String>,
) -> Result<TlsSettings, ConfigError> {
    let value = |key: &str| listener_value(name, key, get, explicit);
    for key in ["ssl.keystore.type", "ssl.truststore.type"] {
        let (k, v) = value(key);
        if !v.eq_ignore_ascii_case("PEM") {
            return Err(invalid(
                &k,
                &v,
                "Strata reads keys and certificates in PEM only (JKS and PKCS12 keystores can be converted with keytool and openssl)",
            ));
        }
    }
    let (pw_key, pw) = value("ssl.key.password");
    if !pw.is_empty() {
        return Err(invalid(
            &pw_key,
            "[hidden]",
            "encrypted private keys are not supported: give the key unencrypted (PKCS#8 PEM) and protect the file",
        ));
    }
    let (loc_key, location) = value("ssl.keystore.location");
    let (_, inline_key) = value("ssl.keystore.key");
    let (_, inline_chain) = value("ssl.keystore.certificate.chain");
    let keystore = match (location.is_empty(), inline_key.is_empty()) {
        (false, true) => PemSource::File(PathBuf::from(location)),
        (true, false) => {
            if inline_chain.is_empty() {
                return Err(ConfigError::Missing(format!(
                    "ssl.keystore.certificate.chain (listener {name})"
                )));
            }
            PemSource::Inline(inline_key)
        }
        (false, false) => {
            return Err(invalid(
                &loc_key,
                &location,
                "give either ssl.keystore.location or ssl.keystore.key, not both",
            ))
        }
        (true, true) => {
            return Err(ConfigError::Missing(format!(
                "ssl.keystore.location (listener {name} is {})",
                "a TLS listener"
            )))
        }
    };
    let (_, trust_location) = value("ssl.truststore.location");
    let (_, trust_inline) = value("ssl.truststore.certificates");
    let truststore = match (trust_location.is_empty(), trust_inline.is_empty()) {
        (false, _) => Some(PemSource::File(PathBuf::from(trust_location))),
        (true, false) => Some(PemSource::Inline(trust_inline)),
        (true, true) => None,
    };
    let (auth_key, auth) = value("ssl.client.auth");
    let client_auth = match auth.to_ascii_lowercase().as_str() {
        "none" | "" => ClientAuth::None,
        "requested" => ClientAuth::Requested,
        "required" => ClientAuth::Required,
        _ => {
            return Err(invalid(
                &auth_key,
                &auth,
                "Expected none, requested or required",
            ))
        }
    };
    if client_auth != ClientAuth::None && truststore.is_none() {
        return Err(ConfigError::Missing(format!(
            "ssl.truststore.location (listener {name} checks client certificates)"
        )));
    }
    let (proto_key, protocols) = value("ssl.enabled.protocols");
    let (mut tls12, mut tls13) = (false, false);
    for p in protocols
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        match p {
            "TLSv1.2" => tls12 = true,
            "TLSv1.3" => tls13 = true,
            _ => {
                return Err(invalid(
                    &proto_key,
                    &protocols,
                    format!("{p} is not supported: TLSv1.2 and TLSv1.3 are"),
                ))
            }
        }
    }
    if !tls12 && !tls13 {
        return Err(invalid(
            &proto_key,
            &protocols,
            "at least one of TLSv1.2 and TLSv1.3 must be enabled",
        ));
    }
    let (rules_key, principal_mapping_rules) = value("ssl.principal.mapping.rules");
    crate::security::principal::PrincipalMapper::parse(&principal_mapping_rules)
        .map_err(|reason| invalid(&rules_key, &principal_mapping_rules, reason))?;
    Ok(TlsSettings {
        keystore,
        inline_chain: (!inline_chain.is_empty()).then_some(inline_chain),
        truststore,
        client_auth,
        tls12,
        tls13,
        principal_mapping_rules,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn parse(
        values: &[(&str, &str)],
    ) -> Result<(Vec<ListenerConfig>, String), ConfigError> {
        let map: BTreeMap<String, String> = values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let defaults: BTreeMap<&str, &str> =
            crate::config::BROKER_DEFAULTS.iter().copied().collect();
        let get = |k: &str| {
            map.get(k)
                .cloned()
                .or_else(|| defaults.get(k).map(|v| v.to_string()))
                .unwrap_or_default()
        };
        let explicit = |k: &str| map.get(k).cloned();
        parse_listeners(&get, &explicit).map(|(l, inter, _)| (l, inter))
    }

    #[test]
    fn several_listeners_with_their_protocols_and_advertised_addresses() {
        let (ls, inter) = parse(&[
            (
                "listeners",
                "PLAINTEXT://0.0.0.0:9092,SSL://:9093,INTERNAL://127.0.0.1:9094",
            ),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,SSL:SSL,INTERNAL:SASL_PLAINTEXT",
            ),
            ("ssl.keystore.location", "/k.pem"),
            ("listener.name.ssl.ssl.client.auth", "required"),
            ("ssl.truststore.location", "/ca.pem"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required user_x=\"y\";",
            ),
        ])
        .unwrap();
        assert_eq!(inter, "PLAINTEXT");
        let names: Vec<(&str, SecurityProtocol)> =
            ls.iter().map(|l| (l.name.as_str(), l.protocol)).collect();
        assert_eq!(
            names,
            [
                ("PLAINTEXT", SecurityProtocol::Plaintext),
                ("SSL", SecurityProtocol::Ssl),
                ("INTERNAL", SecurityProtocol::SaslPlaintext)
            ]
        );
        assert_eq!(ls[0].advertised.as_ref().unwrap().host, "127.0.0.1");
        assert_eq!(ls[1].bind.host, "");
        let tls = ls[1].tls.as_ref().unwrap();
        assert_eq!(tls.client_auth, ClientAuth::Required);
        assert_eq!(tls.keystore, PemSource::File("/k.pem".into()));
        assert!(ls[2].tls.is_none());
    }

    #[test]
    fn bad_listener_settings_name_the_key() {
        let e = parse(&[("listeners", "PLAINTEXT://a:1,PLAINTEXT://b:2")]).unwrap_err();
        assert!(e.to_string().contains("repeated"), "{e}");
        let e = parse(&[("listeners", "FOO://a:1")]).unwrap_err();
        assert!(
            e.to_string()
                .contains("No security protocol defined for listener FOO"),
            "{e}"
        );
        let e = parse(&[("listeners", "SSL://a:1")]).unwrap_err();
        assert!(e.to_string().contains("ssl.keystore.location"), "{e}");
        let e = parse(&[
            ("listeners", "SSL://a:1"),
            ("ssl.keystore.location", "/k"),
            ("ssl.keystore.type", "JKS"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("PEM only"), "{e}");
        let e = parse(&[
            ("listeners", "SSL://a:1"),
            ("ssl.keystore.location", "/k"),
            ("ssl.enabled.protocols", "TLSv1.1"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("TLSv1.1"), "{e}");
        let e = parse(&[
            ("listeners", "PLAINTEXT://a:1"),
            ("advertised.listeners", "OTHER://b:1"),
        ])
        .unwrap_err();
        assert!(
            e.to_string().contains("must be one of the listeners"),
            "{e}"
        );
        let e = parse(&[
            ("listeners", "PLAINTEXT://a:1,SSL://a:2"),
            ("ssl.keystore.location", "/k"),
            ("inter.broker.listener.name", "NOPE"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("inter.broker.listener.name"), "{e}");
        // A secret never shows in an error.
        let e = parse(&[
            ("listeners", "SSL://a:1"),
            ("ssl.keystore.location", "/k"),
            ("ssl.key.password", "hunter2"),
        ])
        .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
