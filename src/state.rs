//! The published state shared by the proxy and the admin server: the last build, swapped
//! whole, plus the readiness flags. Readers never lock.

use crate::model::Built;
use crate::tls::certs::CertStore;
use crate::tls::client::ClientAuthStore;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// One published build and its sequence number.
#[derive(Debug, Default)]
pub struct Published {
    pub built: Built,
    /// The certificates TLS handshakes choose from, built from `built.tls`.
    pub certs: CertStore,
    /// The hosts that ask for client certificates, built from `built.client_auth`.
    pub client_auth: ClientAuthStore,
    /// 0 before the first publish, then 1, 2, …
    pub generation: u64,
}

/// What every request and admin call reads.
#[derive(Debug, Default)]
pub struct Shared {
    current: ArcSwap<Published>,
    generation: AtomicU64,
    ready: AtomicBool,
    draining: AtomicBool,
}

impl Shared {
    /// The build in force. Requests hold this `Arc` until they finish, so a publish never
    /// changes the table under a request in flight.
    pub fn current(&self) -> Arc<Published> {
        self.current.load_full()
    }

    /// Borrow the build in force without touching its reference count; for short, non-async use.
    pub fn peek(&self) -> arc_swap::Guard<Arc<Published>> {
        self.current.load()
    }

    /// Swaps in a new build atomically and marks the controller ready.
    pub fn publish(&self, built: Built, certs: CertStore, client_auth: ClientAuthStore) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.current.store(Arc::new(Published {
            built,
            certs,
            client_auth,
            generation,
        }));
        self.ready.store(true, Ordering::Release);
        generation
    }

    /// Ready once something was published, and until shutdown begins.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire)
    }

    /// Shutdown has begun: `/readyz` fails so load balancers stop sending new connections.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
}
