//! Model benchmarks: `build` over 10,000 Ingresses (50,000 paths, 5,000 Services, 50,000
//! endpoints), plain and with ingress-nginx annotations on every Ingress; `lookup` across
//! 10,000 hosts; the memory the built table holds; and what one change costs the
//! incremental model beside them (an Ingress, and an HTTPRoute among 100, 2,000 or 100,000
//! routes of one Gateway, which rebuilds only the groups of the hosts it names before and
//! after: the three should cost about the same).
//! Targets (issues #2 and #12): build < 100 ms, with annotations too; lookup < 200 ns; table
//! < 100 MiB.
//!
//! `cargo bench --bench model`

// The same allocator as the binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use vestibule::model::fixtures::{ingress, service, slice};
use vestibule::model::incremental::{Change, Model};
use vestibule::model::{Object, Options, Snapshot, build};

const INGRESSES: usize = 10_000;
const PATHS_PER_INGRESS: usize = 5;
const SERVICES: usize = 5_000;
const ENDPOINTS_PER_SERVICE: usize = 10;

/// The annotations of annotated Ingress `i`: every one carries a regex rewrite (its host's
/// paths become regexes, one of them its own), the header and limit annotations, and a third
/// of them a redirect, an alias or custom errors; each an annotation Vestibule ignores.
fn annotations(i: usize) -> Vec<(&'static str, String)> {
    let mut a = vec![
        ("rewrite-target", "/$2".to_owned()),
        ("upstream-vhost", format!("svc{i}.internal")),
        ("x-forwarded-prefix", "/api".to_owned()),
        ("proxy-body-size", "8m".to_owned()),
        ("proxy-read-timeout", "120".to_owned()),
        ("proxy-next-upstream", "error timeout http_502".to_owned()),
        ("enable-cors", "true".to_owned()),
    ];
    match i % 3 {
        0 => a.push(("server-alias", format!("alias{i}.example.com"))),
        1 => a.push(("custom-http-errors", "404,503".to_owned())),
        _ => a.push(("app-root", "/app".to_owned())),
    }

    a
}

fn snapshot() -> Snapshot {
    snapshot_of(false)
}

fn snapshot_of(annotated: bool) -> Snapshot {
    let mut s = Snapshot::default();
    for i in 0..SERVICES {
        s.push(service(&format!("ns{}/svc{i}", i % 100)).port("http", 80));
        let mut sl =
            slice(&format!("ns{}/svc{i}-abc", i % 100), &format!("svc{i}")).port("http", 8080);
        for e in 0..ENDPOINTS_PER_SERVICE {
            sl = sl.ready(&format!("10.{}.{}.{}", i / 250, i % 250, e + 1));
        }
        s.push(sl);
    }
    for i in 0..INGRESSES {
        // Services live in namespace ns{i % 100}; keep each Ingress in its Services' namespace.
        let ns = i % 100;
        let svc = |k: usize| format!("svc{}", (i / 100 * 2 + k) % (SERVICES / 100) * 100 + ns);
        let mut ing = ingress(&format!("ns{ns}/ing{i}"))
            .created(i as i64)
            .host(&format!("host{i}.example.com"));
        if annotated {
            for (name, value) in annotations(i) {
                ing = ing.annotate(&format!("nginx.ingress.kubernetes.io/{name}"), &value);
            }
            ing = ing
                .prefix("/", &svc(0), 80)
                .implementation_specific("/api(/|$)(.*)", &svc(1), 80)
                .implementation_specific("/api/v1(/|$)(.*)", &svc(0), "http")
                .exact("/healthz", &svc(1), 80)
                .implementation_specific(&format!("/app{i}(/|$)(.*)"), &svc(0), 80);
        } else {
            ing = ing
                .prefix("/", &svc(0), 80)
                .prefix("/api", &svc(1), 80)
                .prefix("/api/v1", &svc(0), "http")
                .exact("/healthz", &svc(1), 80)
                .implementation_specific("/static", &svc(0), 80);
        }
        s.push(ing);
    }
    s.sorted()
}

/// HTTPRoute `j` (namespace `ns{j % 100}`, its own hostname under `*.routes.test`, two rules
/// to Service `svc{j % SERVICES}`, of the same namespace); `moved` gives it another hostname.
fn http_route(j: usize, moved: bool) -> Object {
    let host = match moved {
        false => format!("r{j}.routes.test"),
        true => format!("moved{j}.routes.test"),
    };
    let rule = |path: &str| {
        serde_json::json!({"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                           "backendRefs": [{"name": format!("svc{}", j % SERVICES), "port": 80}]})
    };
    let route: gateway_api::httproutes::HttpRoute = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("route{j}"), "namespace": format!("ns{}", j % 100)},
        "spec": {"parentRefs": [{"name": "edge", "namespace": "ns0"}], "hostnames": [host],
                 "rules": [rule("/"), rule("/api")]},
    }))
    .expect("an HTTPRoute");
    route.into()
}

