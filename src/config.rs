//! The command line (clap; every flag also from a `VESTIBULE_*` environment variable),
//! validated into the typed settings the rest of the program uses.

use crate::model::client::{ClientAddressRule, IpSet};
use crate::model::settings::{Global, Hsts};
use crate::model::{GatewayPorts, Options, ServiceRef};
use crate::tls::MinVersion;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Vestibule: a Kubernetes ingress controller.
#[derive(Debug, Parser)]
#[command(
    name = "vestibule",
    version,
    about,
    args_conflicts_with_subcommands = true,
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check manifest files offline: print every error as `file: Kind ns/name: field:
    /// reason`, then every warning (ignored annotations, snippets) as `file: warning: …`;
    /// exit 1 if there is an error (with --strict, also a warning), 0 otherwise.
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Manifest files or directories (multi-document YAML or JSON).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Exit 1 on warnings too.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// The flags that decide which Ingresses are ours and where unmatched requests go.
#[derive(Debug, Args, Clone)]
pub struct ModelArgs {
    /// `spec.controller` of the IngressClasses that are ours.
    #[arg(
        long,
        env = "VESTIBULE_CONTROLLER_NAME",
        default_value = "vestibule.dev/ingress-controller"
    )]
    pub controller_name: String,
    /// A class name that is ours even without an IngressClass object.
    #[arg(long, env = "VESTIBULE_INGRESS_CLASS", default_value = "vestibule")]
    pub ingress_class: String,
    /// Also serve Ingresses that name no class.
    #[arg(long, env = "VESTIBULE_WATCH_INGRESS_WITHOUT_CLASS")]
    pub watch_ingress_without_class: bool,
    /// Service for requests no rule matches when no Ingress sets spec.defaultBackend:
    /// `namespace/name:port` (port by number or name).
    #[arg(long, env = "VESTIBULE_DEFAULT_BACKEND", value_parser = ServiceRef::parse)]
    pub default_backend: Option<ServiceRef>,
    /// Largest request body accepted (413 beyond), unless an Ingress's `proxy-body-size`
    /// says otherwise: a number with k, m or g; 0 for no limit (ingress-nginx's default, 1m).
    #[arg(long, env = "VESTIBULE_PROXY_BODY_SIZE", default_value = "1m", value_parser = parse_body_size)]
    pub proxy_body_size: BodySize,
    /// ingress-nginx's ConfigMap (`namespace/name`): its keys (`proxy-body-size`,
    /// `use-forwarded-headers`, `hsts`, …) override these flags. Cluster mode watches it; file
    /// mode reads it from the manifests.
    #[arg(long, env = "VESTIBULE_CONFIGMAP", value_parser = parse_namespaced)]
    pub configmap: Option<(String, String)>,
    /// Honour the `ssl-passthrough` annotation: TLS to those hosts is spliced to the pods by
    /// SNI, not terminated (no HTTP feature applies to them).
    #[arg(long, env = "VESTIBULE_ENABLE_SSL_PASSTHROUGH")]
    pub enable_ssl_passthrough: bool,
    /// Let annotations (`auth-secret`, `auth-tls-secret`) name Secrets of other namespaces as
    /// `namespace/name`, as ingress-nginx does; `false` confines each Ingress to its own.
    #[arg(long, env = "VESTIBULE_ALLOW_CROSS_NAMESPACE_SECRETS", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_cross_namespace_secrets: bool,
    /// Add Strict-Transport-Security to responses over TLS.
    #[arg(long, env = "VESTIBULE_HSTS")]
    pub hsts: bool,
    /// HSTS max-age in seconds.
    #[arg(long, env = "VESTIBULE_HSTS_MAX_AGE", default_value_t = 31_536_000)]
    pub hsts_max_age: u64,
    /// Add includeSubDomains to HSTS.
    #[arg(long, env = "VESTIBULE_HSTS_INCLUDE_SUBDOMAINS")]
    pub hsts_include_subdomains: bool,
    /// Trust X-Forwarded-For (or --forwarded-for-header), -Proto, -Port and -Host from peers
    /// in --proxy-real-ip-cidr (ingress-nginx's `use-forwarded-headers`).
    #[arg(long, env = "VESTIBULE_USE_FORWARDED_HEADERS")]
    pub use_forwarded_headers: bool,
    /// The header that names the client when forwarded headers are trusted.
    #[arg(
        long,
        env = "VESTIBULE_FORWARDED_FOR_HEADER",
        default_value = "X-Forwarded-For"
    )]
    pub forwarded_for_header: http::HeaderName,
    /// Send pods the received X-Forwarded-For with the peer appended, rather than the client
    /// address alone (needs --use-forwarded-headers).
    #[arg(long, env = "VESTIBULE_COMPUTE_FULL_FORWARDED_FOR")]
    pub compute_full_forwarded_for: bool,
    /// Peers (and forwarded hops) trusted to name the client: comma-separated CIDR ranges.
    #[arg(long, env = "VESTIBULE_PROXY_REAL_IP_CIDR", default_value = "0.0.0.0/0", value_parser = IpSet::parse)]
    pub proxy_real_ip_cidr: IpSet,
    /// Every connection on both listeners starts with a PROXY protocol header (v1 or v2), as
    /// behind an AWS NLB or HAProxy with `send-proxy`; the client address comes from it.
    #[arg(long, env = "VESTIBULE_USE_PROXY_PROTOCOL")]
    pub use_proxy_protocol: bool,
    /// The Gateway listener port served on the --http-addr socket: Gateway API listeners with
    /// protocol HTTP on this port are served, and redirects count it as the request's port.
    #[arg(long, env = "VESTIBULE_GATEWAY_HTTP_PORT", default_value_t = 80)]
    pub gateway_http_port: u16,
    /// The Gateway listener port served on the --https-addr socket (protocol HTTPS).
    #[arg(long, env = "VESTIBULE_GATEWAY_HTTPS_PORT", default_value_t = 443)]
    pub gateway_https_port: u16,
}

