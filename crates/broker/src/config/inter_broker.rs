//! How a broker of a cluster connects to the others (followers to leaders, the transaction
//! coordinator to partition leaders): over the inter-broker listener (`inter.broker.listener.name`)
//! with its security protocol, as Kafka does. TLS uses that listener's `ssl.*` settings (its
//! truststore checks the other broker's certificate, its keystore is the certificate this broker
//! shows when asked); SASL uses `sasl.mechanism.inter.broker.protocol` and the username and
//! password of that mechanism's JAAS line on the listener
//! (`listener.name.<name>.<mechanism>.sasl.jaas.config`, else `sasl.jaas.config`).

use super::listeners::{listener_value, ListenerConfig, SecurityProtocol, TlsSettings};
use super::sasl::parse_jaas;
use super::{invalid, ConfigError};

/// The client side of the inter-broker listener.
#[derive(Debug, Clone, PartialEq)]
pub struct InterBrokerClient {
    pub protocol: SecurityProtocol,
    /// The listener's TLS settings (its truststore is set).
    pub tls: Option<TlsSettings>,
    /// `ssl.endpoint.identification.algorithm`: `https` checks that the other broker's
    /// certificate names the host it advertises; empty does not.
    pub verify_hostname: bool,
    pub sasl: Option<SaslCredentials>,
}

/// A SASL client's mechanism and credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    pub mechanism: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslCredentials {
    // The password is a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslCredentials")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The mechanisms a broker can authenticate to another with.
const CLIENT_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// The client side of `listener` (the inter-broker listener).
pub fn parse_inter_broker(
    listener: &ListenerConfig,
    get: &dyn Fn(&str) -> String,
    explicit: &dyn Fn(&str) -> Option<String>,
) -> Result<InterBrokerClient, ConfigError> {
    let name = &listener.name;
    let tls = match &listener.tls {
        Some(tls) if tls.truststore.is_none() => {
            return Err(ConfigError::Missing(format!(
                "ssl.truststore.location (brokers connect to each other over the TLS listener {name} and check each other's certificates against it)"
            )))
        }
        other => other.clone(),
    };
    let (algorithm_key, algorithm) =
        listener_value(name, "ssl.endpoint.identification.algorithm", get, explicit);
    let verify_hostname = match algorithm.trim().to_ascii_lowercase().as_str() {
        "https" => true,
        "" => false,
        _ => {
            return Err(invalid(
                &algorithm_key,
                &algorithm,
                "Expected https or empty",
            ))
        }
    };
    let sasl = match &listener.sasl {
        None => None,
        Some(settings) => {
            let key = "sasl.mechanism.inter.broker.protocol";
            let raw = get(key);
            let mechanism = raw.trim().to_ascii_uppercase();
            if !CLIENT_MECHANISMS.contains(&mechanism.as_str()) {
                return Err(invalid(
                    key,
                    &raw,
                    format!(
                        "brokers authenticate to each other with {} (the inter-broker listener {name} is {})",
                        CLIENT_MECHANISMS.join(", "),
                        listener.protocol.name()
                    ),
                ));
            }
            if !settings.mechanisms.contains(&mechanism) {
                return Err(invalid(
                    key,
                    &raw,
                    format!("sasl.mechanism.inter.broker.protocol must be included in sasl.enabled.mechanisms of listener {name} when SASL is used for inter-broker communication"),
                ));
            }
            let prefixed = format!(
                "listener.name.{}.{}.sasl.jaas.config",
                name.to_ascii_lowercase(),
                mechanism.to_ascii_lowercase()
            );
            let (jaas_key, jaas) = match explicit(&prefixed) {
                Some(v) => (prefixed, v),
                None => ("sasl.jaas.config".to_string(), get("sasl.jaas.config")),
            };
            let (_, options) =
                parse_jaas(&jaas).map_err(|reason| invalid(&jaas_key, "[hidden]", reason))?;
            let (Some(username), Some(password)) =
                (options.get("username"), options.get("password"))
            else {
                return Err(invalid(
                    &jaas_key,
                    "[hidden]",
                    format!("the JAAS line needs username and password: this broker authenticates with them to the others over {name}"),
                ));
            };
            Some(SaslCredentials {
                mechanism,
                username: username.clone(),
                password: password.clone(),
            })
        }
    };
    Ok(InterBrokerClient {
        protocol: listener.protocol,
        tls,
        verify_hostname,
        sasl,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::{BrokerConfig, ConfigError};

    fn node(extra: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
        let mut map: BTreeMap<String, String> = [
            ("process.roles", "broker,controller"),
            ("node.id", "1"),
            ("controller.quorum.voters", "1@127.0.0.1:9093"),
            ("controller.listener.names", "CONTROLLER"),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9092,INTERNAL://127.0.0.1:9094,CONTROLLER://127.0.0.1:9093",
            ),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_SSL,CONTROLLER:PLAINTEXT",
            ),
            ("inter.broker.listener.name", "INTERNAL"),
            ("ssl.keystore.location", "/etc/strata/server.pem"),
            ("ssl.truststore.location", "/etc/strata/ca.pem"),
            ("sasl.mechanism.inter.broker.protocol", "PLAIN"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required \
                 username=\"broker\" password=\"broker-secret\" user_broker=\"broker-secret\";",
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            map.insert(k.to_string(), v.to_string());
        }
        BrokerConfig::from_map(map)
    }

    #[test]
    fn the_inter_broker_client_takes_the_listeners_tls_and_the_brokers_own_credentials() {
        let config = node(&[]).unwrap();
        let client = config.inter_broker_client.unwrap();
        assert!(client.tls.is_some() && client.verify_hostname);
        let sasl = client.sasl.unwrap();
        assert_eq!(
            (sasl.mechanism.as_str(), sasl.username.as_str()),
            ("PLAIN", "broker")
        );
        assert_eq!(sasl.password, "broker-secret");
        // The password is never printed.
        assert!(!format!("{sasl:?}").contains("broker-secret"));
        let lax = node(&[("ssl.endpoint.identification.algorithm", "")]).unwrap();
        assert!(!lax.inter_broker_client.unwrap().verify_hostname);
    }

    #[test]
    fn what_a_broker_cannot_connect_with_is_refused_at_start() {
        let refusals = [
            // Kafka's default, which Strata does not offer.
            (vec![("sasl.mechanism.inter.broker.protocol", "GSSAPI")], "brokers authenticate to each other with"),
            (vec![("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512")], "must be included in sasl.enabled.mechanisms"),
            (vec![("ssl.truststore.location", "")], "ssl.truststore.location"),
            (
                vec![(
                    "sasl.jaas.config",
                    "org.apache.kafka.common.security.plain.PlainLoginModule required user_broker=\"broker-secret\";",
                )],
                "needs username and password",
            ),
            (vec![("ssl.endpoint.identification.algorithm", "dns")], "Expected https or empty"),
        ];
        for (extra, expected) in refusals {
            let refused = node(&extra).expect_err(expected).to_string();
            assert!(refused.contains(expected), "{expected}: {refused}");
            assert!(!refused.contains("broker-secret"), "{refused}");
        }
        // A broker alone connects to no other: its settings are not asked for.
        let alone = BrokerConfig::from_map(
            [
                ("listeners", "SASL_SSL://127.0.0.1:9094"),
                ("ssl.keystore.location", "/k.pem"),
                (
                    "sasl.jaas.config",
                    "org.apache.kafka.common.security.plain.PlainLoginModule required user_a=\"b\";",
                ),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        assert!(alone.unwrap().inter_broker_client.is_none());
    }
}
