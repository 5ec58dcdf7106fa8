//! A fake Kubernetes API server for tests, in-process, plain HTTP on 127.0.0.1:0: the parts of
//! the API that kube-rs reflectors rely on. Lists with `limit`/`continue` and a list
//! `resourceVersion`; one global, strictly increasing resourceVersion; `watch=true` streams of
//! ADDED/MODIFIED/DELETED replayed from a resourceVersion, with a 410 ERROR event (inside a 200
//! stream) for history that is gone; `timeoutSeconds`; label (`k=v`) and field (`type=`,
//! `metadata.name=`, `metadata.namespace=`) selectors; get, create (409 AlreadyExists), replace
//! (409 Conflict on a stale resourceVersion), delete, and JSON merge patch (on `/status`, only
//! the status changes). Tests change and inspect objects through [`ApiServer`].

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// The kinds served: (plural, apiVersion, kind, path prefix of the group/version).
const KINDS: &[(&str, &str, &str, &str)] = &[
    (
        "ingresses",
        "networking.k8s.io/v1",
        "Ingress",
        "/apis/networking.k8s.io/v1",
    ),
    (
        "ingressclasses",
        "networking.k8s.io/v1",
        "IngressClass",
        "/apis/networking.k8s.io/v1",
    ),
    ("services", "v1", "Service", "/api/v1"),
    (
        "endpointslices",
        "discovery.k8s.io/v1",
        "EndpointSlice",
        "/apis/discovery.k8s.io/v1",
    ),
    ("secrets", "v1", "Secret", "/api/v1"),
    ("configmaps", "v1", "ConfigMap", "/api/v1"),
    (
        "events",
        "events.k8s.io/v1",
        "Event",
        "/apis/events.k8s.io/v1",
    ),
    (
        "leases",
        "coordination.k8s.io/v1",
        "Lease",
        "/apis/coordination.k8s.io/v1",
    ),
    (
        "gatewayclasses",
        "gateway.networking.k8s.io/v1",
        "GatewayClass",
        "/apis/gateway.networking.k8s.io/v1",
    ),
    (
        "gateways",
        "gateway.networking.k8s.io/v1",
        "Gateway",
        "/apis/gateway.networking.k8s.io/v1",
    ),
    (
        "httproutes",
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        "/apis/gateway.networking.k8s.io/v1",
    ),
    (
        "referencegrants",
        "gateway.networking.k8s.io/v1",
        "ReferenceGrant",
        "/apis/gateway.networking.k8s.io/v1",
    ),
    // One storage, two versions, as the API server serves a CRD with both.
    (
        "referencegrants",
        "gateway.networking.k8s.io/v1beta1",
        "ReferenceGrant",
        "/apis/gateway.networking.k8s.io/v1beta1",
    ),
    ("namespaces", "v1", "Namespace", "/api/v1"),
];

/// Kinds that are cluster-scoped.
const CLUSTER_SCOPED: &[&str] = &["ingressclasses", "gatewayclasses", "namespaces"];

#[derive(Clone, Debug)]
struct Change {
    rv: u64,
    plural: &'static str,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct State {
    rv: u64,
    /// (plural, namespace, name) → object.
    objects: BTreeMap<(String, String, String), Value>,
    history: Vec<Change>,
    /// History before this resourceVersion is gone (a watch from older gets 410).
    compacted_before: u64,
    /// (plural, apiVersion) not served, as for a CRD that is not installed: 404.
    uninstalled: std::collections::BTreeSet<(String, String)>,
}

/// Handle to a running fake API server.
#[derive(Clone)]
pub struct ApiServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<Change>,
    /// Bumped to end every open watch (as an API server restart or compaction would).
    epoch: Arc<tokio::sync::watch::Sender<u64>>,
    /// The accept loop and the connections, aborted by [`ApiServer::restart`].
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

fn plural_of(kind: &str) -> (&'static str, &'static str, &'static str) {
    let (plural, api, kind, _) = KINDS
        .iter()
        .find(|k| k.2 == kind)
        .unwrap_or_else(|| panic!("unsupported kind {kind}"));
    (plural, api, kind)
}

