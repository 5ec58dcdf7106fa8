//! Cluster mode against a fake API server: reflectors list and watch, routing follows changes,
//! a forced relist (410 Gone) and a broken Ingress do not disturb the rest.

mod support;

use http::StatusCode;
use std::time::Duration;
use support::apiserver::ApiServer;
use support::*;

const WITHIN: Duration = Duration::from_secs(3);

fn class() -> &'static str {
    "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: vestibule}\nspec: {controller: vestibule.dev/ingress-controller}\n"
}

/// A fake API server holding our IngressClass, Service `web` (an echo backend) and Ingress
/// `site` routing site.test to it.
async fn seeded() -> ApiServer {
    let api = ApiServer::start().await;
    let web = backend("web").await;
    api.apply(class());
    api.apply_all(&service_yaml("web", &[(web, None)]));
    api.apply(&ingress_yaml(
        "site",
        &[("site.test", "Prefix", "/", "web")],
    ));
    api
}

async fn cluster(extra: &[&str]) -> (ApiServer, tempfile::TempDir, Vestibule) {
    let api = seeded().await;
    let other = backend("other").await;
    api.apply_all(&service_yaml("other", &[(other, None)]));
    // Objects outside the watched kinds or filtered out must not matter.
    api.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: opaque, namespace: test}\ntype: Opaque\nstringData: {password: hunter2}\n");
    let dir = manifest_dir();
    let kubeconfig = api.kubeconfig(dir.path());
    let v = Vestibule::start_with(extra, &[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
    (api, dir, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_follows_objects_created_changed_and_deleted() {
    let (api, _dir, v) = cluster(&[]).await;
    assert_eq!(
        get(v.admin, "admin", "/readyz").await.status,
        StatusCode::OK,
        "ready once every kind was listed"
    );
    assert_eq!(get(v.http, "site.test", "/").await.backend(), "web");
    // Created.
    api.apply(&ingress_yaml(
        "more",
        &[("more.test", "Prefix", "/", "other")],
    ));
    v.eventually("more.test", "/", WITHIN, |a| a.backend() == "other")
        .await;
    // Changed: the Ingress now sends site.test to the other Service.
    api.apply(&ingress_yaml(
        "site",
        &[("site.test", "Prefix", "/", "other")],
    ));
    v.eventually("site.test", "/", WITHIN, |a| a.backend() == "other")
        .await;
    // Endpoints moved: the other Service's slice now points at a dead port: 502, not stale.
    api.apply_all(&service_yaml("other", &[(dead_port(), None)]));
    v.eventually("more.test", "/", WITHIN, |a| {
        a.status == StatusCode::BAD_GATEWAY
    })
    .await;
    // Deleted.
    api.delete("Ingress", "test", "more");
    v.eventually("more.test", "/", WITHIN, |a| {
        a.status == StatusCode::NOT_FOUND
    })
    .await;
    assert!(!v.logs().join("\n").contains("hunter2"));
    // No status to write (no --publish-*, no GatewayClass of ours): no Lease either.
    assert!(
        api.objects("Lease").is_empty(),
        "{:?}",
        api.objects("Lease")
    );
}

// configmap.md, watched in cluster mode; an Opaque Secret an Ingress names (auth-secret) is
// read, and follows its changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configmap_and_auth_secrets_are_watched() {
    let (api, _dir, v) = cluster(&["--configmap", "test/vestibule"]).await;
    api.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: vestibule, namespace: test}\ndata: {whitelist-source-range: 10.0.0.0/8}\n");
    v.eventually("site.test", "/", WITHIN, |a| {
        a.status == StatusCode::FORBIDDEN
    })
    .await;
    // Another ConfigMap of the namespace is not ours.
    api.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other, namespace: test}\ndata: {whitelist-source-range: 127.0.0.1/32}\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        get(v.http, "site.test", "/").await.status,
        StatusCode::FORBIDDEN
    );
    api.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: vestibule, namespace: test}\ndata: {whitelist-source-range: 127.0.0.0/8}\n");
    v.eventually("site.test", "/", WITHIN, |a| a.backend() == "web")
        .await;

    // htpasswd -nbm foo password
    let users = |user: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: users, namespace: test}}\ntype: Opaque\nstringData:\n  auth: \"{user}:$apr1$63JlJ2NH$smE0mnB5h3tDri0zkpWXt1\"\n"
        )
    };
    api.apply(&users("foo"));
    let protected = ingress_yaml("site", &[("site.test", "Prefix", "/", "web")]).replacen(
        "namespace: test}",
        "namespace: test, annotations: {nginx.ingress.kubernetes.io/auth-type: basic, nginx.ingress.kubernetes.io/auth-secret: users}}",
        1,
    );
    api.apply(&protected);
    v.eventually("site.test", "/", WITHIN, |a| {
        a.status == StatusCode::UNAUTHORIZED
    })
    .await;
    let with = |user: &str| {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:password"));
        http::Request::get(format!("http://{}/", v.http))
            .header("host", "site.test")
            .header("authorization", format!("Basic {token}"))
            .body(http_body_util::Full::default())
            .unwrap()
    };
    assert_eq!(send(v.http, with("foo")).await.status, StatusCode::OK);
    api.apply(&users("bar"));
    let deadline = std::time::Instant::now() + WITHIN;
    while send(v.http, with("foo")).await.status == StatusCode::OK {
        assert!(
            std::time::Instant::now() < deadline,
            "the changed Secret is not in force"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(send(v.http, with("bar")).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_relist_keeps_serving_and_catches_up() {
    let (api, _dir, v) = cluster(&[]).await;
    assert_eq!(get(v.http, "site.test", "/").await.backend(), "web");
    // History is compacted: the next watch from an old resourceVersion gets 410 and relists.
    api.compact();
    api.apply(&ingress_yaml(
        "after",
        &[("after.test", "Prefix", "/", "web")],
    ));
    v.eventually("after.test", "/", WITHIN, |a| a.backend() == "web")
        .await;
    assert_eq!(get(v.http, "site.test", "/").await.backend(), "web");
    let logs = v.logs().join("\n");
    assert!(
        logs.contains("watch failed") && logs.contains("Expired"),
        "the watch saw 410 Gone and relisted:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_namespace_limits_what_is_served() {
    let (api, _dir, v) = cluster(&["--watch-namespace", "test"]).await;
    assert_eq!(get(v.http, "site.test", "/").await.backend(), "web");
    let elsewhere = ingress_yaml("elsewhere", &[("elsewhere.test", "Prefix", "/", "web")])
        .replace("namespace: test", "namespace: prod");
    api.apply(&elsewhere);
    api.apply(&ingress_yaml(
        "here",
        &[("here.test", "Prefix", "/", "web")],
    ));
    v.eventually("here.test", "/", WITHIN, |a| a.backend() == "web")
        .await;
    assert_eq!(
        get(v.http, "elsewhere.test", "/").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_ingress_costs_only_its_own_routes() {
    let (api, _dir, v) = cluster(&[]).await;
    api.apply(&ingress_yaml(
        "broken",
        &[
            ("*.*.bad.test", "Prefix", "/", "web"),
            ("fine.test", "Prefix", "/", "web"),
        ],
    ));
    v.eventually("fine.test", "/", WITHIN, |a| a.backend() == "web")
        .await;
    assert_eq!(get(v.http, "site.test", "/").await.backend(), "web");
    let diagnostics =
        get(v.admin, "admin", "/debug/routes").await.json()["diagnostics"].to_string();
    assert!(
        diagnostics.contains("Ingress test/broken") && diagnostics.contains("spec.rules[0].host"),
        "{diagnostics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_ingress_gets_one_event() {
    let (api, _dir, v) = cluster(&[]).await;
    api.apply(&ingress_yaml(
        "broken",
        &[("site2.test", "Prefix", "/", "missing-service")],
    ));
    v.eventually("site2.test", "/", WITHIN, |a| {
        a.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    // More rebuilds: the same diagnostic must not be reported again.
    for i in 0..3 {
        api.apply(&ingress_yaml(
            "churn",
            &[(&format!("c{i}.test"), "Prefix", "/", "web")],
        ));
        v.eventually(&format!("c{i}.test"), "/", WITHIN, |a| a.backend() == "web")
            .await;
    }
    let mut events = Vec::new();
    for _ in 0..100 {
        events = api.objects("Event");
        if !events.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "InvalidConfiguration");
    assert_eq!(event["regarding"]["kind"], "Ingress");
    assert_eq!(event["regarding"]["name"], "broken");
    assert_eq!(event["regarding"]["namespace"], "test");
    assert!(
        event["regarding"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty()),
        "{event}"
    );
    let note = event["note"].as_str().unwrap();
    assert!(note.starts_with("spec.rules[0].http.paths[0].backend.service.name: Service test/missing-service not found"), "{note}");
    assert_eq!(
        get(v.http, "site.test", "/").await.backend(),
        "web",
        "the rest keeps serving"
    );
}

fn status_of(api: &ApiServer, name: &str) -> serde_json::Value {
    api.objects("Ingress")
        .into_iter()
        .find(|i| i["metadata"]["name"] == name)
        .map(|i| i["status"]["loadBalancer"]["ingress"].clone())
        .unwrap_or_default()
}

async fn until(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_follows_the_published_service_and_skips_other_classes() {
    let api = seeded().await;
    let theirs = ingress_yaml("theirs", &[("theirs.test", "Prefix", "/", "web")])
        .replace("ingressClassName: vestibule", "ingressClassName: nginx");
    api.apply(&theirs);
    api.apply("apiVersion: v1\nkind: Service\nmetadata: {name: vestibule, namespace: ingress}\nspec: {type: LoadBalancer, ports: [{name: http, port: 80}]}\nstatus: {loadBalancer: {ingress: [{ip: 198.51.100.7}]}}\n");
    let dir = manifest_dir();
    let kubeconfig = api.kubeconfig(dir.path());
    let env = [
        ("KUBECONFIG", kubeconfig.to_str().unwrap()),
        ("POD_NAME", "solo"),
        ("POD_NAMESPACE", "ingress"),
    ];
    let mut v = Vestibule::start_with(&["--publish-service", "ingress/vestibule"], &env);
    assert!(
        until(Duration::from_secs(10), || status_of(&api, "site")
            == serde_json::json!([{"ip": "198.51.100.7"}]))
        .await,
        "{}",
        status_of(&api, "site")
    );
    // The LoadBalancer gets a host name instead: followed.
    api.apply("apiVersion: v1\nkind: Service\nmetadata: {name: vestibule, namespace: ingress}\nspec: {type: LoadBalancer, ports: [{name: http, port: 80}]}\nstatus: {loadBalancer: {ingress: [{hostname: lb.example.net}]}}\n");
    assert!(
        until(Duration::from_secs(10), || status_of(&api, "site")
            == serde_json::json!([{"hostname": "lb.example.net"}]))
        .await
    );
    assert!(
        status_of(&api, "theirs").is_null(),
        "another class's Ingress is not touched"
    );
    // The Lease names this replica.
    let lease = api.objects("Lease");
    assert_eq!(lease[0]["metadata"]["name"], "vestibule-leader");
    assert_eq!(lease[0]["metadata"]["namespace"], "ingress");
    assert_eq!(lease[0]["spec"]["holderIdentity"], "solo");
    // Shutting down with no other replica left clears the address.
    v.terminate();
    assert_eq!(v.wait_exit(Duration::from_secs(20)), Some(0));
    assert!(
        status_of(&api, "site")
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{}",
        status_of(&api, "site")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_writes_status_and_another_takes_over() {
    let api = seeded().await;
    let dir = manifest_dir();
    let kubeconfig = api.kubeconfig(dir.path());
    let args = ["--publish-status-address", "203.0.113.10,lb.example.org"];
    let start = |name: &str| {
        Vestibule::start_with(
            &args,
            &[
                ("KUBECONFIG", kubeconfig.to_str().unwrap()),
                ("POD_NAME", name),
                ("POD_NAMESPACE", "ingress"),
            ],
        )
    };
    let mut a = start("replica-a");
    let mut b = start("replica-b");
    let want = serde_json::json!([{"ip": "203.0.113.10"}, {"hostname": "lb.example.org"}]);
    assert!(
        until(Duration::from_secs(10), || status_of(&api, "site") == want).await,
        "{}",
        status_of(&api, "site")
    );
    let holder = api.objects("Lease")[0]["spec"]["holderIdentity"]
        .as_str()
        .unwrap()
        .to_owned();
    let writers = |v: &Vestibule| {
        v.logs()
            .iter()
            .filter(|l| l.contains("wrote Ingress status"))
            .count()
    };
    let leading = |v: &Vestibule| {
        v.logs()
            .iter()
            .any(|l| l.contains("leader election") && l.contains("\"leading\":true"))
    };
    let (leader, follower) = if holder == "replica-a" {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert!(
        leading(leader) && !leading(follower),
        "exactly one replica leads"
    );
    assert!(writers(leader) >= 1);
    assert_eq!(writers(follower), 0, "only the leader writes status");
    // Both serve traffic.
    assert_eq!(get(leader.http, "site.test", "/").await.backend(), "web");
    assert_eq!(get(follower.http, "site.test", "/").await.backend(), "web");
    // The leader dies without releasing the Lease; the other takes over once it expires.
    leader.kill();
    let started = std::time::Instant::now();
    api.apply(&ingress_yaml(
        "later",
        &[("later.test", "Prefix", "/", "web")],
    ));
    assert!(
        until(Duration::from_secs(20), || status_of(&api, "later") == want).await,
        "the new leader writes status"
    );
    eprintln!("took over after {:?}", started.elapsed());
    assert!(leading(follower));
    assert_ne!(
        api.objects("Lease")[0]["spec"]["holderIdentity"],
        holder.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_flows_while_the_api_server_restarts() {
    let (api, _dir, v) = cluster(&[]).await;
    let http = v.http;
    let load = tokio::spawn(async move {
        let mut failures = 0;
        for _ in 0..60 {
            if get(http, "site.test", "/").await.backend() != "web" {
                failures += 1;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        failures
    });
    api.restart(Duration::from_millis(700)).await;
    assert_eq!(
        load.await.unwrap(),
        0,
        "the last table keeps serving while the API server is away"
    );
    // After the restart the watches resume and changes are followed again.
    api.apply(&ingress_yaml(
        "back",
        &[("back.test", "Prefix", "/", "web")],
    ));
    v.eventually("back.test", "/", Duration::from_secs(15), |a| {
        a.backend() == "web"
    })
    .await;
}

/// The HTTPRoute's `status.parents`, as written.
fn parents_of(api: &ApiServer, name: &str) -> Vec<serde_json::Value> {
    api.objects("HTTPRoute")
        .into_iter()
        .find(|r| r["metadata"]["name"] == name)
        .and_then(|r| r["status"]["parents"].as_array().cloned())
        .unwrap_or_default()
}

fn condition<'a>(conditions: &'a serde_json::Value, type_: &str) -> &'a serde_json::Value {
    conditions
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or(&serde_json::Value::Null)
}

fn gateway_of(api: &ApiServer, name: &str) -> serde_json::Value {
    api.objects("Gateway")
        .into_iter()
        .find(|g| g["metadata"]["name"] == name)
        .unwrap_or_default()
}

// The Gateway API in cluster mode (issue #13): a missing CRD is skipped and picked up when it
// appears; GatewayClass, Gateway and HTTPRoute status are written by the leader with the
// spec's conditions and reasons; a ReferenceGrant appearing and disappearing, and a route
// moving between Gateways, are followed; another controller's parent entry is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_objects_are_watched_and_their_status_written() {
    let api = ApiServer::start().await;
    api.set_installed("httproutes", "gateway.networking.k8s.io/v1", false);
    let web = backend("web").await;
    api.apply_all(&service_yaml("web", &[(web, None)]));
    let shared = backend("shared").await;
    api.apply_all(
        &service_yaml("shared", &[(shared, None)])
            .replace("namespace: test", "namespace: backends"),
    );
    api.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: test, labels: {team: a}}\n");
    api.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: infra}\n");
    api.apply("apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: vestibule, generation: 1}\nspec: {controllerName: vestibule.dev/ingress-controller}\n");
    api.apply("apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: theirs}\nspec: {controllerName: example.com/other}\n");
    api.apply(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: infra, generation: 3}
spec:
  gatewayClassName: vestibule
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: a}}}}}
  - {name: tcp, port: 9000, protocol: TCP}
",
    );
    api.apply(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: second, namespace: test}
spec:
  gatewayClassName: vestibule
  listeners: [{name: http, port: 80, protocol: HTTP, hostname: second.test}]
",
    );
    let dir = manifest_dir();
    let kubeconfig = api.kubeconfig(dir.path());
    let env = [
        ("KUBECONFIG", kubeconfig.to_str().unwrap()),
        ("POD_NAME", "solo"),
    ];
    let v = Vestibule::start_with(&["--publish-status-address", "192.0.2.10"], &env);
    assert!(
        v.logs()
            .join("\n")
            .contains("skipping a kind until it can be listed"),
        "one line for the missing CRD"
    );
    // GatewayClass: ours accepted with the features; theirs untouched.
    assert!(
        until(Duration::from_secs(10), || {
            let classes = api.objects("GatewayClass");
            let ours = classes
                .iter()
                .find(|c| c["metadata"]["name"] == "vestibule");
            ours.is_some_and(|c| {
                condition(&c["status"]["conditions"], "Accepted")["status"] == "True"
            })
        })
        .await
    );
    let classes = api.objects("GatewayClass");
    let ours = classes
        .iter()
        .find(|c| c["metadata"]["name"] == "vestibule")
        .unwrap();
    assert_eq!(
        condition(&ours["status"]["conditions"], "Accepted")["observedGeneration"],
        1
    );
    let features = ours["status"]["supportedFeatures"].as_array().unwrap();
    assert!(features.iter().any(|f| f["name"] == "HTTPRoute"));
    let theirs = classes
        .iter()
        .find(|c| c["metadata"]["name"] == "theirs")
        .unwrap();
    assert!(theirs["status"].is_null());
    // Gateway: the published address, Accepted with a listener that is not served.
    assert!(
        until(Duration::from_secs(10), || {
            !gateway_of(&api, "edge")["status"]["addresses"].is_null()
        })
        .await
    );
    let edge = gateway_of(&api, "edge");
    assert_eq!(
        edge["status"]["addresses"],
        serde_json::json!([{"type": "IPAddress", "value": "192.0.2.10"}])
    );
    let accepted = condition(&edge["status"]["conditions"], "Accepted");
    assert_eq!(
        (accepted["status"].as_str(), accepted["reason"].as_str()),
        (Some("True"), Some("ListenersNotValid"))
    );
    assert_eq!(accepted["observedGeneration"], 3);
    assert_eq!(
        condition(&edge["status"]["conditions"], "Programmed")["status"],
        "True"
    );
    let listeners = edge["status"]["listeners"].as_array().unwrap();
    assert_eq!(
        condition(&listeners[1]["conditions"], "Accepted")["reason"],
        "UnsupportedProtocol"
    );
    assert_eq!(listeners[0]["attachedRoutes"], 0);
    assert_eq!(
        listeners[0]["supportedKinds"],
        serde_json::json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}])
    );

    // The HTTPRoute CRD appears; a route with another controller's parent entry attaches.
    api.set_installed("httproutes", "gateway.networking.k8s.io/v1", true);
    let route = |parent: &str, parent_ns: &str, host: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: site, namespace: test, generation: 2}}
spec:
  parentRefs: [{{name: {parent}, namespace: {parent_ns}}}]
  hostnames: [{host}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /shared}}}}]
    backendRefs: [{{name: shared, namespace: backends, port: 80}}]
  - backendRefs: [{{name: web, port: 80}}]
