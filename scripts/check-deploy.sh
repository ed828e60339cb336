#!/usr/bin/env bash
# Validates deploy/ offline (no cluster, no container engine):
#  - deploy/kubernetes/dev is built (kubectl kustomize, kustomize build, else the documented
#    equivalent scripts/kustomize-lite.py; when kubectl exists both are built and compared)
#    and every object is checked against the Kubernetes schemas (kubernetes-validate);
#    a deliberately broken manifest must be refused (the check can fail);
#  - the StatefulSet has >= 2 replicas, probes on the admin port, its name from the pod name,
#    its own audit volume per replica; the admin port is behind a NetworkPolicy;
#  - deploy/compose/compose.yaml is checked against the Compose specification schema
#    (check-jsonschema's vendored compose-spec), with two replicas of distinct names and
#    audit volumes, scraped by Prometheus;
#  - both deployments' hcgw.toml pass `hcgw check-config` with the dev PKI laid out as the
#    deployments mount it and the environment the manifests set;
#  - the time the engine gives a stopping replica covers its drain and grace of that
#    effective configuration: Kubernetes terminationGracePeriodSeconds and Compose
#    stop_grace_period >= shutdown.drain_s + shutdown.grace_s (a copy off by one second
#    must be refused: the check can fail).
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

die() { printf 'check-deploy: FAIL: %s\n' "$*" >&2; exit 1; }
say() { printf 'check-deploy: %s\n' "$*"; }

