//! TLS termination: the rustls server configurations (ring, the provider kube uses), one per
//! certificate of the published store, and per-connection facts the proxy needs.

pub mod certs;
pub mod client;
pub mod upstream;

use certs::CertEntry;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

/// The one crypto provider used throughout.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The lowest TLS version accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MinVersion {
    #[value(name = "1.2")]
    Tls12,
    #[value(name = "1.3")]
    Tls13,
}

/// The rustls settings every handshake shares (versions, ALPN `h2` and `http/1.1`, session
/// tickets), and one configuration per certificate built from them when first used. The
/// listener reads the ClientHello, picks the certificate once, and hands the handshake the
/// configuration of that certificate: a rotated Secret is used by the next handshake, open
/// connections keep theirs. rustls never renegotiates.
#[derive(Clone)]
pub struct Terminator {
    base: Arc<ServerConfig>,
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
}

impl std::fmt::Debug for Terminator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Terminator")
    }
}

/// Serves the one certificate a configuration was made for.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl Terminator {
    /// TLS 1.2 (unless `min` is 1.3) and 1.3.
    pub fn new(min: MinVersion) -> Result<Terminator, rustls::Error> {
        let versions: &[&rustls::SupportedProtocolVersion] = match min {
            MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            MinVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let none = rustls::server::ResolvesServerCertUsingSni::new();
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(none));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config.ticketer = rustls::crypto::ring::Ticketer::new()?;
        Ok(Terminator {
            base: Arc::new(config),
            versions: versions.to_vec(),
        })
    }

    /// The configuration serving `entry` to a host that asks for client certificates.
    pub fn config_with_client_auth(
        &self,
        entry: &Arc<CertEntry>,
        ca: &client::ClientCa,
    ) -> Option<Arc<ServerConfig>> {
        ca.config_for(entry, |verifier| {
            let mut config = ServerConfig::builder_with_provider(provider())
                .with_protocol_versions(&self.versions)
                .ok()?
                .with_client_cert_verifier(verifier)
                .with_cert_resolver(Arc::new(Fixed(entry.key.clone())));
            config.alpn_protocols = self.base.alpn_protocols.clone();
            config.ticketer = self.base.ticketer.clone();
            config.session_storage = self.base.session_storage.clone();
            Some(Arc::new(config))
        })
    }

    /// The configuration serving `entry`, made once per certificate. Clones share the
    /// session cache and ticketer, so resumption works across certificates.
    pub fn config_for(&self, entry: &CertEntry) -> Arc<ServerConfig> {
        entry
            .server_config
            .get_or_init(|| {
                let mut config = (*self.base).clone();
                config.cert_resolver = Arc::new(Fixed(entry.key.clone()));
                Arc::new(config)
            })
            .clone()
    }
}

/// What the proxy knows about a TLS connection once the handshake is done.
#[derive(Debug)]
pub struct TlsConnection {
    /// The SNI the client sent, lower-case.
    pub sni: Option<String>,
    /// The certificate it was given.
    pub cert: Option<Arc<CertEntry>>,
    /// What the client showed, when its SNI host asks for a client certificate.
    pub client_cert: Option<client::ClientCertInfo>,
}

impl TlsConnection {
    /// HTTP/2 lets a client reuse this connection for another host; that is only right when
    /// the certificate chosen for the SNI also covers it. `false` means answer 421
    /// Misdirected Request. Without SNI no host chose the certificate, so any host may ask.
    pub fn may_serve(&self, host: &str) -> bool {
        match &self.sni {
            None => true,
            Some(sni) => sni == host || self.cert.as_ref().is_some_and(|c| c.covers(host)),
        }
    }
}
