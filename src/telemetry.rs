//! Logs and traces: the `tracing` subscriber (text or JSON on stderr) and, in builds with the
//! `otel` feature, an OpenTelemetry exporter that sends the request spans over OTLP/HTTP and
//! carries W3C `traceparent` from clients to upstreams.

use crate::config::LogFormat;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// Keeps the exporters running; dropping it flushes the spans not sent yet.
pub struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("OpenTelemetry: could not flush spans: {e}");
        }
    }
}

/// Starts logging to stderr as text or JSON, filtered by `level` (a level or tracing
/// directives), and span export to `otlp_endpoint` when given.
pub fn init(
    format: LogFormat,
    level: &str,
    otlp_endpoint: Option<&str>,
) -> Result<Telemetry, String> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).map_err(|e| format!("--log-level: {e}"))?;
    // Colours only for people: not in files, pipes or log collectors.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    let fmt = match format {
        LogFormat::Json => fmt.json().flatten_event(true).with_filter(filter).boxed(),
        LogFormat::Text => fmt.with_filter(filter).boxed(),
    };
    let layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![fmt];
    #[cfg(feature = "otel")]
    let (layers, provider) = match otlp_endpoint {
        Some(endpoint) => {
            let (layer, provider) = otel::layer(endpoint)?;
            let mut layers = layers;
            layers.push(layer);
            (layers, Some(provider))
        }
        None => (layers, None),
    };
    #[cfg(not(feature = "otel"))]
    if otlp_endpoint.is_some() {
        return Err(
            "--otlp-endpoint: this build has no OpenTelemetry support (build with --features otel)"
                .to_owned(),
        );
    }
    tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .map_err(|e| e.to_string())?;
    Ok(Telemetry {
        #[cfg(feature = "otel")]
        provider,
    })
}

/// Makes `span` a child of the client's `traceparent`, if it sent one (no-op without `otel`).
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    #[cfg(feature = "otel")]
    otel::continue_trace(span, headers);
    #[cfg(not(feature = "otel"))]
    let _ = (span, headers);
}

/// Writes `span`'s context as `traceparent` into the upstream request (no-op without `otel`,
/// which leaves the client's header as it was).
pub fn propagate(span: &tracing::Span, headers: &mut http::HeaderMap) {
    #[cfg(feature = "otel")]
    otel::propagate(span, headers);
    #[cfg(not(feature = "otel"))]
    let _ = (span, headers);
}

#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_http::{HeaderExtractor, HeaderInjector};
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::{LevelFilter, Targets};

    type Boxed = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;

    /// The export layer: Vestibule's own spans (the `request` span is at debug level, so it
    /// costs nothing when no exporter is configured), batched to `endpoint`/v1/traces.
    pub fn layer(endpoint: &str) -> Result<(Boxed, SdkTracerProvider), String> {
        let url = match endpoint.trim_end_matches('/') {
            e if e.ends_with("/v1/traces") => e.to_owned(),
            e => format!("{e}/v1/traces"),
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .build()
            .map_err(|e| format!("--otlp-endpoint: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name("vestibule").build())
            .build();
        let tracer = provider.tracer("vestibule");
        let only_ours = Targets::new().with_target("vestibule", LevelFilter::DEBUG);
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(only_ours)
            .boxed();
        Ok((layer, provider))
    }

    pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
        if headers.contains_key("traceparent") {
            let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
            let _ = span.set_parent(parent);
        }
    }

    pub fn propagate(span: &tracing::Span, headers: &mut http::HeaderMap) {
        let context = span.context();
        TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
    }
}