impl ApiServer {
    pub async fn start() -> ApiServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (events, _) = broadcast::channel(4096);
        let epoch = Arc::new(tokio::sync::watch::channel(0).0);
        let server = ApiServer {
            addr,
            state: Arc::new(Mutex::new(State::default())),
            events,
            epoch,
            tasks: Arc::new(Mutex::new(Vec::new())),
        };
        server.serve(listener);
        server
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let handle = self.clone();
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handle = handle.clone();
                let connection = tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let handle = handle.clone();
                        async move { Ok::<_, Infallible>(handle.answer(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                tasks.lock().unwrap().push(connection);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Stops answering (every connection dropped, the port closed) for `down`, then serves
    /// again on the same address with the same objects, as a restarted API server would.
    pub async fn restart(&self, down: Duration) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
        tokio::time::sleep(down).await;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.serve(listener);
    }

    /// A kubeconfig file pointing at this server, without credentials.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"http://{}\"}}}}]\nusers: [{{name: test, user: {{}}}}]\ncontexts: [{{name: fake, context: {{cluster: fake, user: test, namespace: default}}}}]\ncurrent-context: fake\n",
            self.addr
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Creates or replaces an object given as YAML (one document).
    pub fn apply(&self, yaml: &str) {
        self.apply_value(serde_yaml_ng::from_str(yaml).unwrap());
    }

    /// Creates or replaces an object given as JSON.
    pub fn apply_value(&self, mut object: Value) {
        let (plural, api, _) = plural_of(object["kind"].as_str().unwrap());
        object["apiVersion"] = json!(api);
        let namespace = object["metadata"]["namespace"].as_str().map(str::to_owned);
        let namespace = if CLUSTER_SCOPED.contains(&plural) {
            String::new()
        } else {
            namespace.unwrap_or_else(|| "default".to_owned())
        };
        if !namespace.is_empty() {
            object["metadata"]["namespace"] = json!(namespace);
        }
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        let mut state = self.state.lock().unwrap();
        state.rv += 1;
        let rv = state.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = json!(format!("uid-{name}"));
        }
        let key = (plural.to_owned(), namespace, name);
        let existed = state.objects.insert(key, object.clone()).is_some();
        let change = Change {
            rv,
            plural,
            kind: if existed { "MODIFIED" } else { "ADDED" },
            object,
        };
        state.history.push(change.clone());
        let _ = self.events.send(change);
    }

    /// Applies every document of a multi-document YAML text.
    pub fn apply_all(&self, yaml: &str) {
        for doc in yaml.split("\n---\n") {
            if !doc.trim().is_empty() {
                self.apply(doc);
            }
        }
    }

    /// Stops or starts serving a kind at one API version, as removing or installing its CRD
    /// would (the objects stay stored).
    pub fn set_installed(&self, plural: &str, api_version: &str, installed: bool) {
        let key = (plural.to_owned(), api_version.to_owned());
        let mut state = self.state.lock().unwrap();
        match installed {
            true => state.uninstalled.remove(&key),
            false => state.uninstalled.insert(key),
        };
    }

    /// Deletes an object.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) {
        let (plural, _, _) = plural_of(kind);
        let mut state = self.state.lock().unwrap();
        let Some(mut object) =
            state
                .objects
                .remove(&(plural.to_owned(), namespace.to_owned(), name.to_owned()))
        else {
            return;
        };
        state.rv += 1;
        let rv = state.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let change = Change {
            rv,
            plural,
            kind: "DELETED",
            object,
        };
        state.history.push(change.clone());
        let _ = self.events.send(change);
    }

