#!/usr/bin/env bash
# Builds the real Kubernetes control-plane binaries the integration tests run (kube-apiserver, etcd,
# kube-controller-manager, kube-scheduler, kubectl, kwok, helm) from the Go module proxy, into a cache
# directory keyed by every version involved. A complete set is marked by `.complete`; when it exists
# this script runs no Go at all and just prints the directory.
#
#   hack/test-bins.sh            # build if needed, print the bin dir on stdout (logs go to stderr)
#   hack/test-bins.sh --print    # print the bin dir if complete, exit 1 otherwise
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

log() { printf '[test-bins] %s\n' "$*" >&2; }

root="${MELANGE_TEST_BIN_ROOT:-$HOME/.cache/melange-operator/test-bins}"
have_go=0; command -v go >/dev/null 2>&1 && have_go=1
if [ $have_go = 1 ]; then
  goos=$(go env GOOS); goarch=$(go env GOARCH); goversion=$(go env GOVERSION)
else
  goos=$(uname -s | tr '[:upper:]' '[:lower:]')
  case "$(uname -m)" in x86_64) goarch=amd64 ;; aarch64|arm64) goarch=arm64 ;; *) goarch=$(uname -m) ;; esac
  goversion=
fi
prefix="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}_${goos}-${goarch}"
if [ $have_go = 1 ]; then
  bin="$root/${prefix}_${goversion}"
  if [ -f "$bin/.complete" ]; then echo "$bin"; exit 0; fi
else
  # Warm machine without Go: any complete set of the pinned versions will do (the binaries are static).
  for d in $(ls -1d "$root/${prefix}_go"* 2>/dev/null | sort -r); do
    if [ -f "$d/.complete" ]; then echo "$d"; exit 0; fi
  done
fi
if [ "${1:-}" = "--print" ]; then exit 1; fi
if [ $have_go = 0 ]; then
  log "Go is required to build the test control plane (kube-apiserver, etcd, ...) from Go modules."
  log "Install Go >= 1.26 (e.g. 'apt-get install golang-1.26' or from the Go module proxy toolchain) and re-run."
  exit 3
fi
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"

# Keep all Go state for these builds in one prunable place, outside the project tree.
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$root/gomod}" GOCACHE="$root/gobuild"
src="$root/src"; mkdir -p "$src"
out="$bin.partial.$$"; rm -rf "$out"; mkdir -p "$out"
trap 'rm -rf "$out"' EXIT
start=$(date +%s)

build_k8s() {
  local d="$src/k8s-$K8S_VERSION"; mkdir -p "$d"; cd "$d"
  [ -f go.mod ] || go mod init local/k8s-test-bins >/dev/null 2>&1
  local kgomod staging
  kgomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": *"\([^"]*\)".*/\1/p')
  # Every staging module k8s.io/kubernetes maps to ./staging must be replaced by its published release.
  staging=$(awk '{for(i=2;i<NF;i++) if($i=="=>" && $(i+1) ~ /^\.\/staging\//) print $(i-1)}' "$kgomod" | sort -u)
  log "k8s $K8S_VERSION: replacing $(echo "$staging" | wc -l) staging modules with $K8S_STAGING_VERSION"
  for m in $staging; do go mod edit -replace="$m=$m@$K8S_STAGING_VERSION"; done
  go mod edit -require="k8s.io/kubernetes@$K8S_VERSION" -go=1.26.0
  local minor ldf="-s -w" kv
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  # Without these the server reports v0.0.0-master, which breaks helm kubeVersion checks.
  for kv in "gitVersion=$K8S_VERSION" "gitMajor=1" "gitMinor=$minor" "gitTreeState=clean" \
            "gitCommit=0000000000000000000000000000000000000000" "buildDate=2026-01-01T00:00:00Z"; do
    ldf="$ldf -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
  done
  log "building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (slow on a cold cache)"
  go build -mod=mod -tags=selinux,notest -ldflags="$ldf" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
}

build_etcd() {
  # server/v3's go.mod has relative replaces, so `go install` refuses it: use a throwaway module.
  local d="$src/etcd-$ETCD_VERSION"; mkdir -p "$d"; cd "$d"
  [ -f go.mod ] || go mod init local/etcd-test-bin >/dev/null 2>&1
  go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  log "building etcd $ETCD_VERSION"
  go build -mod=mod -ldflags="-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
}

build_kwok() {
  log "building kwok $KWOK_VERSION"
  GOBIN="$out" go install -ldflags="-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  local dir sep="" f
  dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": *"\([^"]*\)".*/\1/p')
  # Bare kwok (unlike kwokctl) has no default stages: ship the upstream ones next to the binary.
  for f in node/fast/node-initialize.yaml pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [ -n "$sep" ] && echo '---'; sep=1
    cat "$dir/kustomize/stage/$f"; echo
  done > "$out/kwok-stages.yaml"
}

build_helm() {
  log "building helm $HELM_VERSION"
  GOBIN="$out" go install -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

build_etcd
build_k8s
build_kwok
build_helm
"$out/kube-apiserver" --version >&2
cp "$here/versions.env" "$out/versions.env"
echo "build_seconds=$(( $(date +%s) - start )) built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ) go=$goversion" > "$out/BUILD_INFO"
( cd "$out" && sha256sum etcd kube-* kubectl kwok helm > SHA256SUMS )
touch "$out/.complete"
rm -rf "$bin"; mv -T "$out" "$bin"; trap - EXIT
log "built in $(( $(date +%s) - start ))s into $bin"
echo "$bin"
