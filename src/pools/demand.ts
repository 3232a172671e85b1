// Pure sizing of a GPUPool: demanded GPUs from the LLMServices placed on it, desired nodes within
// [minNodes, maxNodes], and a bounded change per step. No I/O here.

/** What one LLMService asks of the pools: replicas per pool (planned or still ready) and GPUs per replica per pool. */
export interface ServiceDemand {
  namespace: string;
  name: string;
  /** pool -> max(planned, ready) replicas (status.allocation[].replicas, .readyReplicas). */
  replicas: Readonly<Record<string, number>>;
  /** pool -> spec.gpus[].gpusPerReplica (default 1). */
  gpusPerReplica: Readonly<Record<string, number>>;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const nonNegInt = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined);

/**
 * Reads the demand of a raw LLMService (as cached by the informer): replicas come from `status.allocation`
 * (what the LLMService controller decided and applies), GPUs per replica from `spec.gpus`. Ready replicas
 * above the plan count too: after a change of mix the old Deployment keeps its pods through the stabilization
 * window and the paced drain, and taking their nodes away first would drop the capacity that is serving. A
 * pool in the allocation but no longer in spec.gpus keeps counting (its Deployment still runs until scaled
 * down) with 1 GPU per replica unless known otherwise. Malformed entries are ignored.
 */
export function serviceDemandOf(raw: unknown): ServiceDemand | undefined {
  if (!isObj(raw) || !isObj(raw.metadata)) return undefined;
  const { namespace, name } = raw.metadata;
  if (typeof namespace !== 'string' || typeof name !== 'string') return undefined;
  const gpusPerReplica: Record<string, number> = {};
  const spec = isObj(raw.spec) ? raw.spec : {};
  if (Array.isArray(spec.gpus)) {
    for (const g of spec.gpus) {
      if (!isObj(g) || typeof g.pool !== 'string') continue;
      const n = nonNegInt(g.gpusPerReplica);
      gpusPerReplica[g.pool] = n !== undefined && n > 0 ? n : 1;
    }
  }
  const replicas: Record<string, number> = {};
  const status = isObj(raw.status) ? raw.status : {};
  if (Array.isArray(status.allocation)) {
    for (const a of status.allocation) {
      if (!isObj(a) || typeof a.pool !== 'string') continue;
      const n = nonNegInt(a.replicas);
      const ready = nonNegInt(a.readyReplicas) ?? 0;
      if (n !== undefined) replicas[a.pool] = Math.max(n, ready);
    }
  }
  return { namespace, name, replicas, gpusPerReplica };
}

/** Σ over services of replicas × gpusPerReplica on `pool`. */
export function demandedGPUs(pool: string, services: readonly ServiceDemand[]): number {
  let sum = 0;
  for (const s of services) {
    const r = s.replicas[pool] ?? 0;
    if (r > 0) sum += r * (s.gpusPerReplica[pool] ?? 1);
  }
  return sum;
}

export interface NodeTarget {
  /** ⌈demand / gpusPerNode⌉ clamped to [minNodes, maxNodes]. */
  nodes: number;
  /** ⌈demand / gpusPerNode⌉ before clamping. */
  needed: number;
  /** True when maxNodes cut the target below what the demand needs. */
  capped: boolean;
}

export function desiredNodes(demandGPUs: number, pool: { gpusPerNode: number; minNodes: number; maxNodes?: number | undefined }): NodeTarget {
  if (!(pool.gpusPerNode >= 1)) throw new RangeError('gpusPerNode must be >= 1');
  const needed = Math.ceil(Math.max(0, demandGPUs) / pool.gpusPerNode);
  let nodes = Math.max(needed, pool.minNodes);
  if (pool.maxNodes !== undefined) nodes = Math.min(nodes, pool.maxNodes);
  return { nodes, needed, capped: pool.maxNodes !== undefined && needed > pool.maxNodes };
}

/**
 * Bounded change per reconcile: the provider target moves from `current` toward `target` by at most
 * `maxUp` nodes up or `maxDown` nodes down per step. Adding capacity is fast, removing it is slow (new
 * capacity first, old capacity drains). The defaults are documented in docs/pools.md.
 */
export interface StepLimits {
  maxUp: number;
  maxDown: number;
}
export const DEFAULT_STEP_LIMITS: StepLimits = { maxUp: 10, maxDown: 2 };

export function boundedStep(current: number | undefined, target: number, limits: StepLimits = DEFAULT_STEP_LIMITS): number {
  if (current === undefined) return target; // nothing to move from: the first target is taken as is
  if (target > current) return Math.min(target, current + Math.max(1, limits.maxUp));
  if (target < current) return Math.max(target, current - Math.max(1, limits.maxDown));
  return current;
}
