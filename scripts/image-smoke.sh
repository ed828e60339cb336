#!/usr/bin/env bash
# Builds the container image (Dockerfile) with local base images made from Debian packages
# (no image registry is needed) and checks it without running a container: its user,
# entrypoint, command, healthcheck, volumes and files; then, in a chroot of the image's
# filesystem (read-only but for the audit volume, as `docker run --read-only` would give) as
# the image's user with the image's environment, that the binary answers `--version`,
# accepts a mounted configuration with `check-config` (and refuses a broken one), serves
# (mTLS, a lookup audited on the volume, `hcgw_build_info`), and that the HEALTHCHECK command
# sees it healthy, then unhealthy once it stopped. docs/deploy.md, "What CI checks".
#
#   scripts/image-smoke.sh            # CARGO_PROFILE=ci-image (fast build)
#   CARGO_PROFILE=release scripts/image-smoke.sh
#
# Needs root (podman, mmdebstrap, chroot). Base images are made once and kept
# (localhost/hcgw-build-base, localhost/hcgw-runtime-base; the build base is remade when the
# machine's rustc changed, REBUILD_BASES=1 remakes both, BASES_ONLY=1 stops after them);
# the cargo registry and target directory are cached by podman between builds.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

PROFILE=${CARGO_PROFILE:-ci-image}
IMAGE=localhost/hcgw:smoke
BUILD_BASE=localhost/hcgw-build-base
RUNTIME_BASE=localhost/hcgw-runtime-base
SUITE=bookworm
started=$(date +%s)

die() { printf 'image-smoke: FAIL: %s\n' "$*" >&2; exit 1; }
step() { printf 'image-smoke: [%3ss] %s\n' "$(($(date +%s) - started))" "$*"; }

[[ $(id -u) -eq 0 ]] || die "needs root (podman build --isolation chroot, mmdebstrap, chroot)"
need=()
command -v podman >/dev/null || need+=(podman)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if ((${#need[@]})); then
  step "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/hcgw-image-smoke.XXXXXX)
server=
cleanup() {
  [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# --- Local base images -----------------------------------------------------------------
# The build base: Debian's C toolchain and libssl-dev, plus this machine's Rust toolchain
# (Debian's rustc is older than rust-version); the runtime base: libssl3 and CA
# certificates on Debian's essential set (the registry default is distroless/base).
if [[ ${REBUILD_BASES:-} == 1 ]] || ! podman image exists "$RUNTIME_BASE"; then
  step "making $RUNTIME_BASE with mmdebstrap"
  mmdebstrap --quiet --variant=essential --include=libssl3,ca-certificates \
    "$SUITE" "$work/runtime.tar"
  podman import --quiet "$work/runtime.tar" "$RUNTIME_BASE" >/dev/null
  rm -f "$work/runtime.tar"
fi
# The build base is remade when the machine's toolchain changed (its label names the rustc).
rustc_version=$(rustc --version)
base_rustc=
podman image exists "$BUILD_BASE" \
  && base_rustc=$(podman image inspect --format '{{index .Labels "hcgw.rustc"}}' "$BUILD_BASE")
if [[ ${REBUILD_BASES:-} == 1 || $base_rustc != "$rustc_version" ]]; then
  sysroot=$(rustc --print sysroot)
  step "making $BUILD_BASE with mmdebstrap and $rustc_version${base_rustc:+ (it had $base_rustc)}"
  mmdebstrap --quiet --variant=apt \
    --include=gcc,libc6-dev,pkg-config,libssl-dev,ca-certificates \
    --customize-hook="mkdir -p \"\$1/usr/local/rust\" && tar -C '$sysroot' --exclude=./share/doc -cf - . | tar -C \"\$1/usr/local/rust\" -xf -" \
    "$SUITE" "$work/build.tar"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' \
    --change "LABEL hcgw.rustc=\"$rustc_version\"" \
    "$work/build.tar" "$BUILD_BASE" >/dev/null
  rm -f "$work/build.tar"
fi

[[ ${BASES_ONLY:-} == 1 ]] && { step "base images ready"; exit 0; }

# --- Build ------------------------------------------------------------------------------
# What the gateway's build script would record (the build context has no .git).
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
step "building $IMAGE (CARGO_PROFILE=$PROFILE, commit $commit)"
build_started=$(date +%s)
# The machine's CA bundle is lent to the build steps (not copied into any layer), so crate
# downloads work behind a TLS-inspecting proxy that the machine trusts.
podman build --quiet --isolation chroot --format docker --network host \
  --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
  --build-arg BUILD_IMAGE="$BUILD_BASE" \
  --build-arg RUNTIME_IMAGE="$RUNTIME_BASE" \
  --build-arg CARGO_PROFILE="$PROFILE" \
  --build-arg HCGW_COMMIT="$commit" \
  -t "$IMAGE" . >"$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; die "podman build"; }
build_s=$(($(date +%s) - build_started))
step "built in ${build_s}s"

# --- Image metadata ---------------------------------------------------------------------
podman image inspect "$IMAGE" >"$work/inspect.json"
# One field of the image's metadata as JSON ("null" when absent: podman omits empty fields).
field() { python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))[0]
for k in sys.argv[2].split("."):
    d = d.get(k) if isinstance(d, dict) else None
print(json.dumps(d, separators=(",", ":")))' "$work/inspect.json" "$1"; }
user=$(field Config.User)
[[ $user == '"65532:65532"' ]] || die "user is $user, expected 65532:65532 (non-root)"
entrypoint=$(field Config.Entrypoint)
[[ $entrypoint == '["/usr/local/bin/hcgw"]' ]] || die "entrypoint is $entrypoint"
cmd=$(field Config.Cmd)
[[ $cmd == '["serve"]' ]] || die "cmd is $cmd"
health=$(field Healthcheck)
[[ $health == *'"/usr/local/bin/hcgw","healthcheck","http://127.0.0.1:9090/healthz"'* ]] \
  || die "healthcheck is $health (built with --format docker?)"
volumes=$(field Config.Volumes)
for v in /etc/hcgw /etc/hcgw/certs /var/lib/hcgw/audit; do
  [[ $volumes == *"\"$v\""* ]] || die "volume $v missing: $volumes"
done
ports=$(field Config.ExposedPorts)
[[ $ports == *8443/tcp* && $ports == *9090/tcp* ]] || die "exposed ports: $ports"
mapfile -t image_env < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))[0]["Config"].get("Env", [])))' "$work/inspect.json")
printf '%s\n' "${image_env[@]}" | grep -qx 'HCGW_CONFIG=/etc/hcgw/hcgw.toml' || die "HCGW_CONFIG not set"
size=$(field Size)
step "metadata ok: user $user, entrypoint $entrypoint $cmd, volumes, healthcheck; $((size / 1024 / 1024)) MiB"