pip_need=()
command -v kubernetes-validate >/dev/null || pip_need+=(kubernetes-validate==1.37.0)
command -v check-jsonschema >/dev/null || pip_need+=(check-jsonschema==0.39.0)
python3 -c 'import yaml' 2>/dev/null || pip_need+=(pyyaml)
if ((${#pip_need[@]})); then
  say "installing ${pip_need[*]} (PyPI)"
  python3 -m pip install -q --disable-pip-version-check "${pip_need[@]}"
fi

work=$(mktemp -d /tmp/hcgw-check-deploy.XXXXXX)
trap 'rm -rf "$work"' EXIT

# --- Kubernetes -----------------------------------------------------------------------
scripts/kustomize-lite.py deploy/kubernetes/dev >"$work/lite.yaml"
if command -v kubectl >/dev/null; then
  kubectl kustomize deploy/kubernetes/dev >"$work/k8s.yaml"
  python3 - "$work/k8s.yaml" "$work/lite.yaml" <<'PY' || die "kustomize-lite.py differs from kubectl kustomize"
import sys, yaml
def norm(o):
    if isinstance(o, dict):
        return {k: norm(v) for k, v in o.items()}
    if isinstance(o, list):
        items = [norm(x) for x in o]
        if all(isinstance(x, dict) and "name" in x for x in items):
            items.sort(key=lambda x: x["name"])
        return items
    return o
a, b = ([norm(d) for d in yaml.safe_load_all(open(p)) if d] for p in sys.argv[1:])
key = lambda o: (o["kind"], o["metadata"]["name"])
if sorted(a, key=key) != sorted(b, key=key):
    sys.exit(1)
PY
  say "overlay built with kubectl kustomize (kustomize-lite.py agrees)"
elif command -v kustomize >/dev/null; then
  kustomize build deploy/kubernetes/dev >"$work/k8s.yaml"
  say "overlay built with kustomize"
else
  cp "$work/lite.yaml" "$work/k8s.yaml"
  say "overlay built with scripts/kustomize-lite.py (no kubectl/kustomize here)"
fi
kubernetes-validate --quiet --strict -k 1.31.0 "$work/k8s.yaml" || die "kubernetes-validate"
python3 - "$work/k8s.yaml" >"$work/bad.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
s = next(d for d in docs if d["kind"] == "StatefulSet")
s["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["prot"] = 9090
print(yaml.safe_dump(s))
PY
if kubernetes-validate --quiet --strict -k 1.31.0 "$work/bad.yaml" >/dev/null 2>&1; then
  die "kubernetes-validate accepted a misspelled field: the check cannot fail"
fi
python3 - "$work/k8s.yaml" "$work" <<'PY' || die "Kubernetes manifests"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
kinds = {d["kind"] for d in docs}
for k in ["StatefulSet", "Service", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy", "Deployment"]:
    assert k in kinds, f"no {k}"
s = by[("StatefulSet", "hcgw")]
assert s["spec"]["replicas"] >= 2, "fewer than 2 replicas"
c = s["spec"]["template"]["spec"]["containers"][0]
env = {e["name"]: e for e in c["env"]}
assert env["HCGW_GATEWAY__NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
for probe in ["startupProbe", "livenessProbe", "readinessProbe"]:
    assert c[probe]["httpGet"]["port"] == "admin", probe
assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
assert c["securityContext"]["readOnlyRootFilesystem"] is True
assert "limits" in c["resources"] and "requests" in c["resources"]
mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
audit = env["HCGW_AUDIT__DIR"]["value"]
assert mounts[audit] in [t["metadata"]["name"] for t in s["spec"]["volumeClaimTemplates"]], \
    "the audit directory is not a per-replica volume"
secrets = {v["secret"]["secretName"] for v in s["spec"]["template"]["spec"]["volumes"] if "secret" in v}
assert secrets == {"hcgw-certs", "hcgw-region-credentials"}, secrets
policy = by[("NetworkPolicy", "hcgw")]
admin_rules = [r for r in policy["spec"]["ingress"] if any(p["port"] == 9090 for p in r["ports"])]
assert admin_rules and all(r.get("from") for r in admin_rules), "the admin port is open to all"
open(sys.argv[2] + "/k8s-hcgw.toml", "w").write(by[("ConfigMap", "hcgw-config")]["data"]["hcgw.toml"])
# The environment the pod gets (fieldRefs resolved as for the first replica).
with open(sys.argv[2] + "/k8s.env", "w") as f:
    for name, e in env.items():
        value = e.get("value") or ("hcgw-0" if "valueFrom" in e else "")
        f.write(f"{name}={value}\n")
PY
say "Kubernetes: $(grep -c '^kind:' "$work/k8s.yaml") objects valid; replicas, probes, volumes, policy ok"

# --- Compose ----------------------------------------------------------------------------
check-jsonschema --builtin-schema vendor.compose-spec deploy/compose/compose.yaml >/dev/null \
  || die "compose.yaml does not match the Compose specification"
python3 -c 'import sys, yaml; c = yaml.safe_load(open(sys.argv[1])); c["services"]["hcgw-1"]["portz"] = ["1"]; print(yaml.safe_dump(c))' \
  deploy/compose/compose.yaml >"$work/bad-compose.yaml"
if check-jsonschema --builtin-schema vendor.compose-spec "$work/bad-compose.yaml" >/dev/null 2>&1; then
  die "check-jsonschema accepted a misspelled compose key: the check cannot fail"
fi
python3 - deploy/compose/compose.yaml <<'PY' || die "compose.yaml"
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
s = c["services"]
gws = [n for n, v in s.items() if v.get("environment", {}).get("HCGW_GATEWAY__NAME")]
assert len(gws) >= 2, "fewer than two gateway replicas"
names = {s[n]["environment"]["HCGW_GATEWAY__NAME"] for n in gws}
assert len(names) == len(gws), "replicas share a name"
audits = [next(v.split(":")[0] for v in s[n]["volumes"] if v.endswith(":/var/lib/hcgw/audit")) for n in gws]
assert len(set(audits)) == len(gws), "replicas share an audit volume"
for need in ["redis", "simulators", "prometheus", "grafana"]:
    assert need in s, f"no {need} service"
prom = yaml.safe_load(open("deploy/compose/prometheus/prometheus.yml"))
targets = {t for j in prom["scrape_configs"] for sc in j["static_configs"] for t in sc["targets"]}
assert {f"{n}:9090" for n in gws} <= targets, f"Prometheus does not scrape every replica: {targets}"
assert any(v.endswith("prometheus-alerts.yml:ro") for v in s["prometheus"]["volumes"])
assert any("grafana-dashboard.json" in v for v in s["grafana"]["volumes"])
PY
say "Compose: schema ok; $(python3 -c 'import yaml,sys; print(len(yaml.safe_load(open(sys.argv[1]))["services"]))' deploy/compose/compose.yaml) services, two replicas, Prometheus and Grafana wired"

# --- Both configurations pass check-config, laid out as mounted -------------------------
cargo build -q --bin hcgw
hcgw=target/debug/hcgw
pki="$work/pki"
certs/dev-pki.sh "$pki" >/dev/null
# Compose mounts certs/dev at /etc/hcgw/certs.
mkdir -p "$work/compose/audit"
cp deploy/compose/hcgw.toml "$work/compose/hcgw.toml"
ln -s "$pki" "$work/compose/certs"
HCGW_GATEWAY__NAME=hcgw-1 HCGW_AUDIT__DIR="$work/compose/audit" \
  "$hcgw" check-config --print "$work/compose/hcgw.toml" >"$work/compose/effective.toml" \
  || die "deploy/compose/hcgw.toml"
# Kubernetes mounts the Secrets flat, as deploy/kubernetes/dev/make-secrets.sh makes them.
mkdir -p "$work/k8s/certs" "$work/k8s/secrets" "$work/k8s/audit"
cp "$work/k8s-hcgw.toml" "$work/k8s/hcgw.toml"
PKI=$pki deploy/kubernetes/dev/make-secrets.sh >"$work/secrets.yaml"
python3 - "$work/secrets.yaml" "$work/k8s" <<'PY'
import base64, sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if not d:
        continue
    sub = {"hcgw-certs": "certs", "hcgw-region-credentials": "secrets"}[d["metadata"]["name"]]
    for k, v in d["data"].items():
        open(f"{sys.argv[2]}/{sub}/{k}", "wb").write(base64.b64decode(v))
PY
kubernetes-validate --quiet --strict -k 1.31.0 "$work/secrets.yaml" || die "make-secrets.sh output"
env $(grep -v '^HCGW_AUDIT__DIR=' "$work/k8s.env") HCGW_AUDIT__DIR="$work/k8s/audit" \
  "$hcgw" check-config --print "$work/k8s/hcgw.toml" >"$work/k8s/effective.toml" \
  || die "the Kubernetes ConfigMap's hcgw.toml"
say "both configurations pass check-config"

# --- A stopping replica gets at least drain_s + grace_s ---------------------------------
# grace_check k8s|compose MANIFEST EFFECTIVE_TOML [SHIFT]: the manifest's stop time against
# the effective configuration's drain_s + grace_s (defaults 5 and 25 as in
# core/src/config/mod.rs ShutdownSection when the file leaves them out; a Compose
# service's HCGW_SHUTDOWN__* environment overrides apply). SHIFT (self-test) checks
# a copy (in memory) whose stop time is drain_s + grace_s + SHIFT.
grace_check() {
  python3 - "$@" <<'PY'
import re, sys, tomllib, yaml
kind, manifest, effective = sys.argv[1:4]
shift = int(sys.argv[4]) if len(sys.argv) > 4 else None
shutdown = tomllib.load(open(effective, "rb")).get("shutdown", {})
def need(env=None):
    env = env or {}
    drain = int(env.get("HCGW_SHUTDOWN__DRAIN_S", shutdown.get("drain_s", 5)))
    grace = int(env.get("HCGW_SHUTDOWN__GRACE_S", shutdown.get("grace_s", 25)))
    return drain + grace, f"drain_s {drain} + grace_s {grace}"
def seconds(d):
    parts = re.fullmatch(r"((\d+)h)?((\d+)m(?!s))?((\d+)s)?((\d+)ms)?", str(d).strip())
    assert parts and str(d).strip(), f"stop_grace_period {d!r}: not a duration"
    h, m, s, ms = (int(parts.group(i) or 0) for i in (2, 4, 6, 8))
    return h * 3600 + m * 60 + s + ms / 1000
bad = []
if kind == "k8s":
    docs = [d for d in yaml.safe_load_all(open(manifest)) if d]
    pod = next(d for d in docs if d["kind"] == "StatefulSet")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0].get("env", []) if "value" in e}
    total, what = need(env)
    if shift is not None:
        pod["terminationGracePeriodSeconds"] = total + shift
    have = pod.get("terminationGracePeriodSeconds", 30)
    if have < total:
        bad.append(f"terminationGracePeriodSeconds {have} < {what}")
else:
    c = yaml.safe_load(open(manifest))
    for name, svc in c["services"].items():
        env = svc.get("environment") or {}
        if not isinstance(env, dict) or "HCGW_GATEWAY__NAME" not in env:
            continue
        total, what = need(env)
        if shift is not None:
            svc["stop_grace_period"] = f"{total + shift}s"
        have = seconds(svc.get("stop_grace_period", "10s"))
        if have < total:
            bad.append(f"{name}: stop_grace_period {have:g}s < {what}")
for b in bad:
    print(f"{manifest}: {b}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}
grace_check k8s "$work/k8s.yaml" "$work/k8s/effective.toml" \
  || die "Kubernetes: a stopping pod is killed before its drain and grace end"
grace_check compose deploy/compose/compose.yaml "$work/compose/effective.toml" \
  || die "Compose: a stopping replica is killed before its drain and grace end"
for kind in k8s compose; do
  manifest=$([[ $kind == k8s ]] && echo "$work/k8s.yaml" || echo deploy/compose/compose.yaml)
  grace_check "$kind" "$manifest" "$work/$kind/effective.toml" 0 \
    || die "$kind: a stop time of exactly drain_s + grace_s was refused"
  if grace_check "$kind" "$manifest" "$work/$kind/effective.toml" -1 2>/dev/null; then
    die "$kind: a stop time one second short of drain_s + grace_s was accepted: the check cannot fail"
  fi
done
say "stop times cover drain_s + grace_s (Kubernetes, Compose); one second short is refused"
say "ok"
