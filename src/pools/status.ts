import { setCondition, type ConditionUpdate } from '../api/conditions.js';
import { GPUPoolConditionTypes as C, type GPUPoolStatus } from '../api/gpupool.js';
import type { NodeTarget } from './demand.js';
import type { NodeObservation } from './nodes.js';

// Pure: the GPUPool status from what was observed and decided. Conditions:
//   CapacityProvisioned  True  NodesReady          ready nodes >= desired nodes
//                        False WaitingForNodes     the provider was asked; nodes are not there yet
//                        False CapacityExhausted   maxNodes is below what the demand needs (numbers in message)
//                        False ProviderError       the provider target could not be read or written
//                        False NoNodeSelector      the pool has no nodeSelector: its nodes cannot be counted
//   Ready                mirrors CapacityProvisioned (True/NodesReady, or False with its reason)

export interface PoolStatusInputs {
  generation: number | undefined;
  demandedGPUs: number;
  gpusPerNode: number;
  maxNodes: number | undefined;
  target: NodeTarget;
  /** What the provider was set to this step (bounded); for None, the target. */
  desiredNodes: number;
  nodes: NodeObservation | undefined;
  providerType: string;
  providerError?: string | undefined;
}

export function buildPoolStatus(prev: GPUPoolStatus | undefined, i: PoolStatusInputs, now: Date): GPUPoolStatus {
  const gen = i.generation;
  const g = gen !== undefined ? { observedGeneration: gen } : {};
  const ready = i.nodes?.readyNodes ?? 0;
  let capacity: ConditionUpdate;
  if (i.nodes === undefined) {
    capacity = { type: C.CapacityProvisioned, status: 'False', ...g, reason: 'NoNodeSelector', message: 'spec.nodeSelector is empty: the pool\'s nodes cannot be selected' };
  } else if (i.providerError !== undefined) {
    capacity = { type: C.CapacityProvisioned, status: 'False', ...g, reason: 'ProviderError', message: `${i.providerType}: ${i.providerError}` };
  } else if (i.target.capped) {
    capacity = {
      type: C.CapacityProvisioned,
      status: 'False',
      ...g,
      reason: 'CapacityExhausted',
      message: `demand ${i.demandedGPUs} GPUs needs ${i.target.needed} nodes of ${i.gpusPerNode} GPUs; maxNodes is ${i.maxNodes}`,
    };
  } else if (ready < i.target.nodes) {
    capacity = {
      type: C.CapacityProvisioned,
      status: 'False',
      ...g,
      reason: 'WaitingForNodes',
      message: `${ready}/${i.target.nodes} nodes ready (${i.nodes.allocatableGPUs} GPUs allocatable, ${i.demandedGPUs} demanded)`,
    };
  } else {
    capacity = {
      type: C.CapacityProvisioned,
      status: 'True',
      ...g,
      reason: 'NodesReady',
      message: `${ready} nodes ready for ${i.target.nodes} desired (${i.nodes.allocatableGPUs} GPUs allocatable, ${i.demandedGPUs} demanded)`,
    };
  }
  const readyCond: ConditionUpdate =
    capacity.status === 'True'
      ? { type: C.Ready, status: 'True', ...g, reason: 'NodesReady', message: capacity.message }
      : { type: C.Ready, status: 'False', ...g, reason: capacity.reason, message: capacity.message };
  let conditions = setCondition(prev?.conditions, readyCond, now);
  conditions = setCondition(conditions, capacity, now);
  return {
    ...g,
    conditions,
    desiredNodes: i.desiredNodes,
    readyNodes: ready,
    demandedGPUs: i.demandedGPUs,
    allocatableGPUs: i.nodes?.allocatableGPUs ?? 0,
  };
}

/** Deep equality on the JSON form (status is written only when it changed). */
export function poolStatusEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
        .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}