status:
  parents:
  - parentRef: {{name: mesh}}
    controllerName: example.com/mesh
    conditions: [{{type: Accepted, status: \"True\", reason: Accepted, message: theirs, lastTransitionTime: \"2026-01-01T00:00:00Z\"}}]
"
        )
    };
    api.apply(&route("edge", "infra", "gw.test"));
    v.eventually("gw.test", "/", Duration::from_secs(15), |a| {
        a.backend() == "web"
    })
    .await;
    assert!(
        until(Duration::from_secs(10), || parents_of(&api, "site").len()
            == 2)
        .await,
        "{:?}",
        parents_of(&api, "site")
    );
    let parents = parents_of(&api, "site");
    assert_eq!(
        parents[0]["controllerName"], "example.com/mesh",
        "another controller's entry is kept"
    );
    let ours = &parents[1];
    assert_eq!(ours["controllerName"], "vestibule.dev/ingress-controller");
    assert_eq!(ours["parentRef"]["name"], "edge");
    assert_eq!(ours["parentRef"]["namespace"], "infra");
    assert_eq!(condition(&ours["conditions"], "Accepted")["status"], "True");
    assert_eq!(
        condition(&ours["conditions"], "Accepted")["observedGeneration"],
        2
    );
    let refs = condition(&ours["conditions"], "ResolvedRefs");
    assert_eq!(
        (refs["status"].as_str(), refs["reason"].as_str()),
        (Some("False"), Some("RefNotPermitted"))
    );
    assert_eq!(
        get(v.http, "gw.test", "/shared").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert!(
        until(
            Duration::from_secs(10),
            || gateway_of(&api, "edge")["status"]["listeners"][0]["attachedRoutes"] == 1
        )
        .await
    );

    // A ReferenceGrant (v1beta1) appears: the backend resolves; it goes away: 500 again.
    let grant = "apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: test-to-backends, namespace: backends}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: test}]
  to: [{group: \"\", kind: Service}]
";
    api.apply(grant);
    v.eventually("gw.test", "/shared", Duration::from_secs(10), |a| {
        a.backend() == "shared"
    })
    .await;
    let resolved = || {
        let p = parents_of(&api, "site");
        p.get(1)
            .map(|o| condition(&o["conditions"], "ResolvedRefs")["status"].clone())
    };
    assert!(
        until(Duration::from_secs(10), || resolved()
            == Some("True".into()))
        .await
    );
    api.delete("ReferenceGrant", "backends", "test-to-backends");
    v.eventually("gw.test", "/shared", Duration::from_secs(10), |a| {
        a.status == StatusCode::INTERNAL_SERVER_ERROR
    })
    .await;
    assert!(
        until(Duration::from_secs(10), || resolved()
            == Some("False".into()))
        .await
    );

    // The route moves to the other Gateway: traffic and status follow, the old Gateway's
    // listener no longer counts it.
    api.apply(&route("second", "test", "second.test"));
    v.eventually("second.test", "/", Duration::from_secs(10), |a| {
        a.backend() == "web"
    })
    .await;
    v.eventually("gw.test", "/", Duration::from_secs(10), |a| {
        a.status == StatusCode::NOT_FOUND
    })
    .await;
    assert!(
        until(Duration::from_secs(10), || {
            let p = parents_of(&api, "site");
            p.len() == 2 && p[1]["parentRef"]["name"] == "second"
        })
        .await,
        "{:?}",
        parents_of(&api, "site")
    );
    assert!(
        until(
            Duration::from_secs(10),
            || gateway_of(&api, "edge")["status"]["listeners"][0]["attachedRoutes"] == 0
        )
        .await
    );
    // Refused by the listener: a namespace the selector does not take.
    api.apply(&route("edge", "infra", "gw.test").replace(
        "namespace: test, generation: 2",
        "namespace: infra, generation: 2",
    ));
    assert!(
        until(Duration::from_secs(10), || {
            let routes = api.objects("HTTPRoute");
            let r = routes
                .iter()
                .find(|r| r["metadata"]["namespace"] == "infra");
            r.and_then(|r| r["status"]["parents"].as_array().cloned())
                .is_some_and(|p| {
                    p.iter().any(|p| {
                        condition(&p["conditions"], "Accepted")["reason"] == "NotAllowedByListeners"
                    })
                })
        })
        .await
    );
}

// Issue #16: an EndpointSlice change alone is published into the backends without a
// rebuild (ingress-nginx's balancer takes endpoints without a reload); a slice with a
// problem still gets a full build and its diagnostic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_change_is_published_without_a_rebuild() {
    let (api, _dir, v) = cluster(&[]).await;
    let moved = backend("moved").await;
    let count =
        |text: &str, name: &str, labels: &str| metric_value(text, name, labels).unwrap_or(0.0);
    let before = v.metrics().await;
    let slices_only = |yaml: String| {
        for doc in yaml
            .split("---\n")
            .filter(|d| d.contains("kind: EndpointSlice"))
        {
            api.apply(doc);
        }
    };
    slices_only(service_yaml("web", &[(moved, None)]));
    v.eventually("site.test", "/", WITHIN, |a| a.backend() == "moved")
        .await;
    let after = v.metrics().await;
    let reloads = "vestibule_config_reloads_total";
    assert_eq!(
        count(&after, reloads, "result=\"success\""),
        count(&before, reloads, "result=\"success\""),
        "no rebuild"
    );
    assert!(count(&after, "vestibule_endpoint_updates_total", "") >= 1.0);
    assert!(
        count(
            &after,
            "vestibule_change_to_serving_seconds_count",
            "kind=\"EndpointSlice\""
        ) >= 1.0
    );
    assert_eq!(
        count(&after, "vestibule_endpoints", "state=\"ready\""),
        1.0,
        "web's one endpoint, counted once"
    );
    // A broken slice: rebuilt, diagnosed, and the rest still served.
    api.apply(&format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: web-0, namespace: test, labels: {{kubernetes.io/service-name: web}}}}\naddressType: IPv4\nports: [{{name: http, port: 0}}]\nendpoints: [{{addresses: [\"{}\"]}}]\n",
        moved.ip()
    ));
    let diagnosed = || async {
        let d = get(v.admin, "admin", "/debug/routes").await.json();
        d["diagnostics"]
            .as_array()
            .is_some_and(|l| l.iter().any(|d| d["object"] == "EndpointSlice test/web-0"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !diagnosed().await {
        assert!(
            std::time::Instant::now() < deadline,
            "the broken slice is diagnosed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rebuilt = v.metrics().await;
    assert!(
        count(&rebuilt, reloads, "result=\"success\"")
            > count(&after, reloads, "result=\"success\"")
    );
    assert_eq!(
        get(v.http, "more.test", "/").await.status,
        StatusCode::NOT_FOUND
    );
}

/// How many tables were published after rebuilding `what` ("all", "1 Ingresses", ...).
fn rebuilds(v: &Vestibule, what: &str) -> usize {
    let needle = format!(r#""rebuilt":"{what}""#);
    v.logs().iter().filter(|l| l.contains(&needle)).count()
}

// Issue #16: the Gateway API objects are rebuilt together with the Ingresses of their hosts,
// not with every Ingress: a Gateway whose hosts no Ingress has rebuilds none, an HTTPRoute on
// an Ingress's host rebuilds that Ingress with it, and so does a Service the route names;
// none of these is a full build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_changes_rebuild_only_what_they_touch() {
    let (api, _dir, v) = cluster(&[]).await;
    let rebuilt = |what: &str| rebuilds(&v, what);
    let full = rebuilt("all");
    api.apply(&ingress_yaml(
        "more",
        &[("more.test", "Prefix", "/", "web")],
    ));
    v.eventually("more.test", "/", WITHIN, |a| a.backend() == "web")
        .await;
    let none = rebuilt("0 Ingresses");
    api.apply("apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: vestibule}\nspec: {controllerName: vestibule.dev/ingress-controller}\n");
    api.apply("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: edge, namespace: test}\nspec:\n  gatewayClassName: vestibule\n  listeners: [{name: http, port: 80, protocol: HTTP}]\n");
    assert!(
        until(WITHIN, || rebuilt("0 Ingresses") > none).await,
        "{:?}",
        v.logs()
    );
    let one = rebuilt("1 Ingresses");
    api.apply("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: site, namespace: test}\nspec:\n  parentRefs: [{name: edge}]\n  hostnames: [site.test]\n  rules: [{matches: [{path: {type: PathPrefix, value: /gw}}], backendRefs: [{name: other, port: 80}]}]\n");
    v.eventually("site.test", "/gw", WITHIN, |a| a.backend() == "other")
        .await;
    assert_eq!(get(v.http, "site.test", "/").await.backend(), "web");
    assert!(rebuilt("1 Ingresses") > one, "{:?}", v.logs());
    // Writing the route's status is not a change to it: nothing is rebuilt for it.
    assert!(
        until(WITHIN, || !parents_of(&api, "site").is_empty()).await,
        "the route's status is written"
    );
    let published = || {
        let logs = v.logs();
        logs.iter()
            .filter(|l| l.contains("published routing table"))
            .count()
    };
    let before = published();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(published(), before, "{:?}", v.logs());
    // The Service the route names goes: the route's rule answers 500, the Ingress still serves.
    let one = rebuilt("1 Ingresses");
    api.delete("Service", "test", "other");
    v.eventually("site.test", "/gw", WITHIN, |a| {
        a.status == StatusCode::INTERNAL_SERVER_ERROR
    })
    .await;
    assert!(rebuilt("1 Ingresses") > one, "{:?}", v.logs());
    assert_eq!(get(v.http, "site.test", "/").await.backend(), "web");
    assert_eq!(get(v.http, "more.test", "/").await.backend(), "web");
    assert_eq!(rebuilt("all"), full, "no full build: {:?}", v.logs());
}

// Issue #16: in cluster mode an Ingress, Service or Secret change is a partial build (the log
// says how many Ingresses it rebuilt) with the same outcome as a full one; an IngressClass
// change is a full build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_service_and_secret_changes_rebuild_only_what_they_touch() {
    let (api, _dir, v) = cluster(&[]).await;
    let rebuilt = |what: &str| rebuilds(&v, what);
    let partial_before = rebuilt("1 Ingresses");
    api.apply(&ingress_yaml(
        "more",
        &[("more.test", "Prefix", "/", "other")],
    ));
    v.eventually("more.test", "/", WITHIN, |a| a.backend() == "other")
        .await;
    assert!(rebuilt("1 Ingresses") > partial_before, "{:?}", v.logs());
    // The Service goes: only its Ingress is rebuilt, and answers 503.
    api.delete("Service", "test", "other");
    v.eventually("more.test", "/", WITHIN, |a| {
        a.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert_eq!(get(v.http, "site.test", "/").await.backend(), "web");
    // A TLS Secret an Ingress names turns up: that Ingress is rebuilt, its diagnostic goes.
    api.apply("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: secure, namespace: test}\nspec:\n  ingressClassName: vestibule\n  tls: [{hosts: [secure.test], secretName: cert}]\n  rules: [{host: secure.test, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}]}}]\n");
    v.eventually("secure.test", "/", WITHIN, |a| {
        a.status == StatusCode::PERMANENT_REDIRECT
    })
    .await;
    let resolved = || {
        v.logs()
            .iter()
            .any(|l| l.contains("diagnostic resolved") && l.contains("Ingress test/secure"))
    };
    assert!(!resolved());
    let partial_before = rebuilt("1 Ingresses");
    api.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: cert, namespace: test}\ntype: kubernetes.io/tls\nstringData: {tls.crt: not a certificate, tls.key: not a key}\n");
    assert!(until(WITHIN, resolved).await, "{:?}", v.logs());
    assert!(rebuilt("1 Ingresses") > partial_before);
    let full_before = rebuilt("all");
    api.apply("apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: spare}\nspec: {controller: example.com/other}\n");
    assert!(
        until(WITHIN, || rebuilt("all") > full_before).await,
        "an IngressClass is a full build: {:?}",
        v.logs()
    );
    assert_eq!(get(v.http, "site.test", "/").await.backend(), "web");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_api_server_pages_a_list_without_gaps_or_repeats() {
    let api = ApiServer::start().await;
    for i in 0..5 {
        api.apply(&ingress_yaml(
            &format!("i{i}"),
            &[("p.test", "Prefix", "/", "web")],
        ));
    }
    let mut names = Vec::new();
    let mut next = String::new();
    let mut pages = 0;
    loop {
        let query = match next.as_str() {
            "" => "limit=2".to_owned(),
            token => format!("limit=2&continue={token}"),
        };
        let path = format!("/apis/networking.k8s.io/v1/ingresses?{query}");
        let list = get(api.addr, "api", &path).await.json();
        pages += 1;
        for item in list["items"].as_array().expect("items") {
            names.push(item["metadata"]["name"].as_str().unwrap().to_owned());
        }
        match list["metadata"]["continue"].as_str() {
            Some(token) => next = token.to_owned(),
            None => break,
        }
    }
    assert_eq!(names, ["i0", "i1", "i2", "i3", "i4"]);
    assert_eq!(pages, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_of_several_pages_serves_every_object() {
    // kube-rs lists 500 objects a page.
    let api = seeded().await;
    for i in 0..1_100 {
        api.apply(&ingress_yaml(
            &format!("app{i}"),
            &[(&format!("app{i}.test"), "Prefix", "/", "web")],
        ));
    }
    let dir = manifest_dir();
    let kubeconfig = api.kubeconfig(dir.path());
    let v = Vestibule::start_with(&[], &[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
    for i in [0, 499, 500, 501, 999, 1_000, 1_099] {
        let host = format!("app{i}.test");
        assert_eq!(get(v.http, &host, "/").await.backend(), "web", "{host}");
    }
}
