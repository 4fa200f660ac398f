"""The Helm chart, rendered and linted by Helm's own engine (libhelm through
helm-python-sdk), every manifest validated against the Kubernetes API schemas."""

import base64
import copy
import json
import os
import re
import subprocess

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from conftest import BIN, REPO

CHART = REPO / "helm" / "roomcast"
KUBE_VERSION = "1.30.0"

PRODUCTION = {
    "replicaCount": 4,
    "image": {"repository": "registry.example.com/roomcast", "tag": "1.2.3"},
    "existingSecret": {
        "name": "roomcast-prod",
        "keys": {"databaseUrl": "db-url", "redisUrl": "redis-url",
                 "jwtSecret": "jwt", "sessionSecret": "express-session"},
    },
    "config": {"corsOrigins": "https://app.example.com", "otlpEndpoint": "http://otel-collector:4318",
               "extraEnv": {"ROOMCAST_ROOMS_MAX_PER_SOCKET": "50"}},
    "drain": {"preStopSleepSeconds": 10, "shutdownTimeoutSeconds": 40, "terminationGracePeriodSeconds": 60},
    "ingress": {"enabled": True, "host": "rt.example.com", "tlsSecretName": "rt-tls",
                "affinity": {"cookieSameSite": "None"}},
    "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12,
                    "targetCPUUtilizationPercentage": 65, "targetConnectionsPerPod": 5000},
    "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "topologySpreadConstraints": [{
        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "roomcast"}},
    }],
}

MINIMAL = {
    "replicaCount": 1,
    "podDisruptionBudget": {"enabled": False},
    "serviceAccount": {"create": False},
    "migrations": {"mode": "initContainer"},
    "resources": {},
}

VALUE_SETS = {"default": {}, "production": PRODUCTION, "minimal": MINIMAL}


@pytest.fixture(scope="module")
def chart():
    with helm.Chart.load(str(CHART)) as c:
        yield c


def render(chart, values):
    out = chart.render(values=values, name="rc", namespace="rt", is_install=True)
    docs = []
    for path, text in out.items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return docs, out


def by_kind(docs):
    kinds = {}
    for d in docs:
        kinds.setdefault(d["kind"], []).append(d)
    return kinds


