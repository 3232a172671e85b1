import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  boundedStep,
  buildPoolStatus,
  currentTarget,
  demandedGPUs,
  desiredNodes,
  labelSelectorOf,
  objectPath,
  observeNodes,
  poolStatusEqual,
  providerRequest,
  serviceDemandOf,
  type NodeLike,
} from '../../../src/pools/index.js';

const svc = (name: string, gpus: Array<{ pool: string; gpusPerReplica?: number }>, alloc: Array<{ pool: string; replicas: number }>) => ({
  apiVersion: 'melange.dev/v1alpha1',
  kind: 'LLMService',
  metadata: { namespace: 'ns', name },
  spec: { gpus },
  status: { allocation: alloc.map((a) => ({ ...a, readyReplicas: 0, costPerHour: '1' })) },
});

describe('demand', () => {
  it('sums replicas × gpusPerReplica of every service on the pool', () => {
    const a = serviceDemandOf(svc('a', [{ pool: 'a10g', gpusPerReplica: 2 }, { pool: 'a100' }], [{ pool: 'a10g', replicas: 3 }, { pool: 'a100', replicas: 1 }]))!;
    const b = serviceDemandOf(svc('b', [{ pool: 'a10g', gpusPerReplica: 4 }], [{ pool: 'a10g', replicas: 1 }]))!;
    expect(demandedGPUs('a10g', [a, b])).toBe(3 * 2 + 4);
    expect(demandedGPUs('a100', [a, b])).toBe(1);
    expect(demandedGPUs('l4', [a, b])).toBe(0);
  });
  it('a pool still allocated but gone from spec.gpus counts 1 GPU per replica; junk is ignored', () => {
    const d = serviceDemandOf(svc('a', [], [{ pool: 'old', replicas: 2 }]))!;
    expect(demandedGPUs('old', [d])).toBe(2);
    expect(serviceDemandOf({})).toBeUndefined();
    expect(serviceDemandOf({ metadata: { namespace: 'n', name: 'x' }, status: { allocation: [{ pool: 'p', replicas: -1 }, 'x'] } })!.replicas).toEqual({});
  });
  it('ready replicas above the plan (a Deployment draining after a change of mix) keep their nodes', () => {
    const raw = svc('a', [{ pool: 'old', gpusPerReplica: 2 }, { pool: 'new' }], [{ pool: 'old', replicas: 0 }, { pool: 'new', replicas: 3 }]);
    raw.status.allocation[0]!.readyReplicas = 4; // stabilizing: the old pool still serves with 4
    const d = serviceDemandOf(raw)!;
    expect(demandedGPUs('old', [d])).toBe(8);
    expect(demandedGPUs('new', [d])).toBe(3); // not ready yet: the plan counts
  });
  it('no status yet means no demand', () => {
    const d = serviceDemandOf({ metadata: { namespace: 'n', name: 'x' }, spec: { gpus: [{ pool: 'p' }] } })!;
    expect(demandedGPUs('p', [d])).toBe(0);
  });
});

describe('desiredNodes', () => {
  it('is ceil(demand / gpusPerNode) clamped to [min, max]', () => {
    expect(desiredNodes(9, { gpusPerNode: 4, minNodes: 0 })).toEqual({ nodes: 3, needed: 3, capped: false });
    expect(desiredNodes(0, { gpusPerNode: 4, minNodes: 2 })).toEqual({ nodes: 2, needed: 0, capped: false });
    expect(desiredNodes(9, { gpusPerNode: 4, minNodes: 0, maxNodes: 2 })).toEqual({ nodes: 2, needed: 3, capped: true });
    expect(desiredNodes(8, { gpusPerNode: 4, minNodes: 0, maxNodes: 2 })).toEqual({ nodes: 2, needed: 2, capped: false });
  });
  it('property: within bounds, enough GPUs unless capped, minimal', () => {
    fc.assert(
      fc.property(fc.nat(1000), fc.integer({ min: 1, max: 64 }), fc.nat(50), fc.option(fc.nat(100), { nil: undefined }), (d, per, min, maxRaw) => {
        const max = maxRaw === undefined ? undefined : min + maxRaw;
        const t = desiredNodes(d, { gpusPerNode: per, minNodes: min, maxNodes: max });
        expect(t.nodes).toBeGreaterThanOrEqual(min);
        if (max !== undefined) expect(t.nodes).toBeLessThanOrEqual(max);
        if (!t.capped) expect(t.nodes * per).toBeGreaterThanOrEqual(d);
        if (t.nodes > min) expect((t.nodes - 1) * per).toBeLessThan(d);
        expect(t.capped).toBe(max !== undefined && Math.ceil(d / per) > max);
      }),
    );
  });
});