    /// Forgets the history so far and ends every open watch: a watch resumed from an older
    /// resourceVersion gets 410 Gone, and the client must list again.
    pub fn compact(&self) {
        {
            let mut state = self.state.lock().unwrap();
            state.compacted_before = state.rv + 1;
            state.history.clear();
        }
        self.epoch.send_modify(|e| *e += 1);
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
        let path = req.uri().path().to_owned();
        let query: BTreeMap<String, String> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), percent_decode(v)))
            .collect();
        let Some(target) = route(&path) else {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("no route {path}"),
            );
        };
        let key = (target.plural.to_owned(), target.api.to_owned());
        if self.state.lock().unwrap().uninstalled.contains(&key) {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("the server could not find the requested resource {path}"),
            );
        }
        let method = req.method().clone();
        let body: Value = req
            .into_body()
            .collect()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b.to_bytes()).ok())
            .unwrap_or(Value::Null);
        match (method.as_str(), target.name) {
            ("GET", None) => {
                let filter = Filter::new(target.plural, target.namespace, &query);
                if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
                    return self.watch(filter, &query);
                }
                self.list(filter, &query)
            }
            ("POST", None) => self.write(
                target.plural,
                target.namespace.unwrap_or_default(),
                None,
                Write::Create(body),
            ),
            ("GET", Some(name)) => {
                self.get(target.plural, &target.namespace.unwrap_or_default(), &name)
            }
            ("PUT", Some(name)) => self.write(
                target.plural,
                target.namespace.unwrap_or_default(),
                Some(name),
                Write::Replace(body),
            ),
            ("PATCH", Some(name)) => {
                let patch = if target.status {
                    json!({"status": body["status"].clone()})
                } else {
                    body
                };
                self.write(
                    target.plural,
                    target.namespace.unwrap_or_default(),
                    Some(name),
                    Write::Merge(patch),
                )
            }
            ("DELETE", Some(name)) => {
                let (_, _, kind, _) = KINDS.iter().find(|k| k.0 == target.plural).unwrap();
                self.delete(kind, &target.namespace.unwrap_or_default(), &name);
                status(StatusCode::OK, "", "deleted")
            }
            _ => status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                method.as_str(),
            ),
        }
    }

    fn get(
        &self,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
        let state = self.state.lock().unwrap();
        match state
            .objects
            .get(&(plural.to_owned(), namespace.to_owned(), name.to_owned()))
        {
            Some(o) => json_response(StatusCode::OK, o),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("{plural} {name} not found"),
            ),
        }
    }

    fn write(
        &self,
        plural: &'static str,
        namespace: String,
        name: Option<String>,
        write: Write,
    ) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
        let (_, api, kind, _) = KINDS.iter().find(|k| k.0 == plural).unwrap();
        let mut state = self.state.lock().unwrap();
        let key_name = match (&name, &write) {
            (Some(n), _) => n.clone(),
            (None, Write::Create(o)) => match o["metadata"]["name"].as_str() {
                Some(n) => n.to_owned(),
                None => match o["metadata"]["generateName"].as_str() {
                    Some(prefix) => format!("{prefix}{}", state.rv + 1),
                    None => {
                        return status(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "Invalid",
                            "metadata.name is required",
                        );
                    }
                },
            },
            (None, _) => {
                return status(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "no name",
                );
            }
        };
        let key = (plural.to_owned(), namespace.clone(), key_name.clone());
        let existing = state.objects.get(&key).cloned();
        let mut object = match (write, existing) {
            (Write::Create(_), Some(_)) => {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    &format!("{plural} {key_name} already exists"),
                );
            }
            (Write::Create(o), None) => o,
            (Write::Replace(_) | Write::ReplaceStatus(_) | Write::Merge(_), None) => {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("{plural} {key_name} not found"),
                );
            }
            (Write::Replace(o), Some(old)) => {
                if let Some(conflict) = stale(&o, &old) {
                    return conflict;
                }
                o
            }
            (Write::ReplaceStatus(o), Some(mut old)) => {
                if let Some(conflict) = stale(&o, &old) {
                    return conflict;
                }
                // The status subresource ignores the spec.
                old["status"] = o["status"].clone();
                old
            }
            (Write::Merge(patch), Some(mut old)) => {
                merge(&mut old, &patch);
                old
            }
        };
        state.rv += 1;
        let rv = state.rv;
        object["apiVersion"] = json!(api);
        object["kind"] = json!(kind);
        object["metadata"]["name"] = json!(key_name);
        if !namespace.is_empty() {
            object["metadata"]["namespace"] = json!(namespace);
        }
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = json!(format!("uid-{rv}"));
        }
        let existed = state.objects.insert(key, object.clone()).is_some();
        let change = Change {
            rv,
            plural,
            kind: if existed { "MODIFIED" } else { "ADDED" },
            object: object.clone(),
        };
        state.history.push(change.clone());
        let _ = self.events.send(change);
        json_response(
            if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            },
            &object,
        )
    }

    /// Every stored object of a kind, in namespace/name order.
    pub fn objects(&self, kind: &str) -> Vec<Value> {
        let (plural, _, _) = plural_of(kind);
        let state = self.state.lock().unwrap();
        state
            .objects
            .iter()
            .filter(|((p, _, _), _)| p == plural)
            .map(|(_, o)| o.clone())
            .collect()
    }

    fn list(
        &self,
        filter: Filter,
        query: &BTreeMap<String, String>,
    ) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
        let state = self.state.lock().unwrap();
        // The continue token is the key of the page's last object: each page starts right
        // after it (a 100k-object list costs what it holds, not pages × objects).
        let after: Option<(String, String, String)> = query
            .get("continue")
            .and_then(|c| c.split_once('/'))
            .map(|(ns, name)| (filter.plural.to_owned(), ns.to_owned(), name.to_owned()));
        let limit: usize = query
            .get("limit")
            .and_then(|l| l.parse().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        use std::ops::Bound;
        let start = match after {
            Some(key) => Bound::Excluded(key),
            None => Bound::Included((filter.plural.to_owned(), String::new(), String::new())),
        };
        let mut matching = state
            .objects
            .range((start, Bound::Unbounded))
            .take_while(|((p, _, _), _)| p == filter.plural)
            .filter(|(_, o)| filter.matches(o));
        let page: Vec<(&(String, String, String), &Value)> =
            matching.by_ref().take(limit).collect();
        let more = matching.next().is_some();
        let mut metadata = json!({"resourceVersion": state.rv.to_string()});
        if more && let Some(((_, ns, name), _)) = page.last() {
            metadata["continue"] = json!(format!("{ns}/{name}"));
        }
        let (_, api, kind, _) = KINDS.iter().find(|k| k.0 == filter.plural).unwrap();
        // Written straight from the stored objects: `json!` would copy each one first.
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct List<'a> {
            api_version: &'a str,
            kind: String,
            metadata: Value,
            items: Vec<&'a Value>,
        }
        let list = List {
            api_version: api,
            kind: format!("{kind}List"),
            metadata,
            items: page.into_iter().map(|(_, o)| o).collect(),
        };
        let body = serde_json::to_vec(&list).expect("a list serializes");
        let mut r = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        r
    }

    fn watch(
        &self,
        filter: Filter,
        query: &BTreeMap<String, String>,
    ) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
        let from: u64 = query
            .get("resourceVersion")
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        let timeout = Duration::from_secs(
            query
                .get("timeoutSeconds")
                .and_then(|t| t.parse().ok())
                .unwrap_or(300),
        );
        let (replay, live, gone) = {
            let state = self.state.lock().unwrap();
            let gone = from != 0 && from < state.compacted_before;
            // History is in resourceVersion order.
            let at = state.history.partition_point(|c| c.rv <= from);
            let replay: Vec<Change> = state.history[at..].to_vec();
            (replay, self.events.subscribe(), gone)
        };
        if gone {
            let error = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired", "code": 410, "message": "too old resource version"}});
            let line = Bytes::from(format!("{error}\n"));
            return stream_response(futures_util::stream::iter(vec![line]).boxed());
        }
        let last_replayed = replay.last().map_or(from, |c| c.rv);
        let plural = filter.plural;
        let f1 = filter.clone();
        let replayed =
            futures_util::stream::iter(replay).filter(move |c| std::future::ready(f1.accepts(c)));
        let live = tokio_stream_from(live)
            .filter(move |c| std::future::ready(c.rv > last_replayed && filter.accepts(c)));
        let mut epoch = self.epoch.subscribe();
        let ended = async move {
            tokio::select! {
                _ = tokio::time::sleep(timeout) => {}
                _ = epoch.changed() => {}
            }
        };
        // With allowWatchBookmarks, a BOOKMARK (only apiVersion, kind and resourceVersion, as
        // the real server sends) tells the client how far the replay went.
        let bookmark = query.get("allowWatchBookmarks").is_some_and(|b| b == "true").then(|| {
            let (_, api, kind, _) = KINDS.iter().find(|k| k.0 == plural).unwrap();
            Bytes::from(format!("{}\n", json!({"type": "BOOKMARK", "object": {"apiVersion": api, "kind": kind, "metadata": {"resourceVersion": last_replayed.to_string()}}})))
        });
        let events =
            replayed
                .map(|c| Bytes::from(format!("{}\n", json!({"type": c.kind, "object": c.object}))))
                .chain(futures_util::stream::iter(bookmark))
                .chain(live.map(|c| {
                    Bytes::from(format!("{}\n", json!({"type": c.kind, "object": c.object})))
                }))
                .take_until(ended)
                .boxed();
        stream_response(events)
    }
}

