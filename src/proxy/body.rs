//! What every stage of the proxy passes along: the response body type, its error, the proxy's
//! own short text answers, and the buffer size of every HTTP connection.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use std::borrow::Cow;

/// What any body the proxy moves can fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the proxy writes.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Largest buffer per connection, client or pod side, which is also the largest request head
/// accepted (431 beyond it). Small enough that streamed bodies move in chunks the allocator
/// recycles.
pub const MAX_BUF: usize = 64 * 1024;

/// A body of fixed text.
pub fn full(text: Cow<'static, str>) -> ProxyBody {
    let bytes = match text {
        Cow::Borrowed(t) => Bytes::from_static(t.as_bytes()),
        Cow::Owned(t) => Bytes::from(t),
    };
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}
