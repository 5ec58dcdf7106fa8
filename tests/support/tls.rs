//! TLS test support: a throw-away CA issuing certificates with rcgen, Secrets holding them,
//! and a rustls client that accepts any certificate and reports which one it was given.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SignatureAlgorithm};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A certificate authority for one test.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// Its self-signed certificate, PEM (a `ca.crt`).
    pub cert: String,
}

/// A certificate and its key, PEM.
pub struct Pair {
    pub cert: String,
    pub key: String,
}

impl Ca {
    pub fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            cert,
        }
    }

    /// A P-256 certificate for `names`.
    pub fn leaf(&self, names: &[&str]) -> Pair {
        self.leaf_with(names, &rcgen::PKCS_ECDSA_P256_SHA256, |_| {})
    }

    /// A certificate with a chosen key type and adjusted parameters (e.g. validity).
    pub fn leaf_with(
        &self,
        names: &[&str],
        alg: &'static SignatureAlgorithm,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Pair {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        adjust(&mut params);
        let key = KeyPair::generate_for(alg).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// A `kubernetes.io/tls` Secret in namespace `test`.
pub fn secret_yaml(name: &str, cert: &str, key: &str) -> String {
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: test}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(cert),
        indent(key)
    )
}

#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
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

/// Client options for [`connect`].
pub struct Hello<'a> {
    /// SNI to send; `None` sends none.
    pub sni: Option<&'a str>,
    pub alpn: &'a [&'a [u8]],
    pub versions: &'a [&'static rustls::SupportedProtocolVersion],
}

impl Default for Hello<'_> {
    fn default() -> Self {
        Hello {
            sni: None,
            alpn: &[b"http/1.1"],
            versions: rustls::ALL_VERSIONS,
        }
    }
}

impl<'a> Hello<'a> {
    /// A default hello with this SNI.
    pub fn sni(name: &'a str) -> Self {
        Hello {
            sni: Some(name),
            ..Hello::default()
        }
    }
}

/// Connects and completes a handshake.
pub async fn connect(addr: SocketAddr, hello: Hello<'_>) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    connect_over(tcp, hello).await
}

/// A client certificate (TLS client authentication usage) for `name`.
pub fn client_pair(ca: &Ca, name: &str) -> Pair {
    ca.leaf_with(&[name], &rcgen::PKCS_ECDSA_P256_SHA256, |p| {
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    })
}

/// Connects with SNI `sni`, offering `client` (a certificate and key) when asked, and sends
/// `GET path` over HTTP/1.1.
pub async fn get_with_client_cert(
    addr: SocketAddr,
    sni: &str,
    client: Option<&Pair>,
    path: &str,
) -> super::Answer {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)));
    let mut config = match client {
        Some(pair) => {
            let chain = CertificateDer::pem_slice_iter(pair.cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(pair.key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let stream = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake");
    get_over(stream, sni, path).await
}

/// Completes a handshake over a connected socket (after a PROXY protocol header, say).
pub async fn connect_over(
    tcp: TcpStream,
    hello: Hello<'_>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let addr = tcp.peer_addr()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(hello.versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
        .with_no_client_auth();
    config.alpn_protocols = hello.alpn.iter().map(|p| p.to_vec()).collect();
    let name = match hello.sni {
        Some(sni) => ServerName::try_from(sni.to_owned()).unwrap(),
        None => {
            config.enable_sni = false;
            ServerName::IpAddress(addr.ip().into())
        }
    };
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// The DNS names of the certificate the server presented.
pub fn presented_names(stream: &TlsStream<TcpStream>) -> Vec<String> {
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("a certificate");
    names_of(leaf.as_ref())
}

/// The SAN DNS names of a DER certificate.
pub fn names_of(der: &[u8]) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_string());
            }
        }
    }
    names
}

/// Which certificate a handshake with `sni` yields.
pub async fn names_for(addr: SocketAddr, sni: Option<&str>) -> Vec<String> {
    presented_names(
        &connect(
            addr,
            Hello {
                sni,
                ..Hello::default()
            },
        )
        .await
        .expect("handshake"),
    )
}

/// Sends `GET path` with `host` over an established TLS connection, in HTTP/2 when ALPN chose
/// it (the host then travels as `:authority`), else HTTP/1.1.
pub async fn get_over(stream: TlsStream<TcpStream>, host: &str, path: &str) -> super::Answer {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(stream);
    if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(format!("https://{host}{path}"))
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        super::read(sender.send_request(req).await.unwrap()).await
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header("host", host)
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        super::read(sender.send_request(req).await.unwrap()).await
    }
}
