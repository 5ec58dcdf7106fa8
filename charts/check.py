#!/usr/bin/env python3
"""Checks the Helm chart with the official Helm SDK (helm-python-sdk: lint and render, as
`helm lint` and `helm template`) and validates the rendered manifests against the Kubernetes
1.33 schemas (kubernetes-validate --strict), for several value sets. Also: the values schema
rejects unknown and mistyped values, the ClusterRole grants exactly what cluster mode uses, and
gatewayAPI.* adds the Gateway API's RBAC, flags and GatewayClass.
Exits non-zero on any problem. Run through charts/check.sh, which installs the tools."""

import json
import os
import subprocess
import sys
import tempfile

import helm_python as helm
import yaml

CHART = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vestibule")
KUBE = "1.33.0"

VALUE_SETS = {
    "defaults": {},
    "daemonset": {"kind": "DaemonSet"},
    "hpa": {"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 6}},
    "default-class": {"ingressClass": {"default": True}},
    "nodeport": {"service": {"type": "NodePort", "nodePorts": {"http": 30080, "https": 30443}}},
    "loadbalancer-options": {"service": {"externalTrafficPolicy": "Local", "loadBalancerClass": "example.com/lb",
                                         "loadBalancerSourceRanges": ["10.0.0.0/8"], "annotations": {"a": "b"}}},
    "clusterip-watch-namespace": {"service": {"type": "ClusterIP"}, "controller": {"watchNamespace": "shop"}},
    "configmap-proxy-protocol": {"controller": {"proxyProtocol": True, "sslPassthrough": True,
                                                "config": {"use-forwarded-headers": "true", "proxy-body-size": "8m"}}},
    "gateway-api": {"gatewayAPI": {"enabled": True}},
    "gateway-api-no-class": {"gatewayAPI": {"enabled": True, "gatewayClass": {"create": False}}},
}

# What the ClusterRole may grant: (apiGroup, resource) -> verbs.
ALLOWED = {
    ("networking.k8s.io", "ingresses"): {"list", "watch"},
    ("networking.k8s.io", "ingressclasses"): {"list", "watch"},
    ("networking.k8s.io", "ingresses/status"): {"update"},
    ("", "services"): {"list", "watch"},
    ("", "secrets"): {"list", "watch"},
    ("", "configmaps"): {"list", "watch"},
    ("discovery.k8s.io", "endpointslices"): {"list", "watch"},
    ("events.k8s.io", "events"): {"create", "patch"},
}

# What the ClusterRole adds with gatewayAPI.enabled.
GATEWAY_API = {
    ("gateway.networking.k8s.io", "gatewayclasses"): {"list", "watch"},
    ("gateway.networking.k8s.io", "gateways"): {"list", "watch"},
    ("gateway.networking.k8s.io", "httproutes"): {"list", "watch"},
    ("gateway.networking.k8s.io", "referencegrants"): {"list", "watch"},
    ("gateway.networking.k8s.io", "gatewayclasses/status"): {"update"},
    ("gateway.networking.k8s.io", "gateways/status"): {"update"},
    ("gateway.networking.k8s.io", "httproutes/status"): {"update"},
    ("", "namespaces"): {"list", "watch"},
}

REJECTED = {
    "unknown key": {"replicas": 3},
    "unknown nested key": {"service": {"typ": "NodePort"}},
    "mistyped": {"replicaCount": "two"},
    "bad enum": {"kind": "StatefulSet"},
    "bad service type": {"service": {"type": "ExternalName"}},
    "unknown gatewayAPI key": {"gatewayAPI": {"enable": True}},
}

problems = []


def fail(message):
    problems.append(message)
    print(f"FAIL {message}")


def documents(rendered):
    for path, text in sorted(rendered.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                yield path, doc


def check_rbac(name, docs, gateway_api):
    roles = [d for _, d in docs if d.get("kind") == "ClusterRole"]
    if len(roles) != 1:
        return fail(f"{name}: expected one ClusterRole, found {len(roles)}")
    granted = {}
    for rule in roles[0].get("rules", []):
        if rule.get("resourceNames") or rule.get("nonResourceURLs"):
            fail(f"{name}: unexpected rule {rule}")
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                granted.setdefault((group, resource), set()).update(rule.get("verbs", []))
    expected = {**ALLOWED, **(GATEWAY_API if gateway_api else {})}
    if granted != expected:
        fail(f"{name}: ClusterRole grants {granted}, expected exactly {expected}")


def check_gateway_api(name, values, docs, args):
    """The Gateway API flags and the GatewayClass follow gatewayAPI.*; the GatewayClass (a
    CRD kind the Kubernetes schemas do not know) is checked here instead."""
    enabled = values.get("gatewayAPI", {}).get("enabled", False)
    create = values.get("gatewayAPI", {}).get("gatewayClass", {}).get("create", True)
    if f"--gateway-api={'true' if enabled else 'false'}" not in args:
        fail(f"{name}: --gateway-api does not follow gatewayAPI.enabled: {args}")
    if enabled and not {"--gateway-http-port=80", "--gateway-https-port=443"} <= set(args):
        fail(f"{name}: the Gateway listener ports are not the Service's: {args}")
    classes = [d for _, d in docs if d.get("kind") == "GatewayClass"]
    want = 1 if enabled and create else 0
    if len(classes) != want:
        return fail(f"{name}: {len(classes)} GatewayClass(es), expected {want}")
    for c in classes:
        if c.get("apiVersion") != "gateway.networking.k8s.io/v1" or \
                c.get("spec", {}).get("controllerName") != "vestibule.dev/ingress-controller" or \
                set(c.get("spec", {})) != {"controllerName"}:
            fail(f"{name}: GatewayClass is not ours: {c}")


def main():
    chart = helm.Chart.load(CHART)
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        app_version = yaml.safe_load(f)["appVersion"]
    with open(os.path.join(os.path.dirname(CHART), "..", "Cargo.toml")) as f:
        crate_version = next(l.split('"')[1] for l in f if l.startswith("version"))
    if app_version != crate_version:
        fail(f"Chart.yaml appVersion {app_version} != crate version {crate_version}")
    for name, values in VALUE_SETS.items():
        report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE}")
        for m in report.get("messages", []):
            if m.get("severity", 0) >= 2:
                fail(f"{name}: helm lint: {m.get('path')}: {m.get('error')}")
        for e in report.get("errors", []):
            fail(f"{name}: helm lint: {e}")
        try:
            rendered = chart.render(values, name="vestibule", namespace="ingress", is_install=True)
        except Exception as e:  # the SDK raises its own error types
            fail(f"{name}: render: {e}")
            continue
        docs = list(documents(rendered))
        kinds = sorted({d["kind"] for _, d in docs})
        with tempfile.TemporaryDirectory() as tmp:
            files = []
            for i, (path, doc) in enumerate(docs):
                if doc.get("apiVersion", "").startswith("gateway.networking.k8s.io/"):
                    continue
                file = os.path.join(tmp, f"{i:02d}-{os.path.basename(path)}")
                with open(file, "w") as f:
                    yaml.safe_dump(doc, f)
                files.append(file)
            result = subprocess.run(["kubernetes-validate", "--strict", "--quiet", "-k", KUBE, *files],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                fail(f"{name}: kubernetes-validate:\n{result.stdout}{result.stderr}")
        check_rbac(name, docs, values.get("gatewayAPI", {}).get("enabled", False))
        workload = next(d for _, d in docs if d["kind"] in ("Deployment", "DaemonSet"))
        args = workload["spec"]["template"]["spec"]["containers"][0]["args"]
        check_gateway_api(name, values, docs, args)
        if "--publish-service=ingress/vestibule" not in args:
            fail(f"{name}: --publish-service is not the chart's Service: {args}")
        print(f"ok   {name}: {len(docs)} objects ({', '.join(kinds)})")
    monitor = chart.render({"metrics": {"serviceMonitor": {"enabled": True}}}, name="vestibule", namespace="ingress")
    if not any(d.get("kind") == "ServiceMonitor" for _, d in documents(monitor)):
        fail("serviceMonitor.enabled renders no ServiceMonitor")
    for name, values in REJECTED.items():
        try:
            chart.validate_schema(values)
            fail(f"values.schema.json accepts {name}: {json.dumps(values)}")
        except Exception:
            print(f"ok   schema rejects {name}")
    if problems:
        print(f"{len(problems)} problem(s)")
        sys.exit(1)
    print("chart checks passed")


if __name__ == "__main__":
    main()