describe('boundedStep', () => {
  it('moves at most maxUp up and maxDown down per step, and converges', () => {
    expect(boundedStep(undefined, 7)).toBe(7);
    expect(boundedStep(0, 25, { maxUp: 10, maxDown: 2 })).toBe(10);
    expect(boundedStep(10, 25, { maxUp: 10, maxDown: 2 })).toBe(20);
    expect(boundedStep(20, 25, { maxUp: 10, maxDown: 2 })).toBe(25);
    expect(boundedStep(10, 3, { maxUp: 10, maxDown: 2 })).toBe(8);
    expect(boundedStep(4, 3, { maxUp: 10, maxDown: 2 })).toBe(3);
    expect(boundedStep(5, 5)).toBe(5);
  });
  it('property: never overshoots and always progresses', () => {
    fc.assert(
      fc.property(fc.nat(200), fc.nat(200), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 20 }), (cur, target, up, down) => {
        const n = boundedStep(cur, target, { maxUp: up, maxDown: down });
        expect(Math.abs(target - n)).toBeLessThanOrEqual(Math.abs(target - cur));
        if (cur !== target) expect(n).not.toBe(cur);
        expect(n - cur).toBeLessThanOrEqual(up);
        expect(cur - n).toBeLessThanOrEqual(down);
      }),
    );
  });
});