/// A body size limit; `None` is no limit.
#[derive(Debug, Clone, Copy)]
pub struct BodySize(pub Option<u64>);

fn parse_body_size(text: &str) -> Result<BodySize, String> {
    crate::model::policy::parse_size(text).map(BodySize)
}

impl ModelArgs {
    /// The model's view of these flags.
    pub fn options(&self) -> Options {
        Options {
            controller_name: self.controller_name.clone(),
            ingress_class: self.ingress_class.clone(),
            watch_ingress_without_class: self.watch_ingress_without_class,
            default_backend: self.default_backend.clone(),
            global: Global {
                proxy_body_size: self.proxy_body_size.0,
                hsts: Hsts {
                    enabled: self.hsts,
                    max_age: self.hsts_max_age,
                    include_subdomains: self.hsts_include_subdomains,
                    preload: false,
                },
                client: ClientAddressRule {
                    use_forwarded_headers: self.use_forwarded_headers,
                    forwarded_for_header: self.forwarded_for_header.clone(),
                    compute_full_forwarded_for: self.compute_full_forwarded_for,
                    trusted: self.proxy_real_ip_cidr.clone(),
                    proxy_protocol: self.use_proxy_protocol,
                },
                ..Global::default()
            },
            config_map: self.configmap.clone(),
            cross_namespace_secrets: self.allow_cross_namespace_secrets,
            ssl_passthrough: self.enable_ssl_passthrough,
            gateway_ports: GatewayPorts {
                http: self.gateway_http_port,
                https: self.gateway_https_port,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// File mode: read Kubernetes manifests from this directory (or file) and watch it.
    /// Without it, Vestibule watches the cluster (in-cluster service account, else KUBECONFIG).
    #[arg(long, env = "VESTIBULE_MANIFESTS")]
    pub manifests: Option<PathBuf>,
    /// Plain HTTP listener (HTTP/1.1 and h2c). Port 0 picks a free port, logged at start.
    #[arg(long, env = "VESTIBULE_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// TLS listener (HTTP/1.1 and HTTP/2 by ALPN).
    #[arg(long, env = "VESTIBULE_HTTPS_ADDR", default_value = "0.0.0.0:8443")]
    pub https_addr: SocketAddr,
    /// `namespace/name` of a kubernetes.io/tls Secret served to clients whose SNI matches no
    /// Ingress (and clients without SNI). Default: a self-signed certificate made at start.
    #[arg(long, env = "VESTIBULE_DEFAULT_SSL_CERTIFICATE", value_parser = parse_namespaced)]
    pub default_ssl_certificate: Option<(String, String)>,
    /// Lowest TLS version accepted.
    #[arg(
        long,
        env = "VESTIBULE_TLS_MIN_VERSION",
        value_enum,
        default_value = "1.2"
    )]
    pub tls_min_version: MinVersion,
    /// The port clients use for https, written into redirects from plain HTTP (omitted when 443).
    /// Behind the chart's LoadBalancer that is 443 whatever --https-addr says.
    #[arg(long, env = "VESTIBULE_HTTPS_REDIRECT_PORT", default_value_t = 443)]
    pub https_redirect_port: u16,
    /// Admin listener: /healthz, /readyz, /debug/routes.
    #[arg(long, env = "VESTIBULE_ADMIN_ADDR", default_value = "0.0.0.0:9090")]
    pub admin_addr: SocketAddr,
    #[command(flatten)]
    pub model: ModelArgs,
    /// One access-log line per request on standard output (`--access-log=false` turns it off).
    #[arg(long, env = "VESTIBULE_ACCESS_LOG", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub access_log: bool,
    /// Send request spans to this OpenTelemetry collector (OTLP over HTTP, e.g.
    /// `http://otel-collector:4318`). Needs a build with the `otel` feature.
    #[arg(long, env = "VESTIBULE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Log lines (and access-log lines) as text or JSON.
    #[arg(long, env = "VESTIBULE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter: a level (`info`) or a tracing directive (`vestibule=debug,info`).
    #[arg(long, env = "VESTIBULE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Cluster mode: watch Ingresses, Services, EndpointSlices and Secrets of this namespace
    /// only (IngressClasses are cluster-wide).
    #[arg(long, env = "VESTIBULE_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Cluster mode: watch the Gateway API (GatewayClass, Gateway, HTTPRoute, ReferenceGrant,
    /// and Namespaces for listener selectors) and write their status. A kind whose CRD is
    /// missing is skipped until it appears; `false` when the controller may not list them.
    #[arg(long, env = "VESTIBULE_GATEWAY_API", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub gateway_api: bool,
    /// Cluster mode: write this LoadBalancer Service's addresses (`namespace/name`) into the
    /// `status.loadBalancer` of every Ingress of ours.
    #[arg(long, env = "VESTIBULE_PUBLISH_SERVICE", value_parser = parse_namespaced)]
    pub publish_service: Option<(String, String)>,
    /// Cluster mode: write these IPs or host names (comma-separated) into Ingress status instead.
    #[arg(
        long,
        env = "VESTIBULE_PUBLISH_STATUS_ADDRESS",
        value_delimiter = ',',
        conflicts_with = "publish_service"
    )]
    pub publish_status_address: Vec<String>,
    /// Name of the Lease that elects the one replica writing Ingress status (in the namespace
    /// of `POD_NAMESPACE`, else the kubeconfig's).
    #[arg(
        long,
        env = "VESTIBULE_ELECTION_ID",
        default_value = "vestibule-leader"
    )]
    pub election_id: String,
    /// At shutdown, clear the addresses from Ingress status unless another replica takes over.
    #[arg(long, env = "VESTIBULE_UPDATE_STATUS_ON_SHUTDOWN", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub update_status_on_shutdown: bool,
    /// Quiet time after a change before the table is rebuilt, so a burst is one rebuild.
    #[arg(long, env = "VESTIBULE_DEBOUNCE", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub debounce: Duration,
    /// How long to wait for a TCP connection to an endpoint before trying another.
    #[arg(long, env = "VESTIBULE_UPSTREAM_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub upstream_connect_timeout: Duration,
    /// How long an upstream may take to send response headers before the client gets 504.
    #[arg(long, env = "VESTIBULE_UPSTREAM_RESPONSE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub upstream_response_timeout: Duration,
    /// How long an upstream may pause between two pieces of a response body before the
    /// response is cut off (nginx's `proxy_read_timeout`); also how long an upgraded
    /// connection (WebSocket) may carry nothing either way.
    #[arg(long, env = "VESTIBULE_UPSTREAM_READ_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub upstream_read_timeout: Duration,
    /// How long a new client connection may take to send its first request's headers, TLS
    /// handshake included (nginx's `client_header_timeout`).
    #[arg(long, env = "VESTIBULE_CLIENT_HEADER_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub client_header_timeout: Duration,
    /// How long a keep-alive connection may sit idle between requests (nginx's
    /// `keepalive_timeout`).
    #[arg(long, env = "VESTIBULE_CLIENT_IDLE_TIMEOUT", default_value = "75s", value_parser = humantime::parse_duration)]
    pub client_idle_timeout: Duration,
    /// How long a client may take none of a response it is being sent before its connection
    /// is closed (nginx's `send_timeout`).
    #[arg(long, env = "VESTIBULE_CLIENT_SEND_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub client_send_timeout: Duration,
    /// Client connections served at once over all listeners; more are closed as soon as they
    /// are accepted. Lowered at start to what the open-files limit allows (two descriptors a
    /// connection: the client's and the pod's).
    #[arg(
        long,
        env = "VESTIBULE_MAX_CLIENT_CONNECTIONS",
        default_value_t = 16384
    )]
    pub max_client_connections: usize,
    /// Threads serving requests; default one per available CPU. With 1, everything runs on a
    /// single-threaded runtime, which is cheaper per request than a one-worker pool.
    #[arg(long, env = "VESTIBULE_WORKER_THREADS")]
    pub worker_threads: Option<std::num::NonZeroUsize>,
    /// How long in-flight requests may take to finish after SIGTERM (e.g. `30s`, `500ms`).
    #[arg(long, env = "VESTIBULE_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// After SIGTERM, how long `/readyz` answers 503 while the listeners still accept, so
    /// endpoint controllers and load balancers stop sending before the listeners close.
    #[arg(long, env = "VESTIBULE_SHUTDOWN_DELAY", default_value = "0s", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Duration,
}

