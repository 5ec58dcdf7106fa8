//! Certificates: parsed from Secret PEM (checked: key matches certificate, validity dates),
//! gathered into the store that SNI resolution reads, plus the generated default certificate.

use crate::model::host::{HostRule, RequestHost, wildcard_suffix};
use crate::model::{Diagnostic, ObjectRef, TlsBinding};
use rustc_hash::FxHashMap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A usable certificate with what we need to know about it.
#[derive(Debug)]
pub struct CertEntry {
    pub key: Arc<CertifiedKey>,
    /// The DNS names it is valid for (SANs, else the subject CN), as host rules.
    pub names: Vec<HostRule>,
    /// End of validity, seconds since the epoch.
    pub not_after: i64,
    /// The Secret it came from; `None` for the generated default.
    pub secret: Option<ObjectRef>,
    /// The rustls configuration serving it, made at its first handshake.
    pub server_config: std::sync::OnceLock<Arc<rustls::ServerConfig>>,
}

impl CertEntry {
    /// Whether the certificate is valid for `host` (a normalised host name).
    pub fn covers(&self, host: &str) -> bool {
        self.names.iter().any(|n| n.matches(host))
    }
}

/// Why a certificate/key pair cannot be used: which key of the Secret, and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemError {
    pub field: &'static str,
    pub reason: String,
}

/// Parses `tls.crt` (leaf first, then chain) and `tls.key` (PKCS#8, PKCS#1 or SEC1; RSA,
/// ECDSA P-256/P-384 or Ed25519) and checks that they belong together.
pub fn parse_pair(
    provider: &CryptoProvider,
    cert_pem: &[u8],
    key_pem: &[u8],
    secret: Option<ObjectRef>,
) -> Result<CertEntry, PemError> {
    let crt = |reason: String| PemError {
        field: "data[tls.crt]",
        reason,
    };
    let key_err = |reason: String| PemError {
        field: "data[tls.key]",
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| crt(format!("not PEM certificates: {e}")))?;
    let leaf = chain
        .first()
        .ok_or_else(|| crt("holds no CERTIFICATE block".to_owned()))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        key_err(format!(
            "no usable private key (PKCS#8, PKCS#1 or SEC1): {e}"
        ))
    })?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| key_err(format!("unsupported private key: {e}")))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| crt(format!("the first certificate does not parse: {e}")))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name
                && let Ok(rule @ (HostRule::Exact(_) | HostRule::Wildcard(_))) =
                    HostRule::parse(Some(dns))
            {
                names.push(rule);
            }
        }
    }
    if names.is_empty() {
        for cn in parsed.subject().iter_common_name() {
            if let Ok(cn) = cn.as_str()
                && let Ok(rule @ (HostRule::Exact(_) | HostRule::Wildcard(_))) =
                    HostRule::parse(Some(cn))
            {
                names.push(rule);
            }
        }
    }
    let not_after = parsed.validity().not_after.timestamp();
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|e| PemError {
        field: "data[tls.key]",
        reason: format!("the key does not match the certificate in tls.crt: {e}"),
    })?;
    Ok(CertEntry {
        key: Arc::new(certified),
        names,
        not_after,
        secret,
        server_config: std::sync::OnceLock::new(),
    })
}

/// A self-signed certificate for clients whose SNI matches no Secret (and clients without SNI).
pub fn generated_default(provider: &CryptoProvider) -> Result<CertEntry, String> {
    let generated =
        rcgen::generate_simple_self_signed(vec!["vestibule-default.invalid".to_owned()])
            .map_err(|e| e.to_string())?;
    let cert = generated.cert.pem();
    let key = generated.signing_key.serialize_pem();
    parse_pair(provider, cert.as_bytes(), key.as_bytes(), None).map_err(|e| e.reason)
}

/// The certificates in force: exact host, then one-label wildcard, then the default.
#[derive(Debug, Default)]
pub struct CertStore {
    exact: FxHashMap<Box<str>, Arc<CertEntry>>,
    wildcard: FxHashMap<Box<str>, Arc<CertEntry>>,
    /// Gateway API listener wildcards, which cover any number of labels: tried after the
    /// one-label ones, longest suffix first.
    deep_wildcard: FxHashMap<Box<str>, Arc<CertEntry>>,
    default: Option<Arc<CertEntry>>,
    /// Each Secret in use and its certificate, for `/debug/routes` and metrics.
    pub by_secret: Vec<(ObjectRef, Arc<CertEntry>)>,
}

impl CertStore {
    /// The certificate for a ClientHello's SNI (`None`: no SNI sent).
    pub fn resolve(&self, sni: Option<&str>) -> Option<&Arc<CertEntry>> {
        let host = sni.and_then(RequestHost::parse);
        let found = host.as_ref().map(|h| h.as_str()).and_then(|h| {
            self.exact
                .get(h)
                .or_else(|| wildcard_suffix(h).and_then(|s| self.wildcard.get(s)))
                .or_else(|| self.deep(h))
        });
        found.or(self.default.as_ref())
    }

