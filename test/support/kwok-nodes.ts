/**
 * Fake GPU nodes played by kwok (full profile). A node annotated `kwok.x-k8s.io/node=fake` is taken
 * over by the harness's kwok process, which sets it Ready and runs the pods scheduled onto it
 * (Running, pod IPs from a fake CIDR — never dial them).
 */
import type { KubeConfig, V1Node, V1Taint } from '@kubernetes/client-node';
import { ignoreNotFound, makeClients, mergePatch } from './kube.js';
import { waitFor } from './wait.js';

export const GPU_RESOURCE = 'nvidia.com/gpu';
export const GPU_PRODUCT_LABEL = 'nvidia.com/gpu.product';
export const KWOK_ANNOTATION = 'kwok.x-k8s.io/node';

export interface GpuNodeOptions {
  name: string;
  /** Value of the `nvidia.com/gpu.product` label, e.g. "NVIDIA-A100-SXM4-80GB". */
  product: string;
  /** `nvidia.com/gpu` capacity and allocatable. */
  gpus: number;
  /** GPU memory in MiB (label `nvidia.com/gpu.memory`), optional. */
  gpuMemoryMiB?: number;
  cpu?: string;
  memory?: string;
  pods?: number;
  labels?: Record<string, string>;
  taints?: V1Taint[];
  /** Wait for the node's Ready condition (set by kwok). Default true. */
  waitReady?: boolean;
  readyTimeoutMs?: number;
}

/** The Node object `createGpuNode` sends (exported for tests that want to tweak it). */
export function gpuNodeManifest(o: GpuNodeOptions): V1Node {
  const resources: Record<string, string> = {
    cpu: o.cpu ?? '64',
    memory: o.memory ?? '512Gi',
    pods: String(o.pods ?? 110),
    [GPU_RESOURCE]: String(o.gpus),
  };
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: o.name,
      annotations: { [KWOK_ANNOTATION]: 'fake' },
      labels: {
        'kubernetes.io/hostname': o.name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        type: 'kwok',
        'nvidia.com/gpu.present': 'true',
        [GPU_PRODUCT_LABEL]: o.product,
        'nvidia.com/gpu.count': String(o.gpus),
        ...(o.gpuMemoryMiB !== undefined ? { 'nvidia.com/gpu.memory': String(o.gpuMemoryMiB) } : {}),
        ...o.labels,
      },
    },
    spec: o.taints ? { taints: o.taints } : {},
    status: { capacity: resources, allocatable: resources },
  };
}

/** Creates a fake GPU node managed by kwok and (by default) waits until it is Ready. */
export async function createGpuNode(kc: KubeConfig, opts: GpuNodeOptions): Promise<V1Node> {
  const { core } = makeClients(kc);
  const manifest = gpuNodeManifest(opts);
  let node = await core.createNode({ body: manifest });
  // Nodes keep status on create (kubelet registration relies on it); make sure of the GPU capacity anyway.
  if (node.status?.capacity?.[GPU_RESOURCE] !== String(opts.gpus)) {
    node = await core.patchNodeStatus(
      { name: opts.name, body: { status: { capacity: manifest.status?.capacity, allocatable: manifest.status?.allocatable } } },
      mergePatch(),
    );
  }
  if (opts.waitReady ?? true) node = await waitForNodeReady(kc, opts.name, opts.readyTimeoutMs ?? 60_000);
  return node;
}

/** Waits until the node's Ready condition is True. */
export async function waitForNodeReady(kc: KubeConfig, name: string, timeoutMs = 60_000): Promise<V1Node> {
  const { core } = makeClients(kc);
  return waitFor(
    async () => {
      const n = await core.readNode({ name });
      return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? n : undefined;
    },
    { what: `node ${name} Ready (kwok)`, timeoutMs, intervalMs: 250 },
  );
}

/** Deletes a node (no-op if absent). */
export async function deleteNode(kc: KubeConfig, name: string): Promise<void> {
  const { core } = makeClients(kc);
  await ignoreNotFound(() => core.deleteNode({ name }));
}