fn tokio_stream_from(
    rx: broadcast::Receiver<Change>,
) -> futures_util::stream::BoxStream<'static, Change> {
    // A lagging receiver ends the watch; the client then resumes, as from a real server.
    futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.ok().map(|c| (c, rx)) },
    )
    .boxed()
}

#[derive(Clone)]
struct Filter {
    plural: &'static str,
    namespace: Option<String>,
    labels: Vec<(String, String)>,
    fields: Vec<(String, String)>,
}

impl Filter {
    fn new(
        plural: &'static str,
        namespace: Option<String>,
        query: &BTreeMap<String, String>,
    ) -> Filter {
        let pairs = |key: &str| -> Vec<(String, String)> {
            query
                .get(key)
                .map(|s| {
                    s.split(',')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.trim_end_matches('=').to_owned(), v.to_owned()))
                        .collect()
                })
                .unwrap_or_default()
        };
        Filter {
            plural,
            namespace,
            labels: pairs("labelSelector"),
            fields: pairs("fieldSelector"),
        }
    }

    fn matches(&self, o: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && o["metadata"]["namespace"].as_str() != Some(ns)
        {
            return false;
        }
        let labels_ok = self
            .labels
            .iter()
            .all(|(k, v)| o["metadata"]["labels"][k].as_str() == Some(v));
        let fields_ok = self.fields.iter().all(|(k, v)| {
            let got = match k.as_str() {
                "type" => o["type"].as_str(),
                "metadata.name" => o["metadata"]["name"].as_str(),
                "metadata.namespace" => o["metadata"]["namespace"].as_str(),
                _ => None,
            };
            got == Some(v.as_str())
        });
        labels_ok && fields_ok
    }

    fn accepts(&self, c: &Change) -> bool {
        c.plural == self.plural && self.matches(&c.object)
    }
}

