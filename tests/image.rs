//! The container image: scripts/container-image.sh builds a static binary, puts it in a
//! FROM scratch image with podman (runc), runs it on the quickstart manifests and checks a
//! routed request. Needs podman and runc (the script installs them with apt-get as root).

use std::process::Command;

#[test]
fn the_image_runs_the_quickstart() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/container-image.sh");
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("run scripts/container-image.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("routed Host: blue.example to the blue backend"),
        "{text}"
    );
}
