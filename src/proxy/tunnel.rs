//! Upgraded connections (WebSocket and the like): bytes copied both ways between the client
//! and the pod until either side closes, nothing moves for the idle timeout (nginx's
//! `proxy_read_timeout` on upgraded connections), or the drain's grace period ends. A
//! WebSocket then gets a close frame 1001 "going away" each way, sent between frames.

use super::conn::{Connection, Phase};
use crate::model::Target;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// Copies bytes both ways between an upgraded client connection and its upstream. `websocket`
/// says whether the bytes are WebSocket frames.
pub async fn run(
    client: OnUpgrade,
    upstream: OnUpgrade,
    target: Target,
    websocket: bool,
    idle: Duration,
    conn: Arc<Connection>,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(upstream = %target, error = %e, "upgrade did not complete");
            return;
        }
    };
    let phase = conn.phase.clone();
    splice(
        TokioIo::new(client),
        TokioIo::new(upstream),
        &target,
        websocket,
        idle,
        phase,
    )
    .await;
}

/// Copies bytes both ways between `client` and `upstream` (an upgraded connection, or a TLS
/// passthrough connection) until either side closes, nothing moves for `idle`, or `phase`
/// says the drain's grace period is over.
pub async fn splice<C, U>(
    client: C,
    upstream: U,
    target: &Target,
    websocket: bool,
    idle: Duration,
    mut phase: watch::Receiver<Phase>,
) where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (mut up_r, mut up_w) = tokio::io::split(upstream);
    let started = Instant::now();
    let last = AtomicU64::new(0);
    let mut to_pod = FrameCursor::default();
    let mut to_client = FrameCursor::default();
    let ended = {
        let up = pump(&mut client_r, &mut up_w, &mut to_pod, &last, started);
        let down = pump(&mut up_r, &mut client_w, &mut to_client, &last, started);
        tokio::pin!(up, down);
        let closing = async { phase.wait_for(|p| *p == Phase::Closing).await.is_ok() };
        tokio::pin!(closing);
        loop {
            let quiet = Duration::from_millis(last.load(Ordering::Relaxed));
            let deadline = started + quiet + idle;
            tokio::select! {
                r = &mut up => break r.map(|()| "client closed"),
                r = &mut down => break r.map(|()| "pod closed"),
                true = &mut closing => break Ok("shutting down"),
                _ = tokio::time::sleep_until(deadline.into()) => {
                    if Duration::from_millis(last.load(Ordering::Relaxed)) == quiet {
                        break Ok("idle timeout");
                    }
                }
            }
        }
    };
    match ended {
        Ok(why @ ("shutting down" | "idle timeout")) => {
            if websocket {
                going_away(&mut client_w, &to_client, false).await;
                going_away(&mut up_w, &to_pod, true).await;
            }
            tracing::debug!(upstream = %target, why, "closing an upgraded connection");
        }
        Ok(why) => tracing::debug!(upstream = %target, why, "upgraded connection ended"),
        Err(e) => tracing::debug!(upstream = %target, error = %e, "upgraded connection failed"),
    }
    let _ = client_w.shutdown().await;
    let _ = up_w.shutdown().await;
}

/// Copies `from` into `to` until `from` ends. Each write is counted into `cursor` as soon as it
/// completes, so when this future is dropped the cursor knows exactly what the peer received.
async fn pump<R, W>(
    from: &mut R,
    to: &mut W,
    cursor: &mut FrameCursor,
    last: &AtomicU64,
    started: Instant,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        last.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let mut written = 0;
        while written < n {
            let w = to.write(&buf[written..n]).await?;
            if w == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            cursor.advance(&buf[written..written + w]);
            written += w;
        }
        to.flush().await?;
    }
}

/// Sends a close frame with status 1001 "going away", if the peer is between two frames.
async fn going_away<W: AsyncWrite + Unpin>(to: &mut W, cursor: &FrameCursor, masked: bool) {
    if !cursor.at_boundary() {
        return;
    }
    let frame = close_frame(masked);
    let _ = tokio::time::timeout(Duration::from_secs(1), to.write_all(&frame)).await;
}