/// Settings of a running controller, after validation.
#[derive(Debug, Clone)]
pub struct Config {
    /// File mode when set, else cluster mode.
    pub manifests: Option<PathBuf>,
    /// Called after work that freed much memory (a full build, a rescan of the manifest
    /// tree): the binary hands it back to the system (its allocator keeps it otherwise; the
    /// library has no unsafe code to ask).
    pub release_memory: fn(),
    /// Where Ingress status addresses come from, if they are written at all.
    pub publish: Option<crate::status::Publish>,
    pub election_id: String,
    pub update_status_on_shutdown: bool,
    pub watch_namespace: Option<String>,
    /// Watch the Gateway API kinds (cluster mode).
    pub gateway_api: bool,
    pub debounce: Duration,
    pub http_addr: SocketAddr,
    pub https_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub options: Options,
    pub upstream: Timeouts,
    pub tls: TlsSettings,
    /// Access-log lines on stdout, JSON when `Some(true)`.
    pub access_log: Option<bool>,
    pub shutdown_grace: Duration,
    pub shutdown_delay: Duration,
    pub client: ClientTimeouts,
    pub max_client_connections: usize,
}

/// TLS settings.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub default_certificate: Option<(String, String)>,
    pub min_version: MinVersion,
    pub redirect_port: u16,
}