    fn deep(&self, mut host: &str) -> Option<&Arc<CertEntry>> {
        if self.deep_wildcard.is_empty() {
            return None;
        }
        while let Some(suffix) = wildcard_suffix(host) {
            if let Some(entry) = self.deep_wildcard.get(suffix) {
                return Some(entry);
            }
            host = suffix;
        }
        None
    }

    /// The default certificate.
    pub fn default_cert(&self) -> Option<&Arc<CertEntry>> {
        self.default.as_ref()
    }
}

/// Parsed certificates of earlier builds, keyed by Secret and content, so that a rebuild
/// only parses Secrets that changed.
#[derive(Debug, Default)]
pub struct CertCache {
    entries: FxHashMap<(ObjectRef, u64), Result<Arc<CertEntry>, PemError>>,
    used: rustc_hash::FxHashSet<(ObjectRef, u64)>,
}

fn content_hash(cert: &[u8], key: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    cert.hash(&mut h);
    key.hash(&mut h);
    h.finish()
}

impl CertCache {
    /// Parses (or finds) the pair of one Secret.
    pub fn get(
        &mut self,
        provider: &CryptoProvider,
        secret: &ObjectRef,
        cert: &[u8],
        key: &[u8],
    ) -> Result<Arc<CertEntry>, PemError> {
        let id = (secret.clone(), content_hash(cert, key));
        self.used.insert(id.clone());
        self.entries
            .entry(id)
            .or_insert_with(|| parse_pair(provider, cert, key, Some(secret.clone())).map(Arc::new))
            .clone()
    }

    /// Forgets every entry not asked for since the last sweep (Secrets deleted or changed).
    pub fn sweep(&mut self) {
        let used = std::mem::take(&mut self.used);
        self.entries.retain(|k, _| used.contains(k));
    }
}

/// Builds the store from the model's TLS bindings. A Secret that cannot be used is a
/// diagnostic and its hosts get the default certificate; an expired one is served and
/// diagnosed. `default` is the certificate for everything else.
pub fn build_store(
    provider: &CryptoProvider,
    bindings: &[TlsBinding],
    default: Arc<CertEntry>,
    cache: &mut CertCache,
) -> (CertStore, Vec<Diagnostic>) {
    let mut store = CertStore {
        default: Some(default),
        ..CertStore::default()
    };
    let mut diagnostics = Vec::new();
    let mut judged: FxHashMap<ObjectRef, Option<Arc<CertEntry>>> = FxHashMap::default();
    let mut replaced_default = false;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    for binding in bindings {
        let entry = judged.entry(binding.secret.clone()).or_insert_with(|| {
            match cache.get(
                provider,
                &binding.secret,
                &binding.cert_pem,
                &binding.key_pem,
            ) {
                Ok(entry) => {
                    if entry.not_after < now {
                        diagnostics.push(Diagnostic {
                            object: binding.secret.clone(),
                            field: "data[tls.crt]".to_owned(),
                            reason: format!(
                                "the certificate expired at {}; it is still served",
                                rfc3339(entry.not_after)
                            ),
                            severity: crate::model::Severity::Error,
                        });
                    }
                    store
                        .by_secret
                        .push((binding.secret.clone(), entry.clone()));
                    Some(entry)
                }
                Err(e) => {
                    diagnostics.push(Diagnostic {
                        object: binding.secret.clone(),
                        field: e.field.to_owned(),
                        reason: format!("{}; its hosts get the default certificate", e.reason),
                        severity: crate::model::Severity::Error,
                    });
                    None
                }
            }
        });
        let Some(entry) = entry.clone() else { continue };
        match &binding.host {
            HostRule::Exact(h) => {
                store.exact.insert(h.as_str().into(), entry);
            }
            HostRule::Wildcard(s) if binding.deep => {
                store.deep_wildcard.insert(s.as_str().into(), entry);
            }
            HostRule::Wildcard(s) => {
                store.wildcard.insert(s.as_str().into(), entry);
            }
            // A Gateway listener without hostname: its certificate stands in for the
            // generated default (never for --default-ssl-certificate).
            HostRule::Any => {
                let generated = store.default.as_ref().is_some_and(|d| d.secret.is_none());
                if generated && !replaced_default {
                    store.default = Some(entry);
                    replaced_default = true;
                }
            }
        }
    }
    (store, diagnostics)
}

/// `2026-11-27T16:39:33Z`.
pub fn rfc3339(seconds: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(seconds)
        .map_or_else(|_| seconds.to_string(), |t| t.to_string())
}