/// A WebSocket close frame with status code 1001. Frames towards a server are masked
/// (RFC 6455 §5.3).
fn close_frame(masked: bool) -> Vec<u8> {
    let payload = 1001u16.to_be_bytes();
    if !masked {
        return vec![0x88, 0x02, payload[0], payload[1]];
    }
    let key: [u8; 4] = uuid::Uuid::new_v4().as_bytes()[..4]
        .try_into()
        .unwrap_or([0x5a; 4]);
    let mut frame = vec![0x88, 0x82];
    frame.extend_from_slice(&key);
    frame.push(payload[0] ^ key[0]);
    frame.push(payload[1] ^ key[1]);
    frame
}

/// Where a stream of WebSocket frames is: in a frame's header, in its payload, or between
/// frames. Only between frames may another frame be inserted.
#[derive(Debug, Default, Clone)]
struct FrameCursor {
    header: [u8; 14],
    /// Header bytes seen of the current frame.
    have: usize,
    /// Payload bytes still to come.
    payload: u64,
}

impl FrameCursor {
    fn at_boundary(&self) -> bool {
        self.have == 0 && self.payload == 0
    }

    /// The header length once its first two bytes are known.
    fn header_len(&self) -> usize {
        let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
        match self.header[1] & 0x7f {
            126 => 4 + mask,
            127 => 10 + mask,
            _ => 2 + mask,
        }
    }

    fn advance(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload > 0 {
                let take = (bytes.len() as u64).min(self.payload);
                self.payload -= take;
                bytes = &bytes[take as usize..];
                continue;
            }
            self.header[self.have] = bytes[0];
            self.have += 1;
            bytes = &bytes[1..];
            if self.have >= 2 && self.have == self.header_len() {
                self.payload = match self.header[1] & 0x7f {
                    126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                    127 => u64::from_be_bytes(self.header[2..10].try_into().unwrap_or([0; 8])),
                    n => u64::from(n),
                };
                self.have = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize, masked: bool) -> Vec<u8> {
        let mut f = vec![0x82];
        let mask = if masked { 0x80 } else { 0 };
        match len {
            0..=125 => f.push(mask | len as u8),
            126..=65535 => {
                f.push(mask | 126);
                f.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                f.push(mask | 127);
                f.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if masked {
            f.extend_from_slice(&[1, 2, 3, 4]);
        }
        f.extend(std::iter::repeat_n(7u8, len));
        f
    }

    #[test]
    fn the_cursor_knows_frame_boundaries_in_any_split() {
        let mut stream = Vec::new();
        for (len, masked) in [
            (5, false),
            (126, true),
            (70_000, false),
            (0, true),
            (125, false),
        ] {
            stream.extend(frame(len, masked));
        }
        let ends: Vec<usize> = {
            let mut at = 0;
            [
                (5, false),
                (126, true),
                (70_000, false),
                (0, true),
                (125, false),
            ]
            .iter()
            .map(|&(l, m)| {
                at += frame(l, m).len();
                at
            })
            .collect()
        };
        for chunk in [1, 3, 7, 1000, stream.len()] {
            let mut cursor = FrameCursor::default();
            let mut pos = 0;
            for piece in stream.chunks(chunk) {
                cursor.advance(piece);
                pos += piece.len();
                assert_eq!(
                    cursor.at_boundary(),
                    ends.contains(&pos),
                    "chunk {chunk} at {pos}"
                );
            }
        }
    }

    #[test]
    fn close_frames_carry_1001_masked_towards_the_pod() {
        assert_eq!(close_frame(false), [0x88, 0x02, 0x03, 0xe9]);
        let masked = close_frame(true);
        assert_eq!(masked[..2], [0x88, 0x82]);
        assert_eq!([masked[6] ^ masked[2], masked[7] ^ masked[3]], [0x03, 0xe9]);
    }
}
