#!/usr/bin/env bash
# helm.sh checks the Helm chart at helm/featured without a cluster:
#   - helm (pinned) is built once with `go install` into the git-ignored
#     .cache/bin; a second run builds nothing;
#   - `helm lint --strict` on the default values and on each documented
#     variant (helm/featured/ci/*.yaml);
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

check() { # variant [values file]
	local variant=$1
	shift
	local args=()
	[ $# -gt 0 ] && args=(-f "$1")
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
	echo "ok  refused: $*"
}

check default
for f in "$chart"/ci/*.yaml; do
	check "$(basename "$f" .yaml)" "$f"
done
refuse "must exceed preStopSleepSeconds + shutdownTimeoutSeconds" --set terminationGracePeriodSeconds=35
refuse "kafka.sasl.enabled needs kafka.sasl.existingSecret" --set kafka.brokers=k:9092 --set kafka.sasl.enabled=true
refuse "backup.enabled needs backup.destination" --set backup.enabled=true
refuse "flags.shards: the chart sets --shards" --set flags.shards=8
echo "rendered manifests: $out"