# --- Files --------------------------------------------------------------------------------
mnt=$(podman image mount "$IMAGE")
root=$work/root
mkdir -p "$root"
cp -a "$mnt/." "$root/"
podman image unmount "$IMAGE" >/dev/null
[[ -x $root/usr/local/bin/hcgw ]] || die "/usr/local/bin/hcgw missing"
[[ -f $root/usr/share/hcgw/config/dev.toml && -f $root/usr/share/hcgw/LICENSE ]] || die "examples or LICENSE missing"
[[ $(stat -c %u "$root/var/lib/hcgw/audit") == 65532 ]] || die "/var/lib/hcgw/audit not owned by 65532"
for absent in src usr/local/cargo usr/local/rust; do
  [[ ! -e $root/$absent ]] || die "/$absent is in the runtime image"
done
[[ -z $(find "$root" -name '*.key.pem' -o -name 'key.pem' | head -1) ]] || die "a private key is in the image"
step "files ok"

# --- The binary, as the image's user with the image's environment -------------------------
# What `docker run --read-only -v audit:/var/lib/hcgw/audit` gives, without a container: a
# private mount namespace in which the image's filesystem is read-only except the audit
# volume, with /proc and /dev as a runtime provides them; then chroot as 65532:65532 with
# only the image's environment (plus NAME=value arguments given before the command).
# image_argv sets `argv` to that command line (so `"${argv[@]}" &` gives $! = the process
# that becomes the binary); as_image runs it.
image_argv() {
  local extra=()
  while [[ $1 == *=* ]]; do extra+=("$1"); shift; done
  # shellcheck disable=SC2016 # expanded by the inner shell
  argv=(unshare --mount --propagation private -- /bin/sh -ec '
    root=$1; shift
    mount --bind "$root" "$root"
    mount --bind "$root/var/lib/hcgw/audit" "$root/var/lib/hcgw/audit"
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount -o remount,bind,ro "$root"
    exec env -i "$@"' sh "$root" "${image_env[@]}" "${extra[@]}"
    chroot --userspec=65532:65532 "$root" "$@")
}
as_image() { image_argv "$@"; "${argv[@]}"; }
mkdir -p "$root/proc" "$root/dev"
version=$(as_image /usr/local/bin/hcgw --version) || die "--version failed"
want="hcgw $(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "hcgw"))')"
[[ $version == "$want" ]] || die "--version says '$version', expected '$want'"
# The root really is read-only in there (even /tmp, world-writable in the base), the audit
# volume is not (the runtime base used here has coreutils; distroless has none).
probe=$(as_image /usr/bin/touch /tmp/probe 2>&1) && die "/tmp is writable in the smoke's chroot"
[[ $probe == *'Read-only file system'* ]] || die "writing /tmp failed, but not for a read-only root: $probe"
as_image /usr/bin/touch /var/lib/hcgw/audit/probe || die "the audit volume is not writable by 65532"
rm -f "$root/var/lib/hcgw/audit/probe"

# "Mount" a configuration and the dev PKI where the volumes are (k8s/compose do the same).
certs/dev-pki.sh "$root/etc/hcgw/certs" >/dev/null
chmod -R a+rX "$root/etc/hcgw/certs"
sed -e 's|\.\./certs/dev/|certs/|g' -e 's|^dir = .*|dir = "/nonexistent-overridden-by-env"|' \
  config/dev.toml >"$root/etc/hcgw/hcgw.toml"
