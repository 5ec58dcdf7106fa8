//! The command line: `vestibule validate` and flag errors.

mod support;

use std::process::Command;
use support::repo;

fn vestibule(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_accepts_the_bundled_examples() {
    for dir in ["examples/quickstart", "examples/compose/manifests"] {
        let path = repo(dir);
        let (code, out, err) = vestibule(&["validate", path.to_str().unwrap()]);
        assert_eq!((code, out.as_str()), (0, ""), "{dir}: {err}");
    }
}

#[test]
fn validate_prints_file_object_field_reason_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  ingressClassName: vestibule
  rules:
    - host: shop.example
      http:
        paths:
          - path: /
            pathType: Prefix
            backend: {service: {name: web, port: {name: http}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{name: grpc, port: 9000}]}
",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("broken.yml"),
        "kind: Service\napiVersion: v1\nmetadata: [\n",
    )
    .unwrap();
    let (code, out, _) = vestibule(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with(&format!("{}:4:", dir.path().join("broken.yml").display())),
        "{out}"
    );
    assert_eq!(
        lines[1],
        format!(
            "{}: Ingress shop/web: spec.rules[0].http.paths[0].backend.service.port.name: Service shop/web has no port http; requests get 503",
            bad.display()
        )
    );
    // The class flags apply to validate too: under another class nothing is ours, nothing is wrong.
    let (code, _, _) = vestibule(&[
        "validate",
        "--ingress-class",
        "other",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
}

#[test]
fn validate_names_both_files_of_a_duplicate_and_refuses_deep_nesting() {
    let dir = tempfile::tempdir().unwrap();
    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{name: http, port: 80}]}\n";
    std::fs::write(dir.path().join("a.yaml"), service).unwrap();
    std::fs::write(dir.path().join("b.yaml"), service).unwrap();
    // 200 KB of nesting: refused before the YAML parser sees it.
    let deep = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: deep}}\nspec: {{a: {}1{}}}\n",
        "{a: ".repeat(40_000),
        "}".repeat(40_000)
    );
    std::fs::write(dir.path().join("deep.yaml"), deep).unwrap();
    let (code, out, _) = vestibule(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(
        lines[0],
        format!(
            "{}:4: nesting deeper than 100; not read",
            dir.path().join("deep.yaml").display()
        )
    );
    assert_eq!(
        lines[1],
        format!(
            "{}: Service shop/web is already defined in {}; this copy is ignored",
            dir.path().join("b.yaml").display(),
            dir.path().join("a.yaml").display()
        )
    );
}

#[test]
fn bad_flags_exit_2_with_a_message() {
    let rows: &[(&[&str], &str)] = &[
        (
            &["--http-addr", "nonsense", "--manifests", "."],
            "--http-addr",
        ),
        (
            &["--default-backend", "no-namespace:80", "--manifests", "."],
            "namespace/name:port",
        ),
        (
            &["--shutdown-grace", "soon", "--manifests", "."],
            "--shutdown-grace",
        ),
        (&["--manifests", "/does/not/exist"], "/does/not/exist"),
        (
            &["--manifests", ".", "--log-level", "=?=bad"],
            "--log-level",
        ),
    ];
    for (args, mentions) in rows {
        let (code, _, err) = vestibule(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains(mentions),
            "{args:?} should mention {mentions}: {err}"
        );
    }
}

#[test]
fn without_manifests_it_needs_a_cluster() {
    let out = Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args([
            "--http-addr",
            "127.0.0.1:0",
            "--https-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Kubernetes API"), "{err}");
}

#[test]
fn every_flag_has_an_environment_variable() {
    let (code, out, _) = vestibule(&["--help"]);
    assert_eq!(code, 0);
    let flags = out
        .lines()
        .filter(|l| {
            l.trim_start().starts_with("--") && !l.contains("--help") && !l.contains("--version")
        })
        .count();
    let envs = out.matches("[env: VESTIBULE_").count();
    assert!(flags >= 12, "{out}");
    assert_eq!(flags, envs, "{out}");
}

#[test]
fn validate_reports_ignored_annotations_as_warnings_and_strict_fails_on_them() {
    // The migration report of README "Migrating from ingress-nginx".
    let path = repo("examples/ingress-nginx");
    let args = [
        "validate",
        path.to_str().unwrap(),
        "--ingress-class",
        "nginx",
    ];
    let (code, out, err) = vestibule(&args);
    assert_eq!(code, 0, "warnings alone pass: {out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains(": warning: Ingress shop/storefront: metadata.annotations[")),
        "{out}"
    );
    assert!(
        out.contains("configuration-snippet]: ignored: snippets are refused by design"),
        "{out}"
    );
    assert!(
        out.contains("proxy-buffering]: ignored: not supported"),
        "{out}"
    );
    assert!(err.contains("0 errors, 2 warnings"), "{err}");
    let strict: Vec<&str> = args.iter().copied().chain(["--strict"]).collect();
    assert_eq!(vestibule(&strict).0, 1);
    // An annotation that does not parse is an error: exit 1, printed before the warnings.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("i.yaml"),
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/proxy-body-size: 15r
    nginx.ingress.kubernetes.io/proxy-buffering: \"on\"
spec:
  ingressClassName: vestibule
  defaultBackend: {service: {name: web, port: {number: 80}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{name: http, port: 80}]}
",
    )
    .unwrap();
    let (code, out, _) = vestibule(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("proxy-body-size]: \"15r\" is not a size"),
        "{out}"
    );
    assert!(
        lines[1].contains(": warning: ") && lines[1].contains("proxy-buffering"),
        "{out}"
    );
}

/// The binary turns transparent huge pages off for itself (see `main`): with them, reading a
/// 100k-app tree spent most of its time zeroing pages.
#[test]
fn the_binary_runs_without_transparent_huge_pages() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["--manifests", repo("examples/quickstart").to_str().unwrap()])
        .args(["--http-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0"])
        .args(["--admin-addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let started = std::time::Instant::now();
    let mut seen = String::new();
    while started.elapsed() < std::time::Duration::from_secs(10) {
        seen = std::fs::read_to_string(&status).unwrap_or_default();
        if seen.contains("THP_enabled:\t0") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = seen.lines().find(|l| l.starts_with("THP_enabled"));
    assert_eq!(line, Some("THP_enabled:\t0"), "{seen}");
}
