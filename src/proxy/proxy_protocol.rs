//! The PROXY protocol header (v1 text or v2 binary) a load balancer sends before the client's
//! first byte (`use-proxy-protocol`): read off the socket, and the client address it names.
//! The header is peeked until complete, then exactly its bytes are consumed, so what follows
//! reaches TLS or HTTP untouched.

use ppp::{HeaderResult, PartialResult};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The longest header accepted: v1 is at most 107 bytes; v2 carries TLVs (AWS adds a few
/// hundred bytes), and nothing legitimate comes near this.
const MAX_HEADER: usize = 4096;

/// Reads the PROXY header at the start of `stream`. `Ok(Some(source))` for a proxied
/// connection, `Ok(None)` for a header that names no client (`LOCAL`, `UNKNOWN`: a health
/// check). A missing or malformed header is an error: the connection is closed. The caller
/// bounds the time this takes.
pub async fn read_header(stream: &mut TcpStream) -> io::Result<Option<SocketAddr>> {
    let mut buf = vec![0u8; MAX_HEADER];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before a PROXY protocol header",
            ));
        }
        let parsed = HeaderResult::parse(&buf[..n]);
        if parsed.is_incomplete() {
            if n == buf.len() {
                return Err(invalid("PROXY protocol header too long"));
            }
            // `peek` returns at once while the bytes seen so far are unread; wait a little for
            // the rest rather than spin.
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        let (len, source) = match parsed {
            HeaderResult::V1(Ok(h)) => (h.header.len(), v1_source(&h.addresses)),
            HeaderResult::V2(Ok(h)) => (h.len(), v2_source(&h)),
            HeaderResult::V1(Err(e)) => return Err(invalid(&format!("PROXY protocol v1: {e}"))),
            HeaderResult::V2(Err(e)) => return Err(invalid(&format!("PROXY protocol v2: {e}"))),
        };
        stream.read_exact(&mut buf[..len]).await?;
        return Ok(source);
    }
}

fn invalid(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.to_owned())
}

fn v1_source(addresses: &ppp::v1::Addresses) -> Option<SocketAddr> {
    match addresses {
        ppp::v1::Addresses::Tcp4(a) => Some((a.source_address, a.source_port).into()),
        ppp::v1::Addresses::Tcp6(a) => Some((a.source_address, a.source_port).into()),
        ppp::v1::Addresses::Unknown => None,
    }
}

fn v2_source(header: &ppp::v2::Header<'_>) -> Option<SocketAddr> {
    if header.command == ppp::v2::Command::Local {
        return None;
    }
    match header.addresses {
        ppp::v2::Addresses::IPv4(a) => Some((a.source_address, a.source_port).into()),
        ppp::v2::Addresses::IPv6(a) => Some((a.source_address, a.source_port).into()),
        ppp::v2::Addresses::Unix(_) | ppp::v2::Addresses::Unspecified => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn through(sent: Vec<u8>) -> (io::Result<Option<SocketAddr>>, Vec<u8>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            // In two pieces, to exercise waiting for the rest.
            let (a, b) = sent.split_at(sent.len() / 2);
            s.write_all(a).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            s.write_all(b).await.unwrap();
            s.shutdown().await.unwrap();
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        let header = read_header(&mut stream).await;
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
        client.await.unwrap();
        (header, rest)
    }

    #[tokio::test]
    async fn v1_names_the_client_and_leaves_the_request() {
        let sent = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\nGET / HTTP/1.1\r\n\r\n".to_vec();
        let (header, rest) = through(sent).await;
        assert_eq!(header.unwrap(), Some("203.0.113.7:51000".parse().unwrap()));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn v2_names_the_client_and_leaves_the_request() {
        let source: SocketAddr = "[2001:db8::7]:51000".parse().unwrap();
        let destination: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        let mut sent = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (source, destination),
        )
        .write_tlv(ppp::v2::Type::NoOp, b"padding")
        .unwrap()
        .build()
        .unwrap();
        sent.extend_from_slice(b"hello");
        let (header, rest) = through(sent).await;
        assert_eq!(header.unwrap(), Some(source));
        assert_eq!(rest, b"hello");
    }

    #[tokio::test]
    async fn unknown_names_no_client_and_garbage_is_refused() {
        let (header, rest) = through(b"PROXY UNKNOWN\r\nrest".to_vec()).await;
        assert_eq!(header.unwrap(), None);
        assert_eq!(rest, b"rest");
        let (header, _) = through(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()).await;
        assert_eq!(header.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
