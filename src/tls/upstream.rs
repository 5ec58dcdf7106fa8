//! TLS to pods (`backend-protocol: HTTPS` / `GRPCS`): the rustls client configuration a route's
//! `proxy-ssl-*` settings make. Without `proxy-ssl-verify` any certificate is taken, as
//! ingress-nginx (nginx's `proxy_ssl_verify off`); with it, the pod's certificate must chain to
//! `proxy-ssl-secret`'s CA and match the name.

use crate::model::policy::UpstreamTls;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// The client configuration for `spec`.
pub fn client_config(spec: &UpstreamTls) -> Result<Arc<ClientConfig>, String> {
    let provider = super::provider();
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if spec.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if spec.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let verifier: Arc<dyn ServerCertVerifier> = match (&spec.ca, spec.verify) {
        (Some(ca), true) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca) {
                let cert = cert.map_err(|e| format!("ca.crt: {e}"))?;
                roots.add(cert).map_err(|e| format!("ca.crt: {e}"))?;
            }
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("ca.crt: {e}"))?;
            Arc::new(Depth {
                inner: webpki,
                depth: spec.depth,
            })
        }
        _ => Arc::new(TakeAny(provider)),
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &spec.client {
        Some((crt, key)) => {
            let chain = CertificateDer::pem_slice_iter(crt)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("tls.crt: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("tls.key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls.crt/tls.key: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = match spec.h2 {
        true => vec![b"h2".to_vec()],
        false => vec![b"http/1.1".to_vec()],
    };
    config.enable_sni = spec.sni;
    Ok(Arc::new(config))
}

/// The name a connection verifies (and sends as SNI): `proxy-ssl-name`, else the request's
/// host without its port.
pub fn server_name(spec: &UpstreamTls, host: Option<&str>) -> Option<ServerName<'static>> {
    let name = match &spec.name {
        Some(n) => n.clone(),
        None => {
            let host = host?;
            crate::model::host::RequestHost::parse(host)?
                .as_str()
                .to_owned()
        }
    };
    ServerName::try_from(name).ok()
}

/// `proxy-ssl-verify-depth`: at most `depth - 1` intermediates besides the pod's certificate
/// (nginx's depth 1: signed by the CA itself), then the WebPKI check.
#[derive(Debug)]
struct Depth {
    inner: Arc<WebPkiServerVerifier>,
    depth: u8,
}

impl ServerCertVerifier for Depth {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if intermediates.len() >= usize::from(self.depth) {
            return Err(rustls::Error::General(format!(
                "the pod's certificate chain is deeper than proxy-ssl-verify-depth {}",
                self.depth
            )));
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `proxy-ssl-verify off`: any certificate, but the handshake signatures still checked.
#[derive(Debug)]
struct TakeAny(Arc<CryptoProvider>);

impl ServerCertVerifier for TakeAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    fn ca_params() -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p
    }

    // proxyssl.go's proxy-ssl-verify-depth: depth 1 takes a certificate the CA signed, not one
    // an intermediate signed; depth 2 takes both.
    #[test]
    fn the_depth_bounds_the_pods_chain() {
        let root_key = KeyPair::generate().unwrap();
        let root = ca_params().self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(ca_params(), root_key);
        let mid_key = KeyPair::generate().unwrap();
        let mid = ca_params().signed_by(&mid_key, &root_issuer).unwrap();
        let mid_issuer = Issuer::new(ca_params(), mid_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["pod.test".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &mid_issuer)
            .unwrap();
        let direct_key = KeyPair::generate().unwrap();
        let direct = CertificateParams::new(vec!["pod.test".to_owned()])
            .unwrap()
            .signed_by(&direct_key, &root_issuer)
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(root.der().clone()).unwrap();
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), super::super::provider())
                .build()
                .unwrap();
        let name = ServerName::try_from("pod.test").unwrap();
        let verify = |depth: u8, leaf: &rcgen::Certificate, chain: &[CertificateDer<'_>]| {
            Depth {
                inner: webpki.clone(),
                depth,
            }
            .verify_server_cert(leaf.der(), chain, &name, &[], UnixTime::now())
            .is_ok()
        };
        assert!(verify(1, &direct, &[]));
        assert!(!verify(1, &leaf, &[mid.der().clone()]));
        assert!(verify(2, &leaf, &[mid.der().clone()]));
    }
}
