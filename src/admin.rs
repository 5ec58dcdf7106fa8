//! The admin listener: `/healthz`, `/readyz` (ready after the first publish, not while
//! draining), `/metrics` (Prometheus) and `/debug/routes` (the live table as JSON, with why a
//! route has no endpoints; filtered by `?host=`, `?namespace=`, `?ingress=`, paged by
//! `?limit=&continue=`, and streamed, so a table of 100k apps is never one string).

use crate::metrics::Metrics;
use crate::model::Route;
use crate::state::{Published, Shared};
use crate::tls::certs::rfc3339;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves the admin endpoints until the task is dropped.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, metrics: Arc<Metrics>) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        let metrics = metrics.clone();
        let service = service_fn(move |req| {
            let shared = shared.clone();
            let metrics = metrics.clone();
            async move { Ok::<_, Infallible>(answer(&req, &shared, &metrics)) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(conn);
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn answer(req: &Request<Incoming>, shared: &Shared, metrics: &Metrics) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if shared.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/debug/routes" => match RoutesQuery::parse(req.uri().query()) {
            Ok(query) => debug_routes(shared.current(), query),
            Err(reason) => {
                let mut r = Response::new(Full::new(Bytes::from(reason)).boxed());
                *r.status_mut() = StatusCode::BAD_REQUEST;
                r
            }
        },
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(metrics.encode())).boxed());
            let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
            r.headers_mut()
                .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
            r
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed());
    *r.status_mut() = status;
    r
}

/// `/debug/routes`'s query: which routes, and from where.
#[derive(Debug, Default)]
struct RoutesQuery {
    host: Option<String>,
    namespace: Option<String>,
    /// The name of the object a route comes from (an Ingress or an HTTPRoute).
    ingress: Option<String>,
    limit: Option<usize>,
    /// (generation, index of the next route) from the previous page.
    from: Option<(u64, usize)>,
}

impl RoutesQuery {
    fn parse(query: Option<&str>) -> Result<RoutesQuery, String> {
        let mut q = RoutesQuery::default();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned();
            match key {
                "host" => q.host = Some(value.to_ascii_lowercase()),
                "namespace" => q.namespace = Some(value),
                "ingress" => q.ingress = Some(value),
                "limit" => {
                    let n: usize = value
                        .parse()
                        .map_err(|_| format!("limit={value:?} is not a number\n"))?;
                    q.limit = Some(n.max(1));
                }
                "continue" => {
                    let parsed = value
                        .split_once('-')
                        .and_then(|(g, i)| Some((g.parse().ok()?, i.parse().ok()?)));
                    q.from = Some(parsed.ok_or_else(|| {
                        format!("continue={value:?} is not a token of this server\n")
                    })?);
                }
                other => {
                    return Err(format!(
                        "unknown parameter {other:?} (host, namespace, ingress, limit, continue)\n"
                    ));
                }
            }
        }
        Ok(q)
    }

    fn wants(&self, route: &Route) -> bool {
        self.host
            .as_ref()
            .is_none_or(|h| route.host.to_string() == *h)
            && self
                .namespace
                .as_ref()
                .is_none_or(|n| route.ingress.namespace == *n)
            && self
                .ingress
                .as_ref()
                .is_none_or(|n| route.ingress.name == *n)
    }
}

/// Routes serialized per chunk of the streamed answer.
const ROUTES_PER_CHUNK: usize = 256;