/// The 10k Ingresses of [`snapshot`] with a Gateway (routes from every namespace) and
/// `routes` HTTPRoutes, loaded into the incremental model.
fn gateway_model(routes: usize) -> Model {
    let mut s = snapshot();
    let class: gateway_api::gatewayclasses::GatewayClass =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "vestibule"},
                           "spec": {"controllerName": Options::default().controller_name}}))
        .expect("a GatewayClass");
    let gateway: gateway_api::gateways::Gateway = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "edge", "namespace": "ns0"},
        "spec": {"gatewayClassName": "vestibule", "listeners": [{"name": "http",
                 "protocol": "HTTP", "port": 80, "hostname": "*.routes.test",
                 "allowedRoutes": {"namespaces": {"from": "All"}}}]},
    }))
    .expect("a Gateway");
    s.push(class);
    s.push(gateway);
    for j in 0..routes {
        s.push(http_route(j, false));
    }
    let mut model = Model::new(Options::default());
    model.load(&s.sorted());
    model
}

fn requests() -> Vec<(String, &'static str)> {
    let paths = [
        "/",
        "/api/v1/users/42",
        "/api/cart",
        "/healthz",
        "/static/app.js",
        "/nothing/here",
    ];
    (0..INGRESSES)
        .map(|i| (format!("host{i}.example.com"), paths[i % paths.len()]))
        .collect()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn benches(c: &mut Criterion) {
    let snapshot = snapshot();
    let options = Options::default();
    let before = rss_kib();
    let built = build(&snapshot, &options);
    let after = rss_kib();
    assert!(
        built.diagnostics.is_empty(),
        "{:?}",
        &built.diagnostics[..3.min(built.diagnostics.len())]
    );
    assert_eq!(built.table.routes().len(), INGRESSES * PATHS_PER_INGRESS);
    eprintln!(
        "table: {} routes over {} hosts; resident memory grew {:.1} MiB while building it",
        built.table.routes().len(),
        built.table.host_count(),
        (after.saturating_sub(before)) as f64 / 1024.0
    );

    let mut group = c.benchmark_group("model");
    group.sample_size(10);
    group.bench_function("build 10k ingresses / 50k paths / 50k endpoints", |b| {
        b.iter_with_large_drop(|| build(black_box(&snapshot), &options))
    });
    let annotated = snapshot_of(true);
    let built_annotated = build(&annotated, &options);
    let errors: Vec<_> = built_annotated
        .diagnostics
        .iter()
        .filter(|d| !d.is_warning())
        .collect();
    assert!(errors.is_empty(), "{:?}", &errors[..3.min(errors.len())]);
    drop(built_annotated);
    group.bench_function(
        "build 10k annotated ingresses (regex rewrites on every host)",
        |b| b.iter_with_large_drop(|| build(black_box(&annotated), &options)),
    );
    drop(annotated);
    let mut model = gateway_model(100);
    let mut moved = false;
    group.bench_function("one Ingress changes beside 10k (and a Gateway)", |b| {
        b.iter(|| {
            moved = !moved;
            let host = match moved {
                true => "moved.example.com",
                false => "host7.example.com",
            };
            let changed = ingress("ns7/ing7")
                .created(7)
                .host(host)
                .prefix("/", "svc7", 80)
                .build();
            model.apply(vec![Change::Put(changed.into())]).1
        })
    });
    for routes in [100, 2_000, 100_000] {
        let mut model = gateway_model(routes);
        let check = model.apply(vec![Change::Put(http_route(1, true))]).0;
        assert!(
            check
                .table
                .find("moved1.routes.test", "/", |_| true)
                .is_some()
        );
        let name = format!("one HTTPRoute changes among {routes} beside 10k Ingresses");
        group.bench_function(name, |b| {
            b.iter(|| {
                moved = !moved;
                model.apply(vec![Change::Put(http_route(1, moved))]).1
            })
        });
    }
    group.finish();

    let requests = requests();
    let mut i = 0;
    c.bench_function("lookup across 10k hosts", |b| {
        b.iter(|| {
            let (host, path) = &requests[i % requests.len()];
            i += 1;
            black_box(
                built
                    .table
                    .lookup(black_box(host), black_box(path))
                    .is_some(),
            )
        })
    });
}

criterion_group!(model, benches);
criterion_main!(model);