fn parse_namespaced(text: &str) -> Result<(String, String), String> {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(format!("{text:?} is not of the form namespace/name")),
    }
}

/// How long a client connection may take at each step.
#[derive(Debug, Clone, Copy)]
pub struct ClientTimeouts {
    /// From accept to the first request's headers (TLS handshake and protocol detection
    /// included).
    pub header: Duration,
    /// From the end of one response to the next request's headers.
    pub idle: Duration,
    /// With a response under way, how long the client may take no bytes of it.
    pub send: Duration,
}

impl Default for ClientTimeouts {
    fn default() -> Self {
        ClientTimeouts {
            header: Duration::from_secs(60),
            idle: Duration::from_secs(75),
            send: Duration::from_secs(60),
        }
    }
}

/// Upstream timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub response_headers: Duration,
    /// Between two pieces of a response body.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            response_headers: Duration::from_secs(60),
            read: Duration::from_secs(60),
        }
    }
}

impl RunArgs {
    /// Checks what clap cannot; the error is meant for the user.
    pub fn validate(&self) -> Result<Config, String> {
        let manifests = self.manifests.clone();
        if let Some(dir) = &manifests
            && !dir.exists()
        {
            return Err(format!(
                "--manifests {}: no such file or directory",
                dir.display()
            ));
        }
        let publish = match (
            &self.publish_service,
            self.publish_status_address.is_empty(),
        ) {
            (Some((namespace, name)), _) => Some(crate::status::Publish::Service {
                namespace: namespace.clone(),
                name: name.clone(),
            }),
            (None, false) => Some(crate::status::Publish::Addresses(
                self.publish_status_address.clone(),
            )),
            (None, true) => None,
        };
        if publish.is_some() && manifests.is_some() {
            return Err(
                "--publish-service and --publish-status-address need cluster mode (no --manifests)"
                    .to_owned(),
            );
        }
        Ok(Config {
            manifests,
            release_memory: || {},
            publish,
            election_id: self.election_id.clone(),
            update_status_on_shutdown: self.update_status_on_shutdown,
            watch_namespace: self.watch_namespace.clone(),
            gateway_api: self.gateway_api,
            debounce: self.debounce,
            http_addr: self.http_addr,
            https_addr: self.https_addr,
            admin_addr: self.admin_addr,
            options: self.model.options(),
            upstream: Timeouts {
                connect: self.upstream_connect_timeout,
                response_headers: self.upstream_response_timeout,
                read: self.upstream_read_timeout,
            },
            tls: TlsSettings {
                default_certificate: self.default_ssl_certificate.clone(),
                min_version: self.tls_min_version,
                redirect_port: self.https_redirect_port,
            },
            access_log: self
                .access_log
                .then_some(self.log_format == LogFormat::Json),
            shutdown_grace: self.shutdown_grace,
            shutdown_delay: self.shutdown_delay,
            client: ClientTimeouts {
                header: self.client_header_timeout,
                idle: self.client_idle_timeout,
                send: self.client_send_timeout,
            },
            max_client_connections: self.max_client_connections.max(1),
        })
    }
}
