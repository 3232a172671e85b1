#!/usr/bin/env bash
# End-to-end on a real kind cluster, for users with Docker and internet access:
#   creates a kind cluster (1 control plane + 2 workers), builds the operator image from the Dockerfile and
#   loads it into kind, installs the Helm chart, fakes GPU capacity on the workers (labels + an extended
#   resource, no real GPU), applies the example GPUPools and GPUProfiles and an LLMService whose model
#   server is `melangectl emulate` (a vLLM EMULATOR from the same image, no model, no GPU), and waits for
#   the LLMService to be Ready.
#
# NOT run in this project's CI: the build machines have no Docker engine and no registry access. CI covers
# the same ground with a real kube-apiserver built from Go modules (test/integration/ship-*.test.ts).
#
# Usage: test/e2e/kind.sh [--keep] [--skip-build]
#   --keep         leave the cluster running afterwards (default: delete it)
#   --skip-build   reuse an already built $IMAGE
# Environment: KIND_CLUSTER (melange-e2e), IMAGE (melange-operator:e2e), KIND_NODE_IMAGE (kind's default),
#              TIMEOUT (10m, for each wait)
# Needs: docker, kind (>= 0.23), kubectl, helm (>= 3.14) on PATH.
set -euo pipefail

KIND_CLUSTER=${KIND_CLUSTER:-melange-e2e}
IMAGE=${IMAGE:-melange-operator:e2e}
TIMEOUT=${TIMEOUT:-10m}
OP_NS=melange-system
APP_NS=llm-e2e
KEEP=0
BUILD=1
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=1 ;;
    --skip-build) BUILD=0 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/../.."
log() { printf '\n[e2e] %s\n' "$*" >&2; }
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "[e2e] $tool is required on PATH" >&2; exit 2; }
done

CTX="kind-${KIND_CLUSTER}"
k() { kubectl --context "$CTX" "$@"; }

cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    log "FAILED (exit $rc); state for debugging:"
    k get llmservices -A -o wide 2>/dev/null || true
    k get deployments,pods -A -o wide 2>/dev/null || true
    k -n "$OP_NS" logs deployment/melange-operator --tail=50 2>/dev/null || true
  fi
  if [ "$KEEP" -eq 0 ]; then
    log "deleting kind cluster $KIND_CLUSTER (use --keep to leave it)"
    kind delete cluster --name "$KIND_CLUSTER" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT

log "1/7 kind cluster $KIND_CLUSTER"
if ! kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
  kind create cluster --name "$KIND_CLUSTER" ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 120s --config - <<'KIND'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
  - role: worker
  - role: worker
KIND
fi

log "2/7 image $IMAGE"
if [ "$BUILD" -eq 1 ]; then docker build -t "$IMAGE" .; fi
kind load docker-image "$IMAGE" --name "$KIND_CLUSTER"

log "3/7 fake GPU nodes: worker 1 = 8x L4, worker 2 = 8x A100-80GB (labels + extended resource only)"
mapfile -t WORKERS < <(k get nodes -l '!node-role.kubernetes.io/control-plane' -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | sort)
[ "${#WORKERS[@]}" -ge 2 ] || { echo "[e2e] expected 2 worker nodes, found ${#WORKERS[@]}" >&2; exit 1; }
gpu_node() { # node product
  k label node "$1" "nvidia.com/gpu.product=$2" --overwrite
  k patch node "$1" --subresource=status --type=json -p '[{"op":"add","path":"/status/capacity/nvidia.com~1gpu","value":"8"}]'
}
gpu_node "${WORKERS[0]}" NVIDIA-L4
gpu_node "${WORKERS[1]}" NVIDIA-A100-SXM4-80GB

log "4/7 helm install (chart charts/melange-operator, CRDs included)"
helm upgrade --install melange-operator charts/melange-operator --kube-context "$CTX" \
  --namespace "$OP_NS" --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never \
  --wait --timeout "$TIMEOUT"
k -n "$OP_NS" rollout status deployment/melange-operator --timeout "$TIMEOUT"
k wait --for=condition=Established crd/llmservices.melange.dev crd/gpuprofiles.melange.dev crd/gpupools.melange.dev --timeout 60s

log "5/7 GPU pools (cluster-scoped) and profiles (namespace $APP_NS)"
k apply -f examples/gpupools.yaml
k create namespace "$APP_NS" --dry-run=client -o yaml | k apply -f -
k -n "$APP_NS" apply -f examples/gpuprofiles-llama2-7b.yaml

log "6/7 LLMService chat-e2e: model servers are the vLLM emulator (melangectl emulate) from the operator image"
k -n "$APP_NS" apply -f - <<YAML
apiVersion: melange.dev/v1alpha1
kind: LLMService
metadata:
  name: chat-e2e
spec:
  model: meta-llama/Llama-2-7b-hf
  slo:
    tpotMillis: 120
  buckets:
    inputEdges: [25, 100, 250, 500, 1000, 2000, 4000, 8000, 12000, 16000]
    outputEdges: [25, 100, 250, 500, 1000, 2000]
  gpus:
    - pool: l4
      profile: llama2-7b-l4
      maxReplicas: 8
    - pool: a100
      profile: llama2-7b-a100
      maxReplicas: 8
  workload:
    source: Static
    static:
      requestsPerSecond: 4
      distribution:
        - [4.0, 6.0, 5.0, 2.0, 0.5, 0.0]
        - [5.0, 9.0, 8.0, 4.0, 1.0, 0.2]
        - [3.0, 7.0, 8.0, 5.0, 1.5, 0.3]
        - [2.0, 4.0, 6.0, 4.0, 1.5, 0.3]
        - [1.0, 2.0, 3.0, 2.5, 1.0, 0.2]
        - [0.5, 1.0, 1.5, 1.0, 0.5, 0.1]
        - [0.2, 0.4, 0.5, 0.4, 0.2, 0.05]
        - [0.1, 0.2, 0.2, 0.1, 0.05, 0.0]
        - [0.0, 0.05, 0.05, 0.05, 0.0, 0.0]
        - [0.0, 0.02, 0.02, 0.01, 0.0, 0.0]
  template:
    spec:
      containers:
        - name: server
          image: ${IMAGE}
          imagePullPolicy: Never
          command: [node, /app/bin/melangectl.js, emulate]
          args: [--gpu, \$(GPU_TYPE), --host, 0.0.0.0, --port, "8000"]
          env:
            - name: GPU_TYPE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.labels['melange.dev/gpu-type']
          ports:
            - {name: http, containerPort: 8000}
          readinessProbe:
            httpGet: {path: /health, port: http}
            periodSeconds: 5
          securityContext:
            runAsNonRoot: true
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
YAML

log "7/7 waiting for chat-e2e to be Ready (solved, Deployments applied, replicas ready)"
k -n "$APP_NS" wait llmservice/chat-e2e --for=condition=Ready --timeout "$TIMEOUT"
k -n "$APP_NS" get llmservices -o wide
k -n "$APP_NS" get deployments -l app.kubernetes.io/managed-by=melange-operator -o wide
k -n "$APP_NS" get events --field-selector involvedObject.name=chat-e2e
log "PASS: chat-e2e is Ready on the planned GPU mix"
