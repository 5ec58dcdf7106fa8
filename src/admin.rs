//! The admin listener: `/healthz`, `/readyz` (ready after the first publish, not while
//! draining), `/metrics` (Prometheus) and `/debug/routes` (the live table as JSON, with why a
//! route has no endpoints).

use crate::metrics::Metrics;
use crate::model::Route;
use crate::state::{Published, Shared};
use crate::tls::certs::rfc3339;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
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

fn answer(req: &Request<Incoming>, shared: &Shared, metrics: &Metrics) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if shared.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/debug/routes" => {
            let body =
                serde_json::to_vec_pretty(&routes_json(&shared.current())).unwrap_or_default();
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            r
        }
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(metrics.encode())));
            let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
            r.headers_mut()
                .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
            r
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
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

/// The published table as `/debug/routes` shows it.
pub fn routes_json(published: &Published) -> Value {
    let built = &published.built;
    let routes: Vec<Value> = built.table.routes().iter().map(|r| route_json(r)).collect();
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
        "generation": published.generation,
        "routes": routes,
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