/// The table as JSON, streamed: the routes that match, a page at a time (`continue` names
/// the next), then on the first page the default backend, TLS, diagnostics and Gateway API
/// status. A token from an older table is refused (410): the order may have changed.
fn debug_routes(published: Arc<Published>, query: RoutesQuery) -> Response<Body> {
    let start = match query.from {
        Some((generation, _)) if generation != published.generation => {
            let mut r = text(
                StatusCode::GONE,
                "the table changed since that page; start again without continue\n",
            );
            *r.status_mut() = StatusCode::GONE;
            return r;
        }
        Some((_, index)) => index,
        None => 0,
    };
    let head = format!("{{\"generation\":{},\"routes\":[", published.generation);
    let state = (published, query, start, 0usize, false, Some(head));
    let chunks = futures_util::stream::unfold(
        state,
        |(published, query, mut at, mut sent, mut any, head)| async move {
            if let Some(head) = head {
                let chunk = Bytes::from(head);
                return Some((
                    Ok(hyper::body::Frame::data(chunk)),
                    (published, query, at, sent, any, None),
                ));
            }
            let routes = published.built.table.routes();
            let limit = query.limit.unwrap_or(usize::MAX);
            if at > routes.len() {
                return None;
            }
            let mut out = Vec::new();
            while at < routes.len() && sent < limit && out.len() < 64 * 1024 {
                let r = &routes[at];
                at += 1;
                if !query.wants(r) {
                    continue;
                }
                if any {
                    out.push(b',');
                }
                out.push(b'\n');
                any = true;
                sent += 1;
                let _ = serde_json::to_writer(&mut out, &route_json(r));
                if sent % ROUTES_PER_CHUNK == 0 {
                    break;
                }
            }
            if out.is_empty() {
                // The tail: where the next page starts, and the rest of the table once.
                let more = (sent >= limit && routes[at..].iter().any(|r| query.wants(r)))
                    .then(|| format!("{}-{at}", published.generation));
                let mut tail = serde_json::Map::new();
                tail.insert("continue".to_owned(), json!(more));
                if query.from.is_none() {
                    if let Value::Object(rest) = rest_json(&published) {
                        tail.extend(rest);
                    }
                }
                let text = serde_json::to_string(&Value::Object(tail)).unwrap_or_default();
                let chunk = format!("\n],{}", &text[1..]);
                return Some((
                    Ok(hyper::body::Frame::data(Bytes::from(chunk))),
                    (published, query, usize::MAX, sent, any, None),
                ));
            }
            Some((
                Ok(hyper::body::Frame::data(Bytes::from(out))),
                (published, query, at, sent, any, None),
            ))
        },
    );
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(chunks)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn route_json(route: &Route) -> Value {
    let backend = route.backend();
    let resolved = backend.resolved();
    let endpoints: Vec<Value> = resolved
        .endpoints
        .all
        .iter()
        .map(|e| {
            json!({
                "address": e.target.to_string(),
                "ready": e.ready,
                "serving": e.serving,
                "terminating": e.terminating,
                "receivesTraffic": resolved.endpoints.targets.contains(&e.target),
            })
        })
        .collect();
    let why_unavailable = match (&resolved.problem, resolved.endpoints.targets.is_empty()) {
        (Some(p), _) => Some(p.clone()),
        (None, true) if resolved.endpoints.all.is_empty() => Some(
            "the Service has no endpoints: does its selector match any pod, and does the EndpointSlice port name match the Service port name?".to_owned(),
        ),
        (None, true) => Some("no endpoint is ready (or serving while terminating)".to_owned()),
        (None, false) => None,
    };
    json!({
        "host": route.host.to_string(),
        "path": route.path.as_ref().map(|p| p.path.clone()),
        "pathType": route.path.as_ref().map(|p| p.path_type),
        "ingress": route.ingress.key(),
        "object": route.ingress.to_string(),
        "service": backend.service.as_ref().map(|s| s.to_string()),
        "backends": (route.backends.len() > 1).then(|| route.backends.iter().map(|b| json!({
            "service": b.backend.service.as_ref().map(|s| s.to_string()),
            "weight": b.weight,
            "unavailable": b.backend.unavailable(),
        })).collect::<Vec<_>>()),
        "redirectToHttps": route.redirects_to_https(),
        "id": route.id.to_string(),
        "filters": route.policy.filters.iter().map(|f| f.name()).collect::<Vec<_>>(),
        "protectedBy": protection(&route.policy),
        "canary": route.canary.as_ref().map(|c| canary_json(c)),
        "endpoints": endpoints,
        "unavailable": why_unavailable,
    })
}

/// A canary's split: which Ingress and Service, and by what rules.
fn canary_json(c: &crate::model::canary::Canary) -> Value {
    let rule = &c.rule;
    json!({
        "ingress": c.ingress.key(),
        "service": c.backend.service.as_ref().map(|s| s.to_string()),
        "header": rule.header.as_ref().map(|h| h.as_str()),
        "headerValue": rule.header_value.as_ref().and_then(|v| v.to_str().ok()),
        "headerPattern": rule.header_pattern.as_ref().map(|p| p.as_str()),
        "cookie": rule.cookie,
        "weight": rule.weight,
        "weightTotal": rule.total(),
        "receivesTraffic": c.backend.unavailable().is_none(),
    })
}

/// What guards a route, by name and source: never a hash, a key or a password.
fn protection(policy: &crate::model::Policy) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(a) = &policy.access {
        if let Some(allow) = &a.allow {
            out.push(format!("allow {}", allow.ranges().join(",")));
        }
        if let Some(deny) = &a.deny {
            out.push(format!("deny {}", deny.ranges().join(",")));
        }
        if let Some(basic) = &a.basic {
            out.push(format!("basic-auth {}", basic.secret));
        }
        if let Some(external) = &a.external {
            out.push(format!("external-auth {}", external.url));
        }
        if a.satisfy_any {
            out.push("satisfy any".to_owned());
        }
    }
    if let Some(l) = &policy.limits {
        let mut parts = Vec::new();
        if let Some(n) = l.rps {
            parts.push(format!("{n} rps"));
        }
        if let Some(n) = l.rpm {
            parts.push(format!("{n} rpm"));
        }
        if let Some(n) = l.connections {
            parts.push(format!("{n} connections"));
        }
        out.push(format!("limit {}", parts.join(", ")));
    }
    out
}

