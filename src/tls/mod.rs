//! TLS termination: the rustls server configuration (ring, the provider kube uses), SNI
//! resolution over the published certificate store, and per-connection facts the proxy needs.

pub mod certs;

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

/// The certificate for a handshake's SNI (or for no SNI), chosen from whatever store is in
/// force at that moment.
pub type PickCertificate = dyn Fn(Option<&str>) -> Option<Arc<CertifiedKey>> + Send + Sync;

/// Asks `pick` at each handshake: a rotated Secret is used by the next handshake, open
/// connections keep theirs.
struct Resolver {
    pick: Box<PickCertificate>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        (self.pick)(hello.server_name())
    }
}

/// The server configuration: ALPN `h2` and `http/1.1`, TLS 1.2 (unless `min` is 1.3) and 1.3,
/// certificates from `pick`. rustls never renegotiates.
pub fn server_config(
    pick: Box<PickCertificate>,
    min: MinVersion,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let versions: &[&rustls::SupportedProtocolVersion] = match min {
        MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        MinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver { pick }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(Arc::new(config))
}

/// What the proxy knows about a TLS connection once the handshake is done.
#[derive(Debug)]
pub struct TlsConnection {
    /// The SNI the client sent, lower-case.
    pub sni: Option<String>,
    /// The certificate it was given.
    pub cert: Option<Arc<CertEntry>>,
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
