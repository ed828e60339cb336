#!/usr/bin/env bash
# Creates the dev overlay's Secrets from the dev PKI (certs/dev-pki.sh OUTDIR, default
# certs/dev) with the flat file names the ConfigMap's hcgw.toml expects:
#   hcgw-certs               -> /etc/hcgw/certs   (gateway certificate and key, answer-signing
#                                                  key and certificate, CA bundle,
#                                                  CRLs, regions' CAs and client certificates)
#   hcgw-region-credentials  -> /etc/hcgw/secrets (region credentials, subject hash key)
# Prints the two Secret manifests; with --apply, applies them (kubectl, current context).
set -euo pipefail
cd "$(dirname "$0")/../../.."
pki=${PKI:-certs/dev}
ns=${NAMESPACE:-hcgw-dev}
[[ -d $pki ]] || certs/dev-pki.sh "$pki" >/dev/null
u=$pki/upstream
cert_files=(
  "gateway-cert.pem=$pki/gateways/hcgw-dev/cert.pem"
  "gateway-key.pem=$pki/gateways/hcgw-dev/key.pem"
  "signing-cert.pem=$pki/signing/hcgw-dev/cert.pem"
  "signing-key.pem=$pki/signing/hcgw-dev/key.pem"
  "ca-bundle.pem=$pki/ca-bundle.pem"
  "intermediate.crl.pem=$pki/crl/intermediate.crl.pem"
  "root.crl.pem=$pki/crl/root.crl.pem"
  "suishen-sign-key-1.pub.pem=$u/suishen/sign-key-1.pub.pem"
  "suishen-sign-key-2.pub.pem=$u/suishen/sign-key-2.pub.pem"
)
for r in sukang guangdong; do
  cert_files+=("$r-ca.pem=$u/$r/ca.pem" "$r-client-cert.pem=$u/$r/client/cert.pem"
    "$r-client-key.pem=$u/$r/client/key.pem")
done
secret_files=()
for s in suzhou_app_secret suishen_client_secret xuzhou_api_key hangzhou_appcode \
  huzhou_token guangzhou_secret guangdong_paas_id subject_hash_key redis_entry_key; do
  secret_files+=("$s=$pki/secrets/$s")
done
args_of() { for f in "$@"; do printf -- '--from-file=%s\n' "$f"; done; }
for s in hcgw-certs hcgw-region-credentials; do
  if [[ $s == hcgw-certs ]]; then
    mapfile -t args < <(args_of "${cert_files[@]}")
  else
    mapfile -t args < <(args_of "${secret_files[@]}")
  fi
  if command -v kubectl >/dev/null; then
    manifest=$(kubectl -n "$ns" create secret generic "$s" "${args[@]}" --dry-run=client -o yaml)
  else
    # The same manifest without kubectl (offline checks on machines that lack it).
    manifest=$(python3 - "$s" "$ns" "${args[@]}" <<'PY'
import base64, sys, yaml
name, ns, files = sys.argv[1], sys.argv[2], sys.argv[3:]
data = {}
for f in files:
    key, path = f.removeprefix("--from-file=").split("=", 1)
    data[key] = base64.b64encode(open(path, "rb").read()).decode()
print(yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                      "metadata": {"name": name, "namespace": ns}, "data": data}), end="")
PY
)
  fi
  if [[ ${1:-} == --apply ]]; then
    kubectl apply -f - <<<"$manifest"
  else
    printf '%s\n---\n' "$manifest"
  fi
done
