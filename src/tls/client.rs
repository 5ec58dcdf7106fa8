//! Client certificates (`auth-tls-secret`): which SNI names ask for one, the CA that checks
//! it, and what the client showed. The handshake asks without insisting, so that a missing or
//! bad certificate gets nginx's HTTP 400 (or the error page) rather than a TLS alert; the
//! proof of possession (the handshake signature) is always checked by rustls, the chain is
//! checked here after the handshake and the route's rule decides.

use crate::model::access::PresentedCert;
use crate::model::host::{HostRule, RequestHost, wildcard_suffix};
use crate::model::{ClientAuthBinding, Diagnostic, ObjectRef};
use rustc_hash::FxHashMap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use std::sync::{Arc, Mutex};

use super::certs::CertEntry;

/// Server configurations kept per CA (one per certificate it was served with).
const MAX_CONFIGS: usize = 256;

/// One CA that checks the certificates of some hosts.
pub struct ClientCa {
    /// The strict verifier made from `ca.crt`: checks chains after the handshake.
    strict: Arc<dyn ClientCertVerifier>,
    /// What handshakes use: asks for a certificate, checks its signature, admits the chain.
    lenient: Arc<dyn ClientCertVerifier>,
    verify_chain: bool,
    pub secret: ObjectRef,
    configs: Mutex<FxHashMap<usize, Served>>,
}

/// A certificate and the configuration serving it with a CA's verifier.
type Served = (Arc<CertEntry>, Arc<ServerConfig>);

impl std::fmt::Debug for ClientCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCa")
            .field("secret", &self.secret)
            .finish()
    }
}

/// What the client of one TLS connection showed.
#[derive(Debug, Clone)]
pub struct ClientCertInfo {
    pub presented: PresentedCert,
    /// nginx's `$ssl_client_s_dn` and `$ssl_client_i_dn`.
    pub subject: String,
    pub issuer: String,
    /// nginx's `$ssl_client_escaped_cert`: the PEM, URL-encoded.
    pub escaped_pem: String,
}

impl ClientCa {
    /// The configuration serving `cert` to hosts of this CA, made by `make` with the
    /// verifier handshakes use, once per certificate.
    pub fn config_for(
        &self,
        cert: &Arc<CertEntry>,
        make: impl FnOnce(Arc<dyn ClientCertVerifier>) -> Option<Arc<ServerConfig>>,
    ) -> Option<Arc<ServerConfig>> {
        let key = Arc::as_ptr(cert) as usize;
        let mut configs = self.configs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, config)) = configs.get(&key) {
            return Some(config.clone());
        }
        if configs.len() >= MAX_CONFIGS {
            configs.clear();
        }
        let config = make(self.lenient.clone())?;
        // The entry is kept with its configuration, so its address is not reused meanwhile.
        configs.insert(key, (cert.clone(), config.clone()));
        Some(config)
    }

    /// What the client's chain (its own certificate first) amounts to.
    pub fn classify(&self, chain: Option<&[CertificateDer<'_>]>) -> ClientCertInfo {
        let Some((leaf, intermediates)) = chain.and_then(|c| c.split_first()) else {
            return ClientCertInfo {
                presented: PresentedCert::Missing,
                subject: String::new(),
                issuer: String::new(),
                escaped_pem: String::new(),
            };
        };
        let presented = match self.verify_chain {
            false => PresentedCert::Unchecked,
            true => match self
                .strict
                .verify_client_cert(leaf, intermediates, UnixTime::now())
            {
                Ok(_) => PresentedCert::Verified {
                    chain: 1 + intermediates.len(),
                },
                Err(e) => PresentedCert::Failed(e.to_string()),
            },
        };
        let (subject, issuer) = match x509_parser::parse_x509_certificate(leaf.as_ref()) {
            Ok((_, c)) => (c.subject().to_string(), c.issuer().to_string()),
            Err(_) => (String::new(), String::new()),
        };
        ClientCertInfo {
            presented,
            subject,
            issuer,
            escaped_pem: escaped_pem(leaf),
        }
    }
}

fn escaped_pem(der: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    crate::model::access::escape(&pem)
}

/// Asks for a certificate without insisting; checks the handshake signature with the strict
/// verifier's algorithms; leaves the chain to [`ClientCa::classify`].
#[derive(Debug)]
struct AskWithoutInsisting(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for AskWithoutInsisting {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
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

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The hosts that ask for client certificates: exact, then one-label wildcard.
#[derive(Debug, Default)]
pub struct ClientAuthStore {
    exact: FxHashMap<Box<str>, Arc<ClientCa>>,
    wildcard: FxHashMap<Box<str>, Arc<ClientCa>>,
}

impl ClientAuthStore {
    /// The CA for a ClientHello's SNI, if that host asks for client certificates.
    pub fn resolve(&self, sni: Option<&str>) -> Option<&Arc<ClientCa>> {
        if self.exact.is_empty() && self.wildcard.is_empty() {
            return None;
        }
        let host = RequestHost::parse(sni?)?;
        let h = host.as_str();
        self.exact
            .get(h)
            .or_else(|| wildcard_suffix(h).and_then(|s| self.wildcard.get(s)))
    }
}

/// Builds the verifiers of `bindings`; a CA rustls refuses is a diagnostic, and its hosts ask
/// for nothing (their routes then refuse every request that needs a certificate).
pub fn build_store(
    provider: &Arc<CryptoProvider>,
    bindings: &[ClientAuthBinding],
) -> (ClientAuthStore, Vec<Diagnostic>) {
    let mut store = ClientAuthStore::default();
    let mut diagnostics = Vec::new();
    let mut made: FxHashMap<(ObjectRef, bool), Arc<ClientCa>> = FxHashMap::default();
    for b in bindings {
        let key = (b.secret.clone(), b.verify_chain);
        let ca = match made.get(&key) {
            Some(ca) => ca.clone(),
            None => match client_ca(provider, b) {
                Ok(ca) => {
                    made.insert(key, ca.clone());
                    ca
                }
                Err(reason) => {
                    diagnostics.push(Diagnostic::error(
                        b.secret.clone(),
                        "data[ca.crt]",
                        format!("{reason}; client certificates for {} are refused", b.host),
                    ));
                    continue;
                }
            },
        };
        match &b.host {
            HostRule::Exact(h) => store.exact.insert(h.as_str().into(), ca),
            HostRule::Wildcard(s) => store.wildcard.insert(s.as_str().into(), ca),
            HostRule::Any => None,
        };
    }
    (store, diagnostics)
}

fn client_ca(
    provider: &Arc<CryptoProvider>,
    b: &ClientAuthBinding,
) -> Result<Arc<ClientCa>, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&b.ca_pem) {
        let cert = cert.map_err(|e| format!("not PEM certificates: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    let strict = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("not a usable CA: {e}"))?;
    Ok(Arc::new(ClientCa {
        lenient: Arc::new(AskWithoutInsisting(strict.clone())),
        strict,
        verify_chain: b.verify_chain,
        secret: b.secret.clone(),
        configs: Mutex::new(FxHashMap::default()),
    }))
}
