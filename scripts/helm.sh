#!/usr/bin/env bash
# helm.sh checks the Helm chart at helm/featured without a cluster:
#   - helm (pinned) is built once with `go install` into the git-ignored
#     .cache/bin; a second run builds nothing;
#   - `helm lint --strict` on the default values (plus the one value they
#     lack: auth.existingSecret) and on each documented variant
#     (helm/featured/ci/*.yaml);
#   - `helm template` of each, written to OUTDIR/<variant>.yaml (default.yaml
#     for the default values), for the manifest tests of the nested module
#     helm/test (FEATURED_HELM_RENDERED=OUTDIR go test ./... there).
# Usage: scripts/helm.sh [OUTDIR]   (default: a new temp dir, printed)
set -euo pipefail

HELM_VERSION=v3.22.0
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion); helm
# template otherwise assumes v1.20 and refuses the chart.
KUBE_VERSION=1.30.0

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.cache/bin"
chart="$root/helm/featured"
out="${1:-$(mktemp -d)}"
mkdir -p "$bin" "$out"

if [ ! -x "$bin/helm-$HELM_VERSION" ]; then
	echo "building helm $HELM_VERSION (about 2.5 minutes, once)"
	tmp="$(mktemp -d)"
	GOFLAGS=-buildvcs=false GOBIN="$tmp" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
	mv "$tmp/helm" "$bin/helm-$HELM_VERSION"
	rmdir "$tmp"
fi
ln -sf "helm-$HELM_VERSION" "$bin/helm"
helm="$bin/helm-$HELM_VERSION"

# Nothing stale from an earlier run may pass for this one's output.
rm -f "$out"/*.yaml

check() { # variant [helm args...]
	local variant=$1
	shift
	local args=("$@")
	"$helm" lint --strict --quiet --kube-version "$KUBE_VERSION" "${args[@]}" "$chart"
	"$helm" template featured "$chart" --namespace features --kube-version "$KUBE_VERSION" \
		"${args[@]}" >"$out/$variant.yaml"
	echo "ok  $variant"
}

# Values the chart must refuse, each with the message that names the fix.
refuse() { # message --set...
	local want=$1
	shift
	local msg
	if msg=$("$helm" template featured "$chart" --kube-version "$KUBE_VERSION" "$@" 2>&1 >/dev/null); then
		echo "helm template $* rendered; want a failure: $want" >&2
		exit 1
	fi
	if [[ "$msg" != *"$want"* ]]; then
		echo "helm template $*: got \"$msg\", want it to say \"$want\"" >&2
		exit 1
	fi
	echo "ok  refused: ${*:-(the defaults)}"
}

# The defaults alone are refused (no open door, below): the default variant is
# them plus a token file, the least a real install gives.
check default --set auth.existingSecret=featured-auth
for f in "$chart"/ci/*.yaml; do
	check "$(basename "$f" .yaml)" -f "$f"
done
auth=(--set auth.existingSecret=featured-auth)
refuse "featured listens on the pod's address: set auth.existingSecret (a Secret with tokens.yaml) or insecure: true"
refuse "auth.metricsTokenRequired needs auth.existingSecret" --set insecure=true --set auth.metricsTokenRequired=true
refuse "tls.clientCASecret needs tls.existingSecret" "${auth[@]}" --set tls.clientCASecret=ca
refuse "needs serviceMonitor.bearerTokenSecret.name" "${auth[@]}" --set auth.metricsTokenRequired=true --set serviceMonitor.enabled=true
refuse "needs serviceMonitor.tlsConfig.caSecret.name or serviceMonitor.tlsConfig.insecureSkipVerify" "${auth[@]}" --set tls.existingSecret=t --set serviceMonitor.enabled=true
refuse "flags.insecure: the chart sets --insecure" "${auth[@]}" --set flags.insecure=true
refuse "must exceed preStopSleepSeconds + shutdownTimeoutSeconds" "${auth[@]}" --set terminationGracePeriodSeconds=35
refuse "kafka.sasl.enabled needs kafka.sasl.existingSecret" "${auth[@]}" --set kafka.brokers=k:9092 --set kafka.sasl.enabled=true
refuse "backup.enabled needs backup.destination" "${auth[@]}" --set backup.enabled=true
refuse "flags.shards: the chart sets --shards" "${auth[@]}" --set flags.shards=8
refuse "cluster.enabled needs kafka.brokers" "${auth[@]}" --set cluster.enabled=true --set replicaCount=3
refuse "each partition needs 1 + standbys pods" "${auth[@]}" --set cluster.enabled=true --set kafka.brokers=k:9092 --set replicaCount=2 --set cluster.standbys=2
refuse "flags.standbys: the chart sets --standbys" "${auth[@]}" --set flags.standbys=2
echo "rendered manifests: $out"
