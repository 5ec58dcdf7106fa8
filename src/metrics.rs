//! Prometheus metrics, served as OpenMetrics text on the admin port's `/metrics`. Every label
//! takes values from the configuration (namespaces, Ingresses, Services, Secrets) or a fixed
//! set; never paths, hosts as sent, or client addresses.

use crate::model::endpoints::{Backend, Resolution};
use crate::state::Published;
use prometheus_client::encoding::{EncodeLabelSet, text::encode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Labels of request metrics. Requests no route claimed have empty namespace, ingress and service.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub namespace: String,
    pub ingress: String,
    pub service: String,
    /// `1xx` … `5xx`.
    pub status_class: &'static str,
}

/// The upstream protocol (`backend-protocol`, lower case: `http`, `h2c`, `grpc`, `https`,
/// `grpcs`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabels {
    pub protocol: &'static str,
}

/// A failed upstream attempt: why, and over which protocol.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    pub reason: &'static str,
    pub protocol: &'static str,
}

/// Histograms of upstream latencies, by protocol.
pub type ByProtocol = Family<ProtocolLabels, Histogram, LatencyBuckets>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `connect`, `timeout`, `reset` or `protocol`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    /// `http` (HTTP/1.1 and h2c) or `https`.
    pub protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success` or `error`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `ready`, `serving_terminating` or `not_ready`.
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DiagnosticLabels {
    pub kind: String,
    /// The field at fault with list indices removed (`spec.rules.http.paths.backend.service.name`):
    /// a bounded stand-in for the reason, whose text names objects.
    pub field: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SecretLabels {
    pub namespace: String,
    pub secret: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Latency buckets from 1 ms to ~65 s.
#[derive(Clone)]
pub struct LatencyBuckets;

impl MetricConstructor<Histogram> for LatencyBuckets {
    fn new_metric(&self) -> Histogram {
        latency()
    }
}

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every metric Vestibule exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<RequestLabels, Histogram, LatencyBuckets>,
    pub upstream_connect_duration: ByProtocol,
    pub upstream_header_duration: ByProtocol,
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    pub client_connections: Family<ListenerLabels, Gauge>,
    pub client_connections_closed: Family<ReasonLabels, Counter>,
    pub client_errors: Family<ReasonLabels, Counter>,
    /// Mirrored copies, by outcome (`sent`, `failed`, `dropped`, `invalid`, `body`).
    pub mirrors: Family<ReasonLabels, Counter>,
    pub reloads: Family<ResultLabels, Counter>,
    pub reload_duration: Histogram,
    /// From an object's change (its watch event) to a table serving it, by kind.
    pub change_to_serving: Family<KindLabels, Histogram, ChangeBuckets>,
    /// EndpointSlice changes published into the backends without a rebuild.
    pub endpoint_updates: Counter,
    pub last_reload_success: Gauge<f64, AtomicU64>,
    routes: Gauge,
    hosts: Gauge,
    endpoints: Family<StateLabels, Gauge>,
    diagnostics: Family<DiagnosticLabels, Gauge>,
    certificate_expiry: Family<SecretLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vestibule");
        let requests = Family::default();
        registry.register(
            "requests",
            "Requests answered, by Ingress, Service and status class",
            requests.clone(),
        );
        let request_duration = Family::new_with_constructor(LatencyBuckets);
        registry.register_with_unit(
            "request_duration",
            "Time from request headers to the end of the response body",
            Unit::Seconds,
            request_duration.clone(),
        );
        let upstream_connect_duration = Family::new_with_constructor(LatencyBuckets);
        registry.register_with_unit(
            "upstream_connect_duration",
            "Time to open a connection to an endpoint (TLS included), by protocol",
            Unit::Seconds,
            upstream_connect_duration.clone(),
        );
        let upstream_header_duration = Family::new_with_constructor(LatencyBuckets);
        registry.register_with_unit(
            "upstream_header_duration",
            "Time from sending a request upstream to its response headers, by protocol",
            Unit::Seconds,
            upstream_header_duration.clone(),
        );
        // The plain-HTTP series exist from the start, as the histograms did before they had
        // a protocol label (dashboards and alerts see them at zero).
        let http = ProtocolLabels { protocol: "http" };
        let _ = upstream_connect_duration.get_or_create(&http);
        let _ = upstream_header_duration.get_or_create(&http);
        let upstream_errors = Family::default();
        registry.register(
            "upstream_errors",
            "Failed upstream attempts, by reason and protocol",
            upstream_errors.clone(),
        );
        let client_connections = Family::default();
        registry.register(
            "client_connections",
            "Open client connections, by listener protocol",
            client_connections.clone(),
        );
        let client_connections_closed = Family::default();
        registry.register(
            "client_connections_closed",
            "Client connections closed by Vestibule, by reason (header_timeout, idle_timeout, send_timeout, limit)",
            client_connections_closed.clone(),
        );
        let client_errors = Family::default();
        registry.register(
            "client_errors",
            "Requests refused for what the client sent, by reason (body, host)",
            client_errors.clone(),
        );
        let reloads = Family::default();
        registry.register(
            "config_reloads",
            "Configuration rebuilds, by result",
            reloads.clone(),
        );
        let reload_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register_with_unit(
            "config_reload_duration",
            "Time to read, build and publish a configuration",
            Unit::Seconds,
            reload_duration.clone(),
        );
        let change_to_serving = Family::new_with_constructor(ChangeBuckets);
        registry.register_with_unit(
            "change_to_serving",
            "From an object's change (watch event) to a table serving it, by kind (cluster mode)",
            Unit::Seconds,
            change_to_serving.clone(),
        );
        let endpoint_updates = Counter::default();
        registry.register(
            "endpoint_updates",
            "EndpointSlice changes published into the backends without a rebuild",
            endpoint_updates.clone(),
        );
        let last_reload_success = Gauge::default();
        registry.register_with_unit(
            "config_last_reload_success_timestamp",
            "When a configuration was last published (Unix time)",
            Unit::Seconds,
            last_reload_success.clone(),
        );
        let routes = Gauge::default();
        registry.register("routes", "Routes in the published table", routes.clone());
        let hosts = Gauge::default();
        registry.register(
            "hosts",
            "Hosts (exact and wildcard) in the published table",
            hosts.clone(),
        );
        let endpoints = Family::default();
        registry.register(
            "endpoints",
            "Endpoints of routed Services, by readiness",
            endpoints.clone(),
        );
        let diagnostics = Family::default();
        registry.register(
            "diagnostics",
            "Current diagnostics, by object kind and field",
            diagnostics.clone(),
        );
        let certificate_expiry = Family::default();
        registry.register_with_unit(
            "tls_certificate_expiry_timestamp",
            "When each served certificate expires (Unix time)",
            Unit::Seconds,
            certificate_expiry.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "Build information", build_info);
        let mirrors = Family::default();
        registry.register(
            "mirror_requests",
            "Mirrored copies of requests (mirror-target), by outcome",
            mirrors.clone(),
        );
        Metrics {
            registry,
            requests,
            request_duration,
            upstream_connect_duration,
            upstream_header_duration,
            upstream_errors,
            client_connections,
            client_connections_closed,
            client_errors,
            mirrors,
            reloads,
            reload_duration,
            change_to_serving,
            endpoint_updates,
            last_reload_success,
            routes,
            hosts,
            endpoints,
            diagnostics,
            certificate_expiry,
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }

    /// Records one answered request.
    pub fn request(&self, labels: &RequestLabels, took: Duration) {
        self.requests.get_or_create(labels).inc();
        self.request_duration
            .get_or_create(labels)
            .observe(took.as_secs_f64());
    }

    /// Refreshes the gauges that describe the published table.
    /// A Service port's endpoints moved from `before` to `after` without a rebuild.
    pub fn endpoints_moved(&self, before: &Resolution, after: &Resolution) {
        let (was, is) = (endpoint_states(before), endpoint_states(after));
        for (i, state) in ENDPOINT_STATES.iter().enumerate() {
            self.endpoints
                .get_or_create(&StateLabels { state })
                .inc_by(is[i] - was[i]);
        }
    }

    /// `before`: the table this one replaced, whose endpoint counts it adjusts where the two
    /// differ (a partial build shares most of its backends with the last).
    pub fn published(&self, published: &Published, before: Option<&Published>, now_unix: f64) {
        let built = &published.built;
        self.routes.set(built.table.routes().len() as i64);
        self.hosts.set(built.table.host_count() as i64);
        // Each Service port once, however many routes and backends share it.
        let count = |entries: &mut dyn Iterator<Item = &Vec<Arc<Backend>>>| {
            let mut counts = [0i64; 3];
            for b in entries.filter_map(|backends| backends.first()) {
                let c = endpoint_states(&b.resolved());
                (0..3).for_each(|i| counts[i] += c[i]);
            }
            counts
        };
        match before {
            Some(before) => {
                let (now, was) = built.backends.unshared(&before.built.backends);
                let (now, was) = (
                    count(&mut now.map(|(_, v)| v)),
                    count(&mut was.map(|(_, v)| v)),
                );
                for (i, state) in ENDPOINT_STATES.iter().enumerate() {
                    self.endpoints
                        .get_or_create(&StateLabels { state })
                        .inc_by(now[i] - was[i]);
                }
            }
            None => {
                let counts = count(&mut built.backends.values());
                for (state, n) in ENDPOINT_STATES.iter().zip(counts) {
                    self.endpoints.get_or_create(&StateLabels { state }).set(n);
                }
            }
        }
        self.diagnostics.clear();
        for d in &built.diagnostics {
            let field: String = strip_indices(&d.field);
            self.diagnostics
                .get_or_create(&DiagnosticLabels {
                    kind: d.object.kind.to_owned(),
                    field,
                })
                .inc();
        }
        self.certificate_expiry.clear();
        for (secret, cert) in &published.certs.by_secret {
            let labels = SecretLabels {
                namespace: secret.namespace.clone(),
                secret: secret.name.clone(),
            };
            self.certificate_expiry
                .get_or_create(&labels)
                .set(cert.not_after);
        }
        self.last_reload_success.set(now_unix);
    }
}

/// `spec.rules[0].http.paths[1].path` → `spec.rules.http.paths.path`.
fn strip_indices(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut depth = 0;
    for c in field.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// `2xx` for 200 and so on.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_labels_drop_indices_but_keep_annotation_names() {
        assert_eq!(
            strip_indices("spec.rules[0].http.paths[12].backend.service.port.name"),
            "spec.rules.http.paths.backend.service.port.name"
        );
        assert_eq!(strip_indices("data[tls.crt]"), "data");
        assert_eq!(status_class(404), "4xx");
        assert_eq!(status_class(101), "1xx");
    }
}

/// The `kind` label of the change → serving histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

/// Buckets for change → serving: 1 ms to about 30 s.
#[derive(Clone)]
pub struct ChangeBuckets;

impl prometheus_client::metrics::family::MetricConstructor<Histogram> for ChangeBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.001, 2.0, 16))
    }
}

/// The `state` labels of `vestibule_endpoints`.
const ENDPOINT_STATES: [&str; 3] = ["ready", "serving_terminating", "not_ready"];

/// How many endpoints of a backend are in each of [`ENDPOINT_STATES`].
fn endpoint_states(r: &Resolution) -> [i64; 3] {
    let mut out = [0; 3];
    for e in &r.endpoints.all {
        match (e.ready, e.serving && e.terminating) {
            (true, _) => out[0] += 1,
            (false, true) => out[1] += 1,
            (false, false) => out[2] += 1,
        }
    }
    out
}