const node = (name: string, labels: Record<string, string>, gpus: string, ready = true, extra: Partial<NodeLike> = {}): NodeLike => ({
  metadata: { name, labels },
  status: { allocatable: { 'nvidia.com/gpu': gpus }, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  ...extra,
});

describe('nodes', () => {
  it('builds a sorted equality label selector; none for an empty nodeSelector', () => {
    expect(labelSelectorOf({ 'z.io/b': '2', 'a.io/a': '1' })).toBe('a.io/a=1,z.io/b=2');
    expect(labelSelectorOf({})).toBeUndefined();
    expect(labelSelectorOf(undefined)).toBeUndefined();
  });
  it('counts ready, schedulable, matching nodes and their allocatable GPUs', () => {
    const sel = { pool: 'a' };
    const obs = observeNodes(
      [
        node('n1', { pool: 'a' }, '4'),
        node('n2', { pool: 'a' }, '4', false),
        node('n3', { pool: 'a' }, '4', true, { spec: { unschedulable: true } }),
        node('n4', { pool: 'b' }, '4'),
        node('n5', { pool: 'a' }, 'junk'),
      ],
      sel,
      'nvidia.com/gpu',
    );
    expect(obs).toEqual({ nodes: 4, readyNodes: 2, allocatableGPUs: 4 });
  });
});

describe('providers', () => {
  const base = { gpusPerNode: 4, resourceName: 'nvidia.com/gpu' };
  it('None asks nothing', () => {
    expect(providerRequest({ ...base, provider: { type: 'None' } }, 3)).toEqual({ kind: 'none' });
  });
  it('ClusterAPI scales a MachineDeployment through /scale', () => {
    const r = providerRequest({ ...base, provider: { type: 'ClusterAPI', clusterAPI: { namespace: 'capi', name: 'md-a10g' } } }, 3);
    expect(r).toEqual({
      kind: 'scale',
      ref: { group: 'cluster.x-k8s.io', version: 'v1beta1', plural: 'machinedeployments', kind: 'MachineDeployment', namespace: 'capi', name: 'md-a10g' },
      replicas: 3,
      body: { spec: { replicas: 3 } },
    });
    if (r.kind !== 'scale') throw new Error('unreachable');
    expect(objectPath({ ...r.ref, plural: r.ref.plural! }, 'scale')).toBe('/apis/cluster.x-k8s.io/v1beta1/namespaces/capi/machinedeployments/md-a10g/scale');
    expect(currentTarget(r, { spec: { replicas: 2 } }, 4)).toBe(2);
    expect(currentTarget(r, { spec: {} }, 4)).toBeUndefined();
  });
  it('Karpenter applies only spec.limits[resource] = nodes × gpusPerNode on the NodePool', () => {
    const r = providerRequest({ ...base, resourceName: 'nvidia.com/gpu', provider: { type: 'Karpenter', karpenter: { nodePool: 'gpu-a100' } } }, 3);
    expect(r).toEqual({
      kind: 'apply',
      ref: { group: 'karpenter.sh', version: 'v1', plural: 'nodepools', kind: 'NodePool', name: 'gpu-a100' },
      limit: '12',
      body: { apiVersion: 'karpenter.sh/v1', kind: 'NodePool', metadata: { name: 'gpu-a100' }, spec: { limits: { 'nvidia.com/gpu': '12' } } },
    });
    expect(currentTarget(r, { spec: { limits: { 'nvidia.com/gpu': '9', cpu: '100' } } }, 4)).toBe(2);
    expect(currentTarget(r, { spec: {} }, 4)).toBeUndefined();
  });
  it('Scale addresses any kind (plural resolved later by discovery); core group paths too', () => {
    const r = providerRequest({ ...base, provider: { type: 'Scale', scale: { apiVersion: 'example.com/v1', kind: 'NodeGroup', namespace: 'infra', name: 'ng1' } } }, 5);
    expect(r).toEqual({ kind: 'scale', ref: { group: 'example.com', version: 'v1', kind: 'NodeGroup', namespace: 'infra', name: 'ng1' }, replicas: 5, body: { spec: { replicas: 5 } } });
    if (r.kind !== 'scale') throw new Error('unreachable');
    expect(objectPath({ ...r.ref, plural: 'nodegroups' }, 'scale')).toBe('/apis/example.com/v1/namespaces/infra/nodegroups/ng1/scale');
    expect(objectPath({ group: '', version: 'v1', plural: 'replicationcontrollers', kind: 'ReplicationController', namespace: 'x', name: 'y' }, 'scale')).toBe('/api/v1/namespaces/x/replicationcontrollers/y/scale');
    const cluster = providerRequest({ ...base, provider: { type: 'Scale', scale: { apiVersion: 'example.com/v1', kind: 'NodeGroup', name: 'ng1' } } }, 1);
    if (cluster.kind !== 'scale') throw new Error('unreachable');
    expect(objectPath({ ...cluster.ref, plural: 'nodegroups' }, 'scale')).toBe('/apis/example.com/v1/nodegroups/ng1/scale');
  });
});

describe('buildPoolStatus', () => {
  const now = new Date('2026-01-01T00:00:00Z');
  const base = { generation: 3, demandedGPUs: 9, gpusPerNode: 4, maxNodes: undefined, providerType: 'ClusterAPI' };
  const cond = (s: { conditions?: Array<{ type: string; status: string; reason: string; message: string }> }, t: string) => s.conditions!.find((c) => c.type === t)!;

  it('Ready when enough nodes are ready', () => {
    const s = buildPoolStatus(undefined, { ...base, target: { nodes: 3, needed: 3, capped: false }, desiredNodes: 3, nodes: { nodes: 3, readyNodes: 3, allocatableGPUs: 12 } }, now);
    expect(s).toMatchObject({ observedGeneration: 3, desiredNodes: 3, readyNodes: 3, demandedGPUs: 9, allocatableGPUs: 12 });
    expect(cond(s, 'Ready')).toMatchObject({ status: 'True', reason: 'NodesReady' });
    expect(cond(s, 'CapacityProvisioned')).toMatchObject({ status: 'True', reason: 'NodesReady' });
  });
  it('WaitingForNodes while the provider catches up; unchanged inputs give an equal status', () => {
    const i = { ...base, target: { nodes: 3, needed: 3, capped: false }, desiredNodes: 3, nodes: { nodes: 2, readyNodes: 1, allocatableGPUs: 4 } };
    const s = buildPoolStatus(undefined, i, now);
    expect(cond(s, 'Ready')).toMatchObject({ status: 'False', reason: 'WaitingForNodes', message: '1/3 nodes ready (4 GPUs allocatable, 9 demanded)' });
    expect(poolStatusEqual(s, buildPoolStatus(s, i, new Date('2026-01-01T01:00:00Z')))).toBe(true);
  });
  it('CapacityExhausted with the numbers when maxNodes is below the need', () => {
    const s = buildPoolStatus(undefined, { ...base, maxNodes: 2, target: { nodes: 2, needed: 3, capped: true }, desiredNodes: 2, nodes: { nodes: 2, readyNodes: 2, allocatableGPUs: 8 } }, now);
    expect(cond(s, 'Ready')).toMatchObject({ status: 'False', reason: 'CapacityExhausted', message: 'demand 9 GPUs needs 3 nodes of 4 GPUs; maxNodes is 2' });
  });
  it('ProviderError and NoNodeSelector', () => {
    const t = { nodes: 3, needed: 3, capped: false };
    expect(cond(buildPoolStatus(undefined, { ...base, target: t, desiredNodes: 3, nodes: { nodes: 0, readyNodes: 0, allocatableGPUs: 0 }, providerError: 'HTTP 404' }, now), 'Ready')).toMatchObject({ reason: 'ProviderError', message: 'ClusterAPI: HTTP 404' });
    expect(cond(buildPoolStatus(undefined, { ...base, target: t, desiredNodes: 3, nodes: undefined }, now), 'Ready')).toMatchObject({ reason: 'NoNodeSelector' });
  });
});