/// 409 Conflict when a write names a resourceVersion other than the stored one.
fn stale(sent: &Value, stored: &Value) -> Option<Response<UnsyncBoxBody<Bytes, Infallible>>> {
    let version = |o: &Value| o["metadata"]["resourceVersion"].as_str().map(str::to_owned);
    let sent = version(sent)?;
    (Some(sent) != version(stored)).then(|| {
        status(
            StatusCode::CONFLICT,
            "Conflict",
            "the object has been modified; please apply your changes to the latest version",
        )
    })
}

enum Write {
    Create(Value),
    Replace(Value),
    /// PUT on `/status`: only the status changes.
    ReplaceStatus(Value),
    Merge(Value),
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

struct Target {
    plural: &'static str,
    api: &'static str,
    namespace: Option<String>,
    name: Option<String>,
    /// The `/status` subresource.
    status: bool,
}

/// `/api/v1/services`, `/api/v1/namespaces/ns/services[/name[/status]]` (and the same under
/// `/apis/...`), `/apis/networking.k8s.io/v1/ingressclasses[/name]`.
fn route(path: &str) -> Option<Target> {
    for (plural, api, _, prefix) in KINDS {
        let Some(rest) = path.strip_prefix(prefix) else {
            continue;
        };
        let (namespace, rest) = match rest.strip_prefix("/namespaces/") {
            Some(ns_rest) => {
                let (ns, tail) = ns_rest.split_once('/')?;
                (Some(ns.to_owned()), format!("/{tail}"))
            }
            None => (None, rest.to_owned()),
        };
        let Some(rest) = rest.strip_prefix(&format!("/{plural}")) else {
            continue;
        };
        if !(rest.is_empty() || rest.starts_with('/')) {
            continue;
        }
        let mut parts = rest.split('/').filter(|p| !p.is_empty());
        let name = parts.next().map(str::to_owned);
        let status = parts.next() == Some("status");
        return Some(Target {
            plural,
            api,
            namespace,
            name,
            status,
        });
    }
    None
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_response(code: StatusCode, body: &Value) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())).boxed_unsync());
    *r.status_mut() = code;
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

fn status(
    code: StatusCode,
    reason: &str,
    message: &str,
) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
    json_response(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code.as_u16()}),
    )
}

fn stream_response(
    lines: futures_util::stream::BoxStream<'static, Bytes>,
) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
    let frames = lines.map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut r = Response::new(BodyExt::boxed_unsync(StreamBody::new(frames)));
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}
