//! The tools' `--command-config`: Kafka's client keys for TLS (`security.protocol=SSL` or
//! `SASL_SSL`, a PEM truststore, a PEM keystore for mutual TLS) and SASL (`sasl.mechanism`
//! PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with the user and password of `sasl.jaas.config`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use strata_broker::config::sasl::parse_jaas;
use strata_broker::security::sasl_client::{self, SaslExchange};
use tokio::net::TcpStream;

use super::Client;

#[derive(Debug, Default)]
pub struct ClientSecurity {
    pub tls: Option<TlsClient>,
    pub sasl: Option<SaslClient>,
}

pub struct TlsClient {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient").finish_non_exhaustive()
    }
}

pub struct SaslClient {
    mechanism: String,
    user: String,
    password: String,
}

impl std::fmt::Debug for SaslClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslClient")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A PEM given as a file (`<key>.location`) or inline (`inline_key`).
fn pem(
    props: &BTreeMap<String, String>,
    location: &str,
    inline_key: &str,
) -> Result<Option<Vec<u8>>> {
    if let Some(path) = props.get(location).filter(|v| !v.is_empty()) {
        return std::fs::read(path)
            .map(Some)
            .with_context(|| format!("cannot read {location}={path}"));
    }
    Ok(props
        .get(inline_key)
        .filter(|v| !v.is_empty())
        .map(|v| v.as_bytes().to_vec()))
}

impl ClientSecurity {
    pub fn load(path: &Path) -> Result<ClientSecurity> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let props: BTreeMap<String, String> = java_properties::read(&bytes[..])
            .with_context(|| format!("cannot parse {}", path.display()))?
            .into_iter()
            .collect();
        ClientSecurity::from_properties(&props)
    }

    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<ClientSecurity> {
        let protocol = props
            .get("security.protocol")
            .map(|p| p.to_ascii_uppercase())
            .unwrap_or_else(|| "PLAINTEXT".to_string());
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => {
                bail!("security.protocol={other} is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
            }
        };
        Ok(ClientSecurity {
            tls: tls.then(|| TlsClient::from_properties(props)).transpose()?,
            sasl: sasl
                .then(|| SaslClient::from_properties(props))
                .transpose()?,
        })
    }
}

impl TlsClient {
    fn from_properties(props: &BTreeMap<String, String>) -> Result<TlsClient> {
        for key in ["ssl.truststore.type", "ssl.keystore.type"] {
            if let Some(t) = props.get(key).filter(|t| !t.eq_ignore_ascii_case("PEM")) {
                bail!("{key}={t}: the tools read PEM stores only");
            }
        }
        let roots_pem = pem(
            props,
            "ssl.truststore.location",
            "ssl.truststore.certificates",
        )?
        .context("TLS needs ssl.truststore.location (a PEM file of CA certificates)")?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&roots_pem) {
            roots
                .add(cert.context("cannot read the truststore's certificates")?)
                .context("cannot use a truststore certificate")?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let config = match pem(props, "ssl.keystore.location", "ssl.keystore.key")? {
            None => builder.with_no_client_auth(),
            Some(key_pem) => {
                let chain_pem = pem(props, "", "ssl.keystore.certificate.chain")?
                    .unwrap_or_else(|| key_pem.clone());
                let chain: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(&chain_pem)
                        .collect::<Result<_, _>>()
                        .context("cannot read the keystore's certificate chain")?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem)
                    .context("cannot read the keystore's private key")?;
                builder.with_client_auth_cert(chain, key)?
            }
        };
        Ok(TlsClient {
            config: Arc::new(config),
        })
    }

    pub async fn connect(
        &self,
        tcp: TcpStream,
        host: &str,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_string())
            .with_context(|| format!("{host} is not a host name or address"))?;
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS handshake with {host} failed"))
    }
}

impl SaslClient {
    fn from_properties(props: &BTreeMap<String, String>) -> Result<SaslClient> {
        let mechanism = props
            .get("sasl.mechanism")
            .map(|m| m.to_ascii_uppercase())
            .unwrap_or_else(|| "GSSAPI".to_string());
        if !sasl_client::supported(&mechanism) {
            bail!("sasl.mechanism={mechanism}: the tools speak PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512");
        }
        let jaas = props
            .get("sasl.jaas.config")
            .context("SASL needs sasl.jaas.config with username and password")?;
        let (_, options) =
            parse_jaas(jaas).map_err(|e| anyhow::anyhow!("sasl.jaas.config: {e}"))?;
        let (Some(user), Some(password)) = (options.get("username"), options.get("password"))
        else {
            bail!("sasl.jaas.config needs username=\"...\" and password=\"...\"");
        };
        Ok(SaslClient {
            mechanism,
            user: user.clone(),
            password: password.clone(),
        })
    }

    pub async fn authenticate(&self, client: &mut Client) -> Result<()> {
        sasl_client::authenticate(client, &self.mechanism, &self.user, &self.password)
            .await
            .map_err(|e| anyhow::anyhow!(e))
    }
}

/// The tools' connection carries SASL's requests at the versions it negotiated.
impl SaslExchange for Client {
    async fn handshake(&mut self, mechanism: &str) -> std::io::Result<(i16, Vec<String>)> {
        let response = self
            .send(
                SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_string(mechanism.into())),
            )
            .await
            .map_err(std::io::Error::other)?;
        Ok((
            response.error_code,
            response.mechanisms.iter().map(|m| m.to_string()).collect(),
        ))
    }

    async fn token(
        &mut self,
        bytes: Vec<u8>,
    ) -> std::io::Result<Result<Bytes, (i16, Option<String>)>> {
        let response = self
            .send(SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes)))
            .await
            .map_err(|e| {
                std::io::Error::other(format!(
                    "the broker closed the connection during SASL authentication: {e}"
                ))
            })?;
        Ok(match response.error_code {
            0 => Ok(response.auth_bytes),
            code => Err((code, response.error_message.map(|m| m.to_string()))),
        })
    }
}