out=$(as_image /usr/local/bin/hcgw check-config --print /etc/hcgw/hcgw.toml 2>&1) \
  || die "check-config of the mounted configuration: $out"
# shellcheck disable=SC2016 # a literal `$HCGW_AUDIT__DIR` in the output
grep -q '^# audit.dir from \$HCGW_AUDIT__DIR' <<<"$out" || die "the image's HCGW_AUDIT__DIR is not applied: $out"
# A broken mounted configuration is refused (the check can fail).
printf '[listener]\naddr = "not an address"\n' >"$root/etc/hcgw/broken.toml"
as_image /usr/local/bin/hcgw check-config /etc/hcgw/broken.toml >/dev/null 2>&1 \
  && die "check-config accepted a broken configuration"
step "--version ($version), check-config (good and broken) ok, root read-only"

# Serve (both ports on free ports via the env overrides), then the HEALTHCHECK command.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
admin_port=$(free_port)
api_port=$(free_port)
image_argv HCGW_ADMIN__ADDR="127.0.0.1:$admin_port" HCGW_LISTENER__ADDR="127.0.0.1:$api_port" \
  HCGW_GATEWAY__LOG_FORMAT=json /usr/local/bin/hcgw serve
"${argv[@]}" >"$work/serve.log" 2>&1 &
server=$!
healthy=
for _ in $(seq 100); do
  if as_image /usr/local/bin/hcgw healthcheck --timeout-ms 500 "http://127.0.0.1:$admin_port/healthz" 2>/dev/null; then
    healthy=1
    break
  fi
  kill -0 "$server" 2>/dev/null || break
  sleep 0.2
done
[[ -n $healthy ]] || { cat "$work/serve.log" >&2; die "the served image never became healthy"; }
metrics=$(curl -sS --max-time 10 "http://127.0.0.1:$admin_port/metrics") || die "GET /metrics failed"
grep -q "^hcgw_build_info{.*commit=\"$commit\"" <<<"$metrics" \
  || die "hcgw_build_info does not name commit $commit: $(grep hcgw_build_info <<<"$metrics")"
# The mTLS API answers a known client (the dev PKI's curl config), and a lookup is audited
# on the audit volume (its region's simulator is not running: `unknown`, never green).
conf=$root/etc/hcgw/certs/curl/platform-shanghai.conf
whoami=$(curl -sS --max-time 10 -K "$conf" "https://localhost:$api_port/v1/whoami") \
  || die "GET /v1/whoami over mTLS failed"
[[ $whoami == *platform-shanghai* ]] || die "whoami: $whoami"
qr=SCM:5f2b9c0e8d7a41b3a6c2e9f0d1b4a7c8
lookup=$(curl -sS --max-time 20 -K "$conf" -H 'content-type: application/json' -w '\n%{http_code}' \
  -d '{"region":"suzhou","subject":{"qr":"'"$qr"'"},"purpose":"arrival_registration"}' \
  "https://localhost:$api_port/v1/lookup") || die "POST /v1/lookup failed"
[[ $lookup != *'"green"'* ]] || die "a lookup with no region behind it answered green: $lookup"
status=${lookup##*$'\n'}
[[ $status == 50[34] && $lookup =~ \"code\":\"region_(unavailable|timeout)\" ]] \
  || die "a lookup with no region behind it: expected region_unavailable/region_timeout, got $lookup"
kill -TERM "$server"
wait "$server" || die "serve exited with $? after SIGTERM: $(tail -5 "$work/serve.log")"
server=
grep -q 'gateway listening' "$work/serve.log" || die "no 'gateway listening' in the log: $(cat "$work/serve.log")"
compgen -G "$root/var/lib/hcgw/audit/audit-*.jsonl" >/dev/null \
  || die "no audit trail on the audit volume: $(ls -la "$root/var/lib/hcgw/audit")"
cat "$root"/var/lib/hcgw/audit/audit-*.jsonl >"$work/audit.jsonl"
grep -q '"caller":{"name":"platform-shanghai".*"endpoint":"lookup","region":"suzhou"' "$work/audit.jsonl" \
  || die "the lookup is not in the audit trail: $(cat "$work/audit.jsonl")"
! grep -q "$qr" "$work/audit.jsonl" "$work/serve.log" || die "the QR token is in the audit trail or the log"
out=$(as_image /usr/local/bin/hcgw audit verify /var/lib/hcgw/audit 2>&1) || die "audit verify: $out"
if as_image /usr/local/bin/hcgw healthcheck --timeout-ms 500 "http://127.0.0.1:$admin_port/healthz" 2>/dev/null; then
  die "healthcheck succeeded with the gateway stopped"
fi
step "served read-only as 65532 (mTLS whoami, lookup audited on the volume and verified), healthcheck ok and failing once stopped; total $(($(date +%s) - started))s (build ${build_s}s)"
