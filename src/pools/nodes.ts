// Nodes of a pool: selected by a label selector built from spec.nodeSelector (the operator never lists or
// watches all Nodes), ready when NodeReady=True and schedulable, allocatable GPUs summed over ready nodes.

export interface NodeLike {
  metadata?: { name?: string; labels?: Record<string, string>; deletionTimestamp?: unknown };
  spec?: { unschedulable?: boolean };
  status?: { allocatable?: Record<string, string>; conditions?: Array<{ type?: string; status?: string }> };
}

/**
 * `k1=v1,k2=v2` in key order, or undefined for an empty/absent nodeSelector (such a pool cannot be
 * observed: the operator will not fall back to all Nodes).
 */
export function labelSelectorOf(nodeSelector: Readonly<Record<string, string>> | undefined): string | undefined {
  const keys = Object.keys(nodeSelector ?? {}).sort();
  if (keys.length === 0) return undefined;
  return keys.map((k) => `${k}=${nodeSelector![k]}`).join(',');
}

/** True if the node's labels match every entry of the selector (guards a list returning extra nodes). */
export function matchesSelector(node: NodeLike, nodeSelector: Readonly<Record<string, string>>): boolean {
  const labels = node.metadata?.labels ?? {};
  return Object.entries(nodeSelector).every(([k, v]) => labels[k] === v);
}

export function isNodeReady(node: NodeLike): boolean {
  if (node.metadata?.deletionTimestamp) return false;
  if (node.spec?.unschedulable) return false;
  return (node.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** Parses an integer resource quantity ("8", "8k" is not a GPU count); anything else counts 0. */
export function gpuQuantity(q: string | undefined): number {
  if (q === undefined || !/^[0-9]+$/.test(q.trim())) return 0;
  return Number.parseInt(q.trim(), 10);
}

export interface NodeObservation {
  /** Nodes matching the selector (ready or not). */
  nodes: number;
  readyNodes: number;
  allocatableGPUs: number;
}

export function observeNodes(nodes: readonly NodeLike[], nodeSelector: Readonly<Record<string, string>>, resourceName: string): NodeObservation {
  let count = 0;
  let ready = 0;
  let gpus = 0;
  for (const n of nodes) {
    if (!matchesSelector(n, nodeSelector)) continue;
    count++;
    if (!isNodeReady(n)) continue;
    ready++;
    gpus += gpuQuantity(n.status?.allocatable?.[resourceName]);
  }
  return { nodes: count, readyNodes: ready, allocatableGPUs: gpus };
}