/// What `/debug/routes` shows besides the routes.
fn rest_json(published: &Published) -> Value {
    let built = &published.built;
    let not_after = |secret| {
        let certs = &published.certs.by_secret;
        certs
            .iter()
            .find(|(s, _)| s == secret)
            .map(|(_, c)| rfc3339(c.not_after))
    };
    let tls: Vec<Value> = built
        .tls
        .iter()
        .map(|b| {
            json!({
                "host": b.host.to_string(),
                "secret": b.secret.key(),
                "ingress": b.ingress.key(),
                // null when the Secret is unusable and the default certificate is served
                "notAfter": not_after(&b.secret),
            })
        })
        .collect();
    let diagnostics: Vec<Value> = built
        .diagnostics
        .iter()
        .map(|d| {
            json!({
                "object": d.object.to_string(),
                "field": d.field,
                "reason": d.reason,
                "severity": d.severity,
            })
        })
        .collect();
    json!({
        "defaultBackend": built.table.default_route().map(|r| route_json(r)),
        "tls": tls,
        "passthrough": built.passthrough.hosts(),
        "clientCertificateHosts": built.client_auth.iter().map(|b| json!({
            "host": b.host.to_string(),
            "secret": b.secret.key(),
        })).collect::<Vec<_>>(),
        "diagnostics": diagnostics,
        "gatewayApi": gateway_json(&built.gateway),
    })
}

/// The Gateway API objects that are ours and their conditions, as the status writer puts
/// them (also in file mode, where nothing is written).
fn gateway_json(status: &crate::model::gateway::GatewayStatus) -> Value {
    let conditions = |list: &[crate::model::gateway::StatusCondition]| -> Vec<Value> {
        list.iter()
            .map(|c| {
                json!({
                    "type": c.type_,
                    "status": if c.status { "True" } else { "False" },
                    "reason": c.reason,
                    "message": c.message,
                })
            })
            .collect()
    };
    json!({
        "gatewayClasses": status.classes.iter().map(|c| json!({
            "name": c.name,
            "conditions": conditions(&c.conditions),
        })).collect::<Vec<_>>(),
        "gateways": status.gateways.iter().map(|g| json!({
            "gateway": g.object.key(),
            "conditions": conditions(&g.conditions),
            "listeners": g.listeners.iter().map(|l| json!({
                "name": l.name,
                "attachedRoutes": l.attached_routes,
                "conditions": conditions(&l.conditions),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "httpRoutes": status.routes.iter().map(|r| json!({
            "httpRoute": r.object.key(),
            "parents": r.parents.iter().map(|p| json!({
                "gateway": p.gateway.key(),
                "sectionName": p.section_name,
                "port": p.port,
                "conditions": conditions(&p.conditions),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
