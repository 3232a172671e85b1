import { describe, expect, it } from 'vitest';
import { GPUPoolController, type GPUPoolClient } from '../../../src/controller/gpupool-controller.js';
import { createLogger } from '../../../src/controller/logger.js';
import type { NodeLike } from '../../../src/pools/index.js';
import { pool } from '../controller/fixtures.js';

const SEL = { 'nvidia.com/gpu.product': 'NVIDIA-A10G' };
const gpuNode = (name: string, gpus = 8, ready = true): NodeLike => ({
  metadata: { name, labels: { ...SEL } },
  status: { allocatable: { 'nvidia.com/gpu': String(gpus) }, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
});
const svc = (name: string, replicas: number, gpusPerReplica = 1) => ({
  metadata: { namespace: 'ml', name },
  spec: { gpus: [{ pool: 'small', profile: 'p', gpusPerReplica }] },
  status: { allocation: [{ pool: 'small', replicas, readyReplicas: 0, costPerHour: '1' }] },
});

class FakeClient implements GPUPoolClient {
  calls: string[] = [];
  nodes: NodeLike[] = [];
  scale: Record<string, number | undefined> = {};
  limits: Record<string, string | undefined> = {};
  statuses: Array<{ name: string; rv: string | undefined; status: unknown }> = [];
  plural = { plural: 'nodegroups', namespaced: true };
  async listNodes(sel: string) {
    this.calls.push(`list nodes ${sel}`);
    return this.nodes;
  }
  async get(ref: { plural: string; name: string }, sub?: string) {
    this.calls.push(`get ${ref.plural}/${ref.name}${sub ? `/${sub}` : ''}`);
    if (sub === 'scale') return ref.name in this.scale ? { spec: { replicas: this.scale[ref.name] } } : undefined;
    return ref.name in this.limits ? { spec: { limits: { 'nvidia.com/gpu': this.limits[ref.name] } } } : undefined;
  }
  async patchScale(ref: { plural: string; name: string; namespace?: string }, body: { spec: { replicas: number } }) {
    this.calls.push(`patch ${ref.namespace}/${ref.plural}/${ref.name}/scale ${JSON.stringify(body)}`);
    this.scale[ref.name] = body.spec.replicas;
  }
  async apply(ref: { plural: string; name: string }, body: Record<string, unknown>) {
    this.calls.push(`apply ${ref.plural}/${ref.name} ${JSON.stringify(body)}`);
    this.limits[ref.name] = (body.spec as { limits: Record<string, string> }).limits['nvidia.com/gpu'];
  }
  async resolve(group: string, version: string, kind: string) {
    this.calls.push(`discover ${group}/${version} ${kind}`);
    return this.plural;
  }
  async patchPoolStatus(name: string, rv: string | undefined, status: unknown) {
    this.calls.push(`status ${name}`);
    this.statuses.push({ name, rv, status });
  }
}

const make = (client: FakeClient, pools: ReturnType<typeof pool>[], services: unknown[], events: string[] = []) =>
  new GPUPoolController({
    pools: () => pools,
    services: () => services,
    client,
    log: createLogger('silent'),
    limits: { maxUp: 2, maxDown: 1 },
    events: { emit: async (_r, type, reason, _a, note) => void events.push(`${type} ${reason}: ${note}`) },
    now: () => new Date('2026-01-01T00:00:00Z'),
  });

describe('GPUPoolController', () => {
  it('None: reports demand, desired and ready nodes from a selector-filtered node list', async () => {
    const c = new FakeClient();
    c.nodes = [gpuNode('n1'), gpuNode('n2', 8, false)];
    const p = pool('small', 'A10G', '1.00');
    const r = await make(c, [p], [svc('a', 5, 2), svc('b', 3)]).reconcile(p);
    expect(r).toMatchObject({ demandedGPUs: 13, targetNodes: 2, desiredNodes: 2, providerWrote: false, statusWritten: true });
    expect(c.calls).toEqual(['list nodes nvidia.com/gpu.product=NVIDIA-A10G', 'status small']);
    expect(c.statuses[0]).toMatchObject({ rv: '1', status: { desiredNodes: 2, readyNodes: 1, demandedGPUs: 13, allocatableGPUs: 8 } });
  });

  it('writes status only when it changed', async () => {
    const c = new FakeClient();
    c.nodes = [gpuNode('n1')];
    const p = pool('small', 'A10G', '1.00');
    const ctl = make(c, [p], [svc('a', 1)]);
    await ctl.reconcile(p);
    const written = { ...p, status: c.statuses[0]!.status as typeof p.status };
    const again = await ctl.reconcile(written);
    expect(again.statusWritten).toBe(false);
    expect(c.statuses).toHaveLength(1);
  });

  it('a cache that has not seen its own status write yet does not write it again', async () => {
    const c = new FakeClient();
    c.nodes = [gpuNode('n1')];
    const p = pool('small', 'A10G', '1.00');
    const ctl = make(c, [p], [svc('a', 1)]);
    await ctl.reconcile(p);
    expect((await ctl.reconcile(p)).statusWritten).toBe(false); // same (stale) resourceVersion, same result
    c.nodes = [gpuNode('n1'), gpuNode('n2')];
    expect((await ctl.reconcile(p)).statusWritten).toBe(true); // something really changed
    expect(c.statuses).toHaveLength(2);
  });

  it('ClusterAPI: moves MachineDeployment replicas by bounded steps through /scale', async () => {
    const c = new FakeClient();
    c.scale['md-a10g'] = 0;
    const p = pool('small', 'A10G', '1.00', { provider: { type: 'ClusterAPI', clusterAPI: { namespace: 'capi', name: 'md-a10g' } } });
    const ctl = make(c, [p], [svc('a', 40)]); // 40 GPUs / 8 per node = 5 nodes
    const steps: number[] = [];
    for (let i = 0; i < 4; i++) steps.push((await ctl.reconcile(p)).desiredNodes);
    expect(steps).toEqual([2, 4, 5, 5]);
    expect(c.calls).toContain('patch capi/machinedeployments/md-a10g/scale {"spec":{"replicas":2}}');
    const down = make(c, [p], [svc('a', 8)]); // 1 node
    expect((await down.reconcile(p)).desiredNodes).toBe(4);
  });

  it('Karpenter: applies only the GPU limit of the NodePool', async () => {
    const c = new FakeClient();
    c.limits['gpu'] = '0';
    const p = pool('small', 'A10G', '1.00', { provider: { type: 'Karpenter', karpenter: { nodePool: 'gpu' } } });
    const r = await make(c, [p], [svc('a', 9)]).reconcile(p); // 9 GPUs -> 2 nodes -> limit 16
    expect(r).toMatchObject({ targetNodes: 2, desiredNodes: 2, providerWrote: true });
    expect(c.calls).toContain('apply nodepools/gpu {"apiVersion":"karpenter.sh/v1","kind":"NodePool","metadata":{"name":"gpu"},"spec":{"limits":{"nvidia.com/gpu":"16"}}}');
  });

  it('Scale: resolves the plural by discovery; a missing target is a ProviderError with an event', async () => {
    const c = new FakeClient();
    c.scale['ng'] = 1;
    const p = pool('small', 'A10G', '1.00', { provider: { type: 'Scale', scale: { apiVersion: 'example.com/v1', kind: 'NodeGroup', namespace: 'infra', name: 'ng' } } });
    await make(c, [p], [svc('a', 16)]).reconcile(p);
    expect(c.calls).toContain('discover example.com/v1 NodeGroup');
    expect(c.calls).toContain('patch infra/nodegroups/ng/scale {"spec":{"replicas":2}}');
    const events: string[] = [];
    const missing = pool('small', 'A10G', '1.00', { provider: { type: 'Scale', scale: { apiVersion: 'example.com/v1', kind: 'NodeGroup', namespace: 'infra', name: 'gone' } } });
    await make(c, [missing], [svc('a', 16)], events).reconcile(missing);
    expect(c.statuses.at(-1)!.status).toMatchObject({ conditions: [{ type: 'Ready', status: 'False', reason: 'ProviderError', message: 'Scale: NodeGroup infra/gone not found' }, { type: 'CapacityProvisioned' }] });
    expect(events).toEqual(['Warning ProviderError: Scale: NodeGroup infra/gone not found']);
  });

  it('maxNodes below demand: CapacityExhausted with the numbers and a Warning event', async () => {
    const c = new FakeClient();
    c.nodes = [gpuNode('n1')];
    const events: string[] = [];
    const p = pool('small', 'A10G', '1.00', { maxNodes: 1 });
    const r = await make(c, [p], [svc('a', 20)], events).reconcile(p);
    expect(r.desiredNodes).toBe(1);
    expect(events).toEqual(['Warning CapacityExhausted: demand 20 GPUs needs 3 nodes of 8 GPUs; maxNodes is 1']);
  });

  it('a failing pool does not stop the others', async () => {
    const c = new FakeClient();
    const bad = pool('bad', 'A10G', '1.00');
    const good = pool('small', 'A10G', '1.00');
    c.listNodes = async (sel: string) => {
      if (sel.includes('x')) throw new Error('boom');
      return [];
    };
    const badSel = pool('bad', 'A10G', '1.00', { nodeSelector: { x: 'y' } });
    const out = await make(c, [badSel, good], []).reconcileAll();
    expect(out.map((o) => o.pool)).toEqual(['small']);
    void bad;
  });
});
