//! TLS for SSL and SASL_SSL listeners, with rustls: the server's key and certificate chain from
//! PEM (re-read when the file changes, so a renewed certificate needs no restart), client
//! certificates checked against the truststore (`ssl.client.auth`), and the client's principal
//! taken from its certificate's subject, as Kafka's DEFAULT `ssl.principal.mapping.rules` does.
//! The client side (`connector`) is a broker's, connecting to another's inter-broker listener.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::listeners::{ClientAuth, PemSource, TlsSettings};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_source(source: &PemSource) -> io::Result<Vec<u8>> {
    match source {
        PemSource::File(path) => std::fs::read(path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display()))),
        PemSource::Inline(text) => Ok(text.as_bytes().to_vec()),
    }
}

fn certificates(pem: &[u8], what: &str) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| io::Error::other(format!("{what}: {e}")))?;
    if certs.is_empty() {
        return Err(io::Error::other(format!("{what}: no certificate found")));
    }
    Ok(certs)
}

/// The certificate chain and private key of the listener's keystore: one PEM (key and
/// certificates), or the inline key and chain.
fn read_keystore(
    settings: &TlsSettings,
) -> io::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let key_pem = read_source(&settings.keystore)?;
    let chain_pem = match &settings.inline_chain {
        Some(chain) => chain.as_bytes().to_vec(),
        None => key_pem.clone(),
    };
    let chain = certificates(&chain_pem, "ssl.keystore certificate chain")?;
    // The error of a key that does not parse names no part of it.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        io::Error::other("ssl.keystore: no readable private key (PKCS#8, PKCS#1 or SEC1 PEM)")
    })?;
    Ok((chain, key))
}

/// The protocol versions of `ssl.enabled.protocols`.
fn versions(settings: &TlsSettings) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if settings.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if settings.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    versions
}

/// The key and chain of the listener, ready to sign.
fn load_key(settings: &TlsSettings, provider: &CryptoProvider) -> io::Result<Arc<CertifiedKey>> {
    let (chain, key) = read_keystore(settings)?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| io::Error::other(format!("ssl.keystore private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| io::Error::other(format!("ssl.keystore: {e}")))?;
    Ok(Arc::new(certified))
}

/// The server certificate, re-read from its file when the file's modification time changes
/// (looked at no more than once a second, on a new connection).
struct ReloadingKey {
    settings: TlsSettings,
    provider: Arc<CryptoProvider>,
    state: Mutex<KeyState>,
}

struct KeyState {
    key: Arc<CertifiedKey>,
    modified: Option<SystemTime>,
    checked: Instant,
}

impl std::fmt::Debug for ReloadingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingKey").finish_non_exhaustive()
    }
}

fn modified(settings: &TlsSettings) -> Option<SystemTime> {
    match &settings.keystore {
        PemSource::File(path) => std::fs::metadata(path).and_then(|m| m.modified()).ok(),
        PemSource::Inline(_) => None,
    }
}

impl ReloadingKey {
    fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.checked.elapsed() >= Duration::from_secs(1) {
            state.checked = Instant::now();
            let now = modified(&self.settings);
            if now != state.modified {
                match load_key(&self.settings, &self.provider) {
                    Ok(key) => {
                        tracing::info!(keystore = %keystore_name(&self.settings), "TLS certificate reloaded");
                        state.key = key;
                        state.modified = now;
                    }
                    // A file caught half-written: the old key serves until a good one is read.
                    Err(e) => tracing::warn!(error = %e, "TLS certificate not reloaded"),
                }
            }
        }
        state.key.clone()
    }
}

fn keystore_name(settings: &TlsSettings) -> String {
    match &settings.keystore {
        PemSource::File(p) => p.display().to_string(),
        PemSource::Inline(_) => "(inline)".to_string(),
    }
}

impl ResolvesServerCert for ReloadingKey {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The acceptor of a TLS listener; an error names what could not be read.
pub fn acceptor(settings: &TlsSettings) -> io::Result<TlsAcceptor> {
    let provider = provider();
    let key = load_key(settings, &provider)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(settings))
        .map_err(|e| io::Error::other(format!("ssl.enabled.protocols: {e}")))?;
    let builder = match (&settings.truststore, settings.client_auth) {
        (Some(trust), auth) if auth != ClientAuth::None => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(&read_source(trust)?, "ssl.truststore")? {
                roots
                    .add(cert)
                    .map_err(|e| io::Error::other(format!("ssl.truststore: {e}")))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| io::Error::other(format!("ssl.truststore: {e}")))?,
            )
        }
        _ => builder.with_no_client_auth(),
    };
    let config = builder.with_cert_resolver(Arc::new(ReloadingKey {
        settings: settings.clone(),
        provider,
        state: Mutex::new(KeyState {
            key,
            modified: modified(settings),
            checked: Instant::now(),
        }),
    }));
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A broker's TLS client for another broker's listener: the other's certificate checked
/// against the truststore (and, with `verify_hostname`, for the host it advertises), this
/// broker's keystore shown when the other asks for a certificate.
pub fn connector(settings: &TlsSettings, verify_hostname: bool) -> io::Result<TlsConnector> {
    let provider = provider();
    let trust = settings
        .truststore
        .as_ref()
        .ok_or_else(|| io::Error::other("ssl.truststore: not set"))?;
    let mut roots = RootCertStore::empty();
    for cert in certificates(&read_source(trust)?, "ssl.truststore")? {
        roots
            .add(cert)
            .map_err(|e| io::Error::other(format!("ssl.truststore: {e}")))?;
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| io::Error::other(format!("ssl.truststore: {e}")))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions(settings))
        .map_err(|e| io::Error::other(format!("ssl.enabled.protocols: {e}")))?;
    let builder = if verify_hostname {
        builder.with_webpki_verifier(verifier)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyHostName(verifier)))
    };
    let (chain, key) = read_keystore(settings)?;
    let config = builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| io::Error::other(format!("ssl.keystore: {e}")))?;
    Ok(TlsConnector::from(Arc::new(config)))
}

/// `ssl.endpoint.identification.algorithm=` (empty): the certificate is checked against the
/// truststore, but not for the host name.
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Kafka's principal of a client certificate under the DEFAULT mapping rule: the subject's
/// distinguished name as RFC 2253 writes it (`CN=alice,OU=eng,O=corp`: most specific first,
/// no spaces, special characters escaped).
pub fn subject_principal(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::prelude::*;
    let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
    let mut rdns = Vec::new();
    for rdn in parsed.subject().iter() {
        let mut parts = Vec::new();
        for attr in rdn.iter() {
            let oid = attr.attr_type();
            let name = match oid.to_id_string().as_str() {
                "2.5.4.3" => "CN".to_string(),
                "2.5.4.11" => "OU".to_string(),
                "2.5.4.10" => "O".to_string(),
                "2.5.4.7" => "L".to_string(),
                "2.5.4.8" => "ST".to_string(),
                "2.5.4.6" => "C".to_string(),
                "2.5.4.9" => "STREET".to_string(),
                "0.9.2342.19200300.100.1.25" => "DC".to_string(),
                "0.9.2342.19200300.100.1.1" => "UID".to_string(),
                other => other.to_string(),
            };
            let value = attr.as_str().ok()?;
            parts.push(format!("{name}={}", escape_rfc2253(value)));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