def check_service_monitor(sm, svc):
    """ServiceMonitor is a CRD (no API schema here): its shape, checked by hand."""
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(sm) == {"apiVersion", "kind", "metadata", "spec"}
    assert sm["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]
    [ep] = sm["spec"]["endpoints"]
    assert ep["path"] == "/metrics"
    assert ep["port"] in {p["name"] for p in svc["spec"]["ports"]}
    for key in ("interval", "scrapeTimeout"):
        assert isinstance(ep[key], str) and ep[key].endswith("s")


@pytest.mark.parametrize("name", VALUE_SETS)
def test_lint_is_clean(name):
    report = helm.lint(str(CHART), copy.deepcopy(VALUE_SETS[name]), strict=True, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == []
    # Severity 1 is informational (e.g. "icon is recommended"); warnings fail.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("name", VALUE_SETS)
def test_renders_valid_manifests(chart, name):
    docs, _ = render(chart, copy.deepcopy(VALUE_SETS[name]))
    kinds = by_kind(docs)
    assert "Secret" not in kinds, "the chart must only reference Secrets"
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":
            check_service_monitor(doc, kinds["Service"][0])
            continue
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_pod_contract(chart, name):
    values = VALUE_SETS[name]
    docs, _ = render(chart, copy.deepcopy(values))
    kinds = by_kind(docs)
    [dep] = kinds["Deployment"]
    [cm] = kinds["ConfigMap"]
    pod = dep["spec"]["template"]["spec"]
    [c] = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    # Probes on the separate ops port, which the node is told to listen on.
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "ops"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
    assert cm["data"]["ROOMCAST_OPS_LISTEN"] == f"0.0.0.0:{ports['ops']}"
    assert cm["data"]["ROOMCAST_LISTEN"] == f"0.0.0.0:{ports['http']}"
    assert ports["ops"] != ports["http"]
    # Drain arithmetic in the rendered objects, not only in values.
    sleep = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
    shutdown = int(cm["data"]["ROOMCAST_SHUTDOWN_TIMEOUT"].rstrip("s"))
    assert shutdown < pod["terminationGracePeriodSeconds"] - sleep
    # Non-root, read-only root filesystem, nothing extra.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # Secrets by reference, from the named Secret.
    env = {e["name"]: e for e in c["env"]}
    secret = values.get("existingSecret", {}).get("name", "roomcast")
    for var in ("DATABASE_URL", "REDIS_URL"):
        assert env[var]["valueFrom"]["secretKeyRef"]["name"] == secret
    assert env["ROOMCAST_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert c["envFrom"] == [{"configMapRef": {"name": cm["metadata"]["name"]}}]
    assert dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


def test_default_values_leave_optional_parts_off(chart):
    kinds = by_kind(render(chart, {})[0])
    for kind in ("HorizontalPodAutoscaler", "ServiceMonitor", "Ingress"):
        assert kind not in kinds, kind
    [job] = kinds["Job"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    assert kinds["Deployment"][0]["spec"]["replicas"] == 3
    assert "initContainers" not in kinds["Deployment"][0]["spec"]["template"]["spec"]


def test_production_values(chart):
    docs, out = render(chart, copy.deepcopy(PRODUCTION))
    kinds = by_kind(docs)
    [ing] = kinds["Ingress"]
    ann = ing["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert ann["nginx.ingress.kubernetes.io/session-cookie-name"] == "ROOMCAST_AFFINITY"
    assert ann["nginx.ingress.kubernetes.io/session-cookie-samesite"] == "None"
    assert int(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > 45  # > pingInterval + pingTimeout
    assert ing["spec"]["tls"] == [{"hosts": ["rt.example.com"], "secretName": "rt-tls"}]
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] == {"name": "http"}

    [hpa] = kinds["HorizontalPodAutoscaler"]
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["target"]["averageUtilization"] == 65
    assert metrics["Pods"]["pods"]["metric"]["name"] == "roomcast_connections"
    assert metrics["Pods"]["pods"]["target"] == {"type": "AverageValue", "averageValue": "5000"}
    # The HPA owns the replica count.
    assert "replicas" not in kinds["Deployment"][0]["spec"]

    [pdb] = kinds["PodDisruptionBudget"]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == kinds["Service"][0]["spec"]["selector"]
    assert kinds["ServiceMonitor"][0]["metadata"]["labels"]["release"] == "prometheus"

    c = kinds["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["ROOMCAST_JWT_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "roomcast-prod", "key": "jwt"}
    assert env["ROOMCAST_SESSION_SECRET"]["valueFrom"]["secretKeyRef"]["key"] == "express-session"
    assert c["image"] == "registry.example.com/roomcast:1.2.3"
    cm = kinds["ConfigMap"][0]["data"]
    assert cm["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert cm["ROOMCAST_ROOMS_MAX_PER_SOCKET"] == "50"
    assert cm["ROOMCAST_SHUTDOWN_TIMEOUT"] == "40s"
    assert "rt.example.com" in out["roomcast/templates/NOTES.txt"]


def test_minimal_values(chart):
    kinds = by_kind(render(chart, copy.deepcopy(MINIMAL))[0])
    assert "PodDisruptionBudget" not in kinds and "ServiceAccount" not in kinds and "Job" not in kinds
    pod = kinds["Deployment"][0]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "default"
    [init] = pod["initContainers"]
    assert init["args"] == ["migrate"]
    assert init["env"][0]["name"] == "DATABASE_URL"


@pytest.mark.parametrize("bad", [
    {"replicaCont": 3},                                   # top-level typo
    {"ingress": {"enabeld": True}},                        # nested typo
    {"replicaCount": "three"},                             # wrong type
    {"migrations": {"mode": "job"}},                       # not in the enum
    {"config": {"pingInterval": "25 seconds"}},            # not a duration
    {"existingSecret": {"name": ""}},                      # required reference
    {"config": {"extraEnv": {"lower_case": "x"}}},         # not an env var name
    {"ingress": {"controller": "istio"}},                  # not a supported controller
    {"config": {"trustedProxies": "10.0.0.0/8"}},          # a list, not a string
    {"auth": {"jwt": {"algorithm": "none"}}},              # not an algorithm
    {"auth": {"jwt": {"keySecret": {"publicKey": ""}}}},   # a key file needs an entry
    {"extraVolumes": {"name": "ca"}},                      # a list of volumes
])
def test_schema_rejects(chart, bad):
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema(bad)
    with pytest.raises(helm.HelmError):
        chart.render(values=bad, name="rc")


@pytest.mark.parametrize("sleep,shutdown,grace,ok", [
    (5, 25, 35, True),
    (5, 29, 35, True),    # 29 < 35 - 5
    (5, 30, 35, False),   # equal: no margin for the kubelet's SIGKILL
    (10, 25, 35, False),
    (0, 30, 30, False),
])
def test_drain_timing_is_checked(chart, sleep, shutdown, grace, ok):
    values = {"drain": {"preStopSleepSeconds": sleep, "shutdownTimeoutSeconds": shutdown,
                        "terminationGracePeriodSeconds": grace}}
    if ok:
        render(chart, values)
    else:
        with pytest.raises(helm.HelmRenderError, match="shutdownTimeoutSeconds"):
            chart.render(values=values, name="rc")


def test_autoscaling_needs_a_metric(chart):
    with pytest.raises(helm.HelmRenderError, match="autoscaling"):
        chart.render(values={"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": None}}, name="rc")


def test_values_file_typo_fails_lint(tmp_path):
    # The same check through a values file, as `helm install -f` would read it.
    f = tmp_path / "values.yaml"
    f.write_text("serviceMonitor:\n  enabled: true\n  intervall: 30s\n")
    report = helm.lint(str(CHART), helm.values_from_yaml(f.read_text()), strict=True)
    assert any("intervall" in e for e in report["errors"] + [m["error"] for m in report["messages"]]), report


# --- ingress controllers ---------------------------------------------------------------

def with_ingress(controller, **extra):
    values = copy.deepcopy(PRODUCTION)
    values["ingress"]["controller"] = controller
    values["ingress"].update(extra)
    return values


def rendered_objects(chart, values):
    kinds = by_kind(render(chart, values)[0])
    return kinds.get("Ingress", [None])[0], kinds["Service"][0]


CONTROLLERS = ["nginx", "traefik", "haproxy", "none"]


def with_jwt(values, algorithm):
    """The values with token authentication in one of the node's modes."""
    if algorithm != "HS256":
        values["existingSecret"]["keys"]["jwtSecret"] = ""
        values["auth"] = {"jwt": dict(copy.deepcopy(JWT_KEYS), algorithm=algorithm)}
    return values


def with_extras(values):
    values["existingSecret"]["keys"]["adminToken"] = "admin"
    values["envFrom"] = [{"secretRef": {"name": "roomcast-extra"}}]
    values["extraVolumes"] = [{"name": "ca", "configMap": {"name": "corp-ca"}}]
    values["extraVolumeMounts"] = [{"name": "ca", "mountPath": "/etc/ssl/corp", "readOnly": True}]
    values["config"]["trustedProxies"] = ["10.0.0.0/8"]
    return values


@pytest.mark.parametrize("extras", [False, True], ids=["plain", "extras"])
@pytest.mark.parametrize("algorithm", ["HS256", "RS256", "ES256"])
@pytest.mark.parametrize("controller", CONTROLLERS)
def test_each_combination_lints_and_validates(chart, controller, algorithm, extras):
    values = with_jwt(with_ingress(controller), algorithm)
    if extras:
        values = with_extras(values)
    report = helm.lint(str(CHART), copy.deepcopy(values), strict=True, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
    for doc in render(chart, values)[0]:
        if doc["kind"] != "ServiceMonitor":
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_controller_annotations_are_its_own(chart, controller):
    ing, svc = rendered_objects(chart, with_ingress(controller))
    keys = set(ing["metadata"].get("annotations", {})) | set(svc["metadata"].get("annotations", {}))
    prefixes = {"nginx": "nginx.ingress.kubernetes.io/", "traefik": "traefik.ingress.kubernetes.io/",
                "haproxy": "haproxy.org/"}
    for other, prefix in prefixes.items():
        if other != controller:
            assert not [k for k in keys if k.startswith(prefix)], (controller, keys)
    expected_class = {"none": None}.get(controller, controller)
    assert ing["spec"].get("ingressClassName") == expected_class


def test_nginx_sticky_cookie_and_timeouts(chart):
    ing, _ = rendered_objects(chart, with_ingress("nginx"))
    ann = ing["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert ann["nginx.ingress.kubernetes.io/session-cookie-name"] == "ROOMCAST_AFFINITY"
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(ann[f"nginx.ingress.kubernetes.io/{key}"]) > 45  # > pingInterval + pingTimeout


def test_haproxy_sticky_cookie_and_tunnel_timeout(chart):
    ing, _ = rendered_objects(chart, with_ingress("haproxy", proxyTimeoutSeconds=1800))
    ann = ing["metadata"]["annotations"]
    assert ann["haproxy.org/cookie-persistence"] == "ROOMCAST_AFFINITY"
    assert ann["haproxy.org/timeout-tunnel"] == "1800s"


def test_traefik_sticky_cookie_on_the_service(chart):
    values = with_ingress("traefik")
    values["service"] = {"annotations": {"example.com/team": "rt"}}
    ing, svc = rendered_objects(chart, values)
    ann = svc["metadata"]["annotations"]
    assert ann["traefik.ingress.kubernetes.io/service.sticky.cookie"] == "true"
    assert ann["traefik.ingress.kubernetes.io/service.sticky.cookie.name"] == "ROOMCAST_AFFINITY"
    assert ann["traefik.ingress.kubernetes.io/service.sticky.cookie.samesite"] == "none"
    assert ann["traefik.ingress.kubernetes.io/service.sticky.cookie.secure"] == "true"  # TLS is on
    assert ann["example.com/team"] == "rt"
    assert ing["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.tls"] == "true"
    # Without an ingress the Service carries no controller's settings.
    values["ingress"]["enabled"] = False
    _, svc = rendered_objects(chart, values)
    assert svc["metadata"]["annotations"] == {"example.com/team": "rt"}


def test_none_controller_carries_only_user_annotations(chart):
    ing, _ = rendered_objects(chart, with_ingress("none", className="contour",
                                                  annotations={"example.com/x": "1"}))
    assert ing["metadata"]["annotations"] == {"example.com/x": "1"}
    assert ing["spec"]["ingressClassName"] == "contour"
    ing, _ = rendered_objects(chart, with_ingress("none"))
    assert "annotations" not in ing["metadata"]


@pytest.mark.parametrize("controller,key,value", [
    ("nginx", "nginx.ingress.kubernetes.io/proxy-read-timeout", "7200"),
    ("nginx", "nginx.ingress.kubernetes.io/affinity-mode", "balanced"),
    ("haproxy", "haproxy.org/timeout-tunnel", "2h"),
])
def test_user_annotations_replace_the_charts(chart, controller, key, value):
    values = with_ingress(controller, annotations={key: value})
    _, out = render(chart, values)
    text = out["roomcast/templates/ingress.yaml"]
    # One key, the user's value: a duplicated key is invalid YAML for the API server.
    assert text.count(f"{key}:") == 1, text
    ing, _ = rendered_objects(chart, values)
    assert ing["metadata"]["annotations"][key] == value


# --- JWT keys, extra volumes and environment -------------------------------------------

JWT_KEYS = {"algorithm": "RS256",
            "keySecret": {"name": "roomcast-jwt", "publicKey": "jwt.pub", "privateKey": "jwt.key"},
            "issuer": "https://id.example.com", "audience": "roomcast"}


def pod_parts(chart, values):
    kinds = by_kind(render(chart, values)[0])
    pod = kinds["Deployment"][0]["spec"]["template"]["spec"]
    return pod, pod["containers"][0], kinds["ConfigMap"][0]["data"]


def mounted_file(pod, container, path):
    """(Secret name, Secret key) behind a file path in the container, or None."""
    for mount in container["volumeMounts"]:
        prefix = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(prefix):
            [vol] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
            [item] = [i for i in vol["secret"]["items"] if i["path"] == path[len(prefix):]]
            return vol["secret"]["secretName"], item["key"]
    return None


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_jwt_key_files_come_from_a_secret(chart, algorithm):
    values = with_jwt(copy.deepcopy(PRODUCTION), algorithm)
    pod, c, cm = pod_parts(chart, values)
    assert cm["ROOMCAST_JWT_ALGORITHM"] == algorithm
    # The paths the node is given are the mounted Secret's entries.
    assert mounted_file(pod, c, cm["ROOMCAST_JWT_PUBLIC_KEY_FILE"]) == ("roomcast-jwt", "jwt.pub")
    assert mounted_file(pod, c, cm["ROOMCAST_JWT_PRIVATE_KEY_FILE"]) == ("roomcast-jwt", "jwt.key")
    [mount] = [m for m in c["volumeMounts"] if cm["ROOMCAST_JWT_PUBLIC_KEY_FILE"].startswith(m["mountPath"])]
    assert mount["readOnly"] is True
    assert cm["ROOMCAST_JWT_ISSUER"] == "https://id.example.com" and cm["ROOMCAST_JWT_AUDIENCE"] == "roomcast"
    assert "ROOMCAST_JWT_SECRET" not in {e["name"] for e in c["env"]}
    # Without a private key entry only the public key is mounted.
    values["auth"]["jwt"]["keySecret"]["privateKey"] = ""
    pod, c, cm = pod_parts(chart, values)
    assert "ROOMCAST_JWT_PRIVATE_KEY_FILE" not in cm
    assert mounted_file(pod, c, cm["ROOMCAST_JWT_PUBLIC_KEY_FILE"]) == ("roomcast-jwt", "jwt.pub")


def test_hs256_mounts_no_keys(chart):
    pod, c, cm = pod_parts(chart, copy.deepcopy(PRODUCTION))
    assert cm["ROOMCAST_JWT_ALGORITHM"] == "HS256"
    assert not [k for k in cm if k.endswith("_KEY_FILE")]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]


@pytest.mark.parametrize("jwt,secret_key,error", [
    ({"algorithm": "RS256"}, "", "keySecret.name"),
    ({"algorithm": "ES256", "keySecret": {"name": "k"}}, "jwt", "jwtSecret"),
    ({"algorithm": "HS256", "keySecret": {"name": "k"}}, "", "keySecret"),
])
def test_jwt_mismatches_fail_the_render(chart, jwt, secret_key, error):
    values = {"auth": {"jwt": jwt}, "existingSecret": {"name": "rc", "keys": {
        "databaseUrl": "d", "redisUrl": "r", "jwtSecret": secret_key}}}
    with pytest.raises(helm.HelmRenderError, match=error):
        chart.render(values=values, name="rc")


def test_extra_volumes_env_from_and_admin_token(chart):
    values = with_extras(copy.deepcopy(PRODUCTION))
    values["envFrom"].append({"configMapRef": {"name": "feature-flags"}})
    values["config"]["trustedProxies"].append("fd00::/8")
    pod, c, cm = pod_parts(chart, values)
    # The chart's ConfigMap first, the user's sources after it (later ones win).
    assert c["envFrom"][1:] == values["envFrom"]
    assert c["envFrom"][0]["configMapRef"]["name"] == by_kind(render(chart, values)[0])["ConfigMap"][0]["metadata"]["name"]
    assert {"name": "ca", "configMap": {"name": "corp-ca"}} in pod["volumes"]
    assert {"name": "ca", "mountPath": "/etc/ssl/corp", "readOnly": True} in c["volumeMounts"]
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    env = {e["name"]: e for e in c["env"]}
    assert env["ROOMCAST_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "roomcast-prod", "key": "admin"}
    assert cm["ROOMCAST_TRUSTED_PROXIES"] == "10.0.0.0/8,fd00::/8"


def test_optional_settings_are_off_by_default(chart):
    pod, c, cm = pod_parts(chart, {})
    assert "ROOMCAST_ADMIN_TOKEN" not in {e["name"] for e in c["env"]}
    assert "ROOMCAST_TRUSTED_PROXIES" not in cm
    assert c["envFrom"] == [{"configMapRef": {"name": "rc-roomcast"}}]


def test_every_variable_the_chart_sets_is_a_node_setting(chart):
    # Everything on at once; a misspelt variable would be ignored by the node.
    values = with_extras(with_jwt(copy.deepcopy(PRODUCTION), "RS256"))
    values["config"]["extraEnv"] = {}
    _, c, cm = pod_parts(chart, values)
    config_rs = (REPO / "node" / "src" / "config" / "mod.rs").read_text()
    env_vars = config_rs[config_rs.index("pub const ENV_VARS"):]
    known = set(re.findall(r'^\s*\("([A-Z0-9_]+)", "[a-z_.]+"\),$', env_vars[:env_vars.index("];")], re.M))
    assert {"DATABASE_URL", "ROOMCAST_JWT_PUBLIC_KEY_FILE"} <= known
    names = set(cm) | {e["name"] for e in c["env"]}
    assert names - known == set()


# --- the rendered JWT setup, run by the real node ----------------------------------------

def generate_keys(algorithm, directory):
    """A PKCS#8 private key and its public key, made by openssl."""
    key_args = {"RS256": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                "ES256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]}[algorithm]
    private, public = directory / "private.pem", directory / "public.pem"
    subprocess.run(["openssl", "genpkey", *key_args, "-out", str(private)], check=True, capture_output=True, timeout=60)
    subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)],
                   check=True, capture_output=True, timeout=30)
    return private.read_bytes(), public


def container_env(pod, container, configmap, secrets, root):
    """The environment the kubelet would give the container, with each Secret volume
    written under root and paths into it rewritten to match."""
    mounts = {}
    for mount in container["volumeMounts"]:
        [vol] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        if "secret" in vol:
            target = root / mount["mountPath"].lstrip("/")
            target.mkdir(parents=True)
            data = secrets[vol["secret"]["secretName"]]
            for item in vol["secret"]["items"]:
                (target / item["path"]).write_bytes(data[item["key"]])
            mounts[mount["mountPath"]] = str(target)
    env = dict(configmap)
    for e in container["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "secretKeyRef" in e["valueFrom"]:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secrets[ref["name"]][ref["key"]].decode()
        else:
            env[e["name"]] = "rc-roomcast-0"
    for name, value in env.items():
        for mount_path, local in mounts.items():
            if value.startswith(mount_path + "/"):
                env[name] = local + value[len(mount_path):]
    return env


def b64url(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def der_signature(raw):
    """A JWS ES256 signature (r || s) as the DER sequence openssl verifies."""
    def integer(b):
        b = b.lstrip(b"\0")
        if not b or b[0] & 0x80:
            b = b"\0" + b
        return bytes([2, len(b)]) + b
    body = integer(raw[:32]) + integer(raw[32:])
    return bytes([0x30, len(body)]) + body


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_node_accepts_the_rendered_jwt_keys(chart, tmp_path, algorithm):
    assert BIN.exists(), f"build the node first: {BIN}"
    private, public_file = generate_keys(algorithm, tmp_path)
    values = {"auth": {"jwt": dict(copy.deepcopy(JWT_KEYS), algorithm=algorithm)}}
    pod, c, cm = pod_parts(chart, values)
    secrets = {
        "roomcast": {"DATABASE_URL": f"sqlite://{tmp_path}/rc.db?mode=rwc".encode(),
                     "REDIS_URL": b"redis://127.0.0.1:9"},
        "roomcast-jwt": {"jwt.pub": public_file.read_bytes(), "jwt.key": private},
    }
    env = container_env(pod, c, cm, secrets, tmp_path / "pod")
    env = {**env, "PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    env.pop("REDIS_URL")  # user and token commands need the database only

    def roomcast(*args):
        r = subprocess.run([str(BIN), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    shown = roomcast("check-config")
    # The node takes the key paths from the rendered variables...
    assert f'public_key_file = "{env["ROOMCAST_JWT_PUBLIC_KEY_FILE"]}"' in shown, shown
    roomcast("user", "add", "alice", "--password", "a-long-password")
    token = roomcast("token", "alice").split()[-1]
    header, payload, signature = token.split(".")
    assert json.loads(b64url(header))["alg"] == algorithm
    claims = json.loads(b64url(payload))
    assert claims["iss"] == "https://id.example.com" and claims["aud"] == "roomcast"
    # ...signs with the mounted private key, and the mounted public key verifies it.
    (tmp_path / "signed").write_bytes(f"{header}.{payload}".encode())
    sig = b64url(signature)
    (tmp_path / "sig").write_bytes(der_signature(sig) if algorithm == "ES256" else sig)
    r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", env["ROOMCAST_JWT_PUBLIC_KEY_FILE"], "-signature",
                        str(tmp_path / "sig"), str(tmp_path / "signed")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "Verified OK" in r.stdout, r.stdout + r.stderr
