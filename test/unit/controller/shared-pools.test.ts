// Services sharing a capped GPUPool, through the Reconciler: the joint decision is made once per snapshot
// (memoised), each service applies its own share, the others are enqueued when their share moves, the cap
// goes to the cheapest total (checked by brute force), and priority decides who is served when it cannot
// carry everyone (CapacityExhausted with the numbers, a Warning event, the last allocation kept).
import { describe, expect, it } from 'vitest';
import { bruteForceJointCost } from '../../support/brute-force-joint.js';
import { findCondition, parseLLMService, type GPUPool, type GPUProfile } from '../../../src/api/index.js';
import type { DeploymentManifest } from '../../../src/controller/desired.js';
import { createLogger } from '../../../src/controller/logger.js';
import { Reconciler } from '../../../src/controller/reconciler.js';
import type { ClusterView, ObservedDeployment } from '../../../src/controller/view.js';
import { WorkloadSources } from '../../../src/controller/workload.js';
import type { ClusterWriter } from '../../../src/controller/writer.js';
import { isSuccess, loadHighsEngine, solve } from '../../../src/solver/index.js';
import { instanceFromService } from '../../../src/solver/from-api.js';
import { pool, profile } from './fixtures.js';

const engine = await loadHighsEngine();
type Obj = Record<string, any>;
const BUCKETS = { inputEdges: [1000], outputEdges: [100, 500] };

function prof(name: string, gpuType: string, thr: number[][]): GPUProfile {
  const p = profile(name, gpuType, [[0, 0], [0, 0]]);
  return { ...p, spec: { ...p.spec, buckets: BUCKETS, maxThroughput: thr } };
}

function svc(name: string, rate: number, distribution: number[][], gpus: string[], priority = 0): Obj {
  return {
    apiVersion: 'melange.dev/v1alpha1',
    kind: 'LLMService',
    metadata: { name, namespace: 'ml', uid: `uid-${name}`, generation: 1, resourceVersion: '1' },
    spec: {
      model: 'm',
      slo: { tpotMillis: 100 },
      buckets: BUCKETS,
      priority,
      gpus: gpus.map((p) => ({ pool: p, profile: `p-${p}` })),
      workload: { source: 'Static', static: { requestsPerSecond: rate, distribution } },
      template: { spec: { containers: [{ name: 'vllm', image: 'vllm:1' }] } },
    },
  };
}

/** Several services in one namespace; Deployments keyed by service and pool. */
class World implements ClusterWriter {
  svcs = new Map<string, Obj>();
  poolList: GPUPool[];
  profileList: GPUProfile[];
  deps = new Map<string, Map<string, ObservedDeployment>>();
  events: string[] = [];
  enqueued: string[] = [];
  rv = 100;
  constructor(pools: GPUPool[], profiles: GPUProfile[]) {
    this.poolList = pools;
    this.profileList = profiles;
  }
  put(o: Obj): void {
    const prev = this.svcs.get(o.metadata.name);
    this.svcs.set(o.metadata.name, { ...o, metadata: { ...o.metadata, resourceVersion: String(++this.rv), generation: (prev?.metadata.generation ?? 0) + 1 }, status: prev?.status });
  }
  view(): ClusterView {
    return {
      service: (_ns, name) => structuredClone(this.svcs.get(name)),
      services: () => [...this.svcs.values()].flatMap((o) => {
        const r = parseLLMService(structuredClone(o), { strict: false });
        return r.ok ? [r.value] : [];
      }),
      profiles: () => this.profileList,
      pools: () => this.poolList,
      deployments: (_ns, uid) => [...(this.deps.get(uid.replace(/^uid-/, '')) ?? new Map()).values()],
    };
  }
  async applyDeployment(d: DeploymentManifest): Promise<void> {
    const name = d.metadata.labels['melange.dev/service']!;
    const pool = d.metadata.labels['melange.dev/pool']!;
    const m = this.deps.get(name) ?? new Map<string, ObservedDeployment>();
    this.deps.set(name, m);
    m.set(pool, { name: d.metadata.name, pool, exists: true, replicas: d.spec.replicas, readyReplicas: d.spec.replicas, observed: true, appliedHash: d.metadata.annotations['melange.dev/applied-hash']! });
  }
  async scaleDeployment(): Promise<void> {}
  async patchServiceStatus(_ns: string, name: string, _rv: string | undefined, patch: unknown) {
    const o = this.svcs.get(name)!;
    const status = merge(o.status, patch);
    this.svcs.set(name, { ...o, metadata: { ...o.metadata, resourceVersion: String(++this.rv) }, status });
    return { resourceVersion: String(this.rv), status };
  }
  status(name: string): Obj {
    return this.svcs.get(name)!.status;
  }
}

function merge(target: unknown, patch: unknown): any {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Obj = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as Obj) } : {};
  for (const [k, v] of Object.entries(patch as Obj)) {
    if (v === null) delete out[k];
    else out[k] = merge(out[k], v);
  }
  return out;
}

function setup(world: World) {
  let solves = 0;
  const r = new Reconciler({
    view: world.view(),
    writer: world,
    events: { emit: async (_ref, type, reason, _a, note) => void world.events.push(`${type} ${reason}: ${note}`) },
    workload: new WorkloadSources(),
    solve: async (i) => {
      solves++;
      return solve(i, engine);
    },
    log: createLogger('silent'),
    enqueue: (k) => world.enqueued.push(k),
  });
  return { r, solves: () => solves };
}

const onPool = (st: Obj, p: string): number => st.allocation?.find((a: Obj) => a.pool === p)?.replicas ?? 0;
const cond = (st: Obj, t: string) => findCondition(st?.conditions, t);


describe('Reconciler: services sharing a capped GPUPool', () => {
  const pools = [pool('shared', 'T4', '1.00', { gpusPerNode: 2, maxNodes: 2 }), pool('other', 'L40', '2.50')];
  const profiles = [prof('p-shared', 'T4', [[2, 1]]), prof('p-other', 'L40', [[3, 2]])];

  it('splits the cap at the lowest total cost (brute force), computes the decision once, and enqueues the other sharer', async () => {
    const world = new World(pools, profiles);
    world.put(svc('a', 4, [[3, 1]], ['shared', 'other']));
    world.put(svc('b', 3, [[1, 1]], ['shared', 'other']));
    const { r } = setup(world);
    // Alone, each would take more of the cheap pool than the 4 GPUs there are.
    const alone = world.view().services!().map((s) => {
      const inst = instanceFromService(s, { profiles, pools });
      if (!inst.ok) throw new Error(JSON.stringify(inst.errors));
      const res = solve({ ...inst.value.input, gpus: inst.value.input.gpus.map(({ maxReplicas: _cap, ...g }) => g) }, engine);
      return isSuccess(res) ? (res.allocation.find((x) => x.id === 'shared')?.replicas ?? 0) : NaN;
    });
    expect(alone[0]! + alone[1]!).toBeGreaterThan(4);

    await r.reconcile('ml/a');
    expect(world.enqueued).toEqual(['ml/b']);
    await r.reconcile('ml/b');
    await r.reconcile('ml/a');
    await r.reconcile('ml/b');
    expect(r.jointComputations).toBe(1);
    console.info(`[shared-pools] alone on the cheap pool: ${alone.join(' + ')} > 4; joint: a ${world.status('a').mix} $${world.status('a').costPerHour}, b ${world.status('b').mix} $${world.status('b').costPerHour}`);

    const [sa, sb] = [world.status('a'), world.status('b')];
    expect(onPool(sa, 'shared') + onPool(sb, 'shared')).toBeLessThanOrEqual(4);
    const brute = bruteForceJointCost(world.view().services!(), { pools, profiles }, 'shared', 4, engine, 8);
    expect(Number(sa.costPerHour) + Number(sb.costPerHour)).toBeCloseTo(brute, 2);
    expect(cond(sa, 'Solved')?.status).toBe('True');
    expect(cond(sb, 'Solved')?.status).toBe('True');
  });

  it('a change in one sharer re-decides and enqueues the other when its share moves; a deleted sharer frees its room', async () => {
    const world = new World(pools, profiles);
    world.put(svc('a', 4, [[3, 1]], ['shared', 'other']));
    world.put(svc('b', 3, [[1, 1]], ['shared', 'other']));
    const { r } = setup(world);
    await r.reconcile('ml/a');
    await r.reconcile('ml/b');
    const before = onPool(world.status('b'), 'shared');
    world.enqueued = [];
    world.put(svc('a', 0.5, [[3, 1]], ['shared', 'other'])); // a needs less of the pool now
    await r.reconcile('ml/a');
    expect(r.jointComputations).toBe(2);
    expect(world.enqueued).toEqual(['ml/b']);
    await r.reconcile('ml/b');
    expect(onPool(world.status('b'), 'shared')).toBeGreaterThan(before);
    expect(onPool(world.status('a'), 'shared') + onPool(world.status('b'), 'shared')).toBeLessThanOrEqual(4);

    world.enqueued = [];
    world.svcs.delete('a');
    await r.reconcile('ml/a');
    expect(world.enqueued).toEqual(['ml/b']);
  });

  it('when the cap cannot carry both, the higher priority is served; the other is CapacityExhausted with the numbers and keeps its last allocation', async () => {
    const tight = [pool('shared', 'T4', '1.00', { gpusPerNode: 2, maxNodes: 1 }), pool('other', 'L40', '2.50')];
    const world = new World(tight, profiles);
    // Only the shared pool: each needs ⌈2 × 1.1 / 2⌉ = 2 replicas; the pool has 2 GPUs.
    world.put(svc('a', 2, [[1, 0]], ['shared'], 0));
    world.put(svc('b', 2, [[1, 0]], ['shared'], 5));
    const { r } = setup(world);
    await r.reconcile('ml/a');
    await r.reconcile('ml/b');
    expect(onPool(world.status('b'), 'shared')).toBe(2);
    expect(world.status('a').allocation).toBeUndefined();
    expect(cond(world.status('a'), 'Ready')).toMatchObject({ status: 'False', reason: 'CapacityExhausted' });
    expect(cond(world.status('a'), 'Ready')?.message).toBe(
      'GPUPool shared is capped at 2 GPUs (maxNodes 1 × 2) and cannot carry every service sharing it; needs: ml/a (priority 0) ≥ 2, ml/b (priority 5) ≥ 2; ' +
        'served first by priority: ml/b; ml/a needs ≥ 2 GPUs of shared and 0 are left. No allocation yet: nothing is deployed.',
    );
    expect(world.events).toContain(`Warning CapacityExhausted: ${cond(world.status('a'), 'Solved')?.message}`);

    // Priorities flip: a is served, b keeps what it runs (never scaled down for it) and says why.
    world.enqueued = [];
    world.put(svc('a', 2, [[1, 0]], ['shared'], 10));
    await r.reconcile('ml/a');
    expect(world.enqueued).toEqual(['ml/b']);
    await r.reconcile('ml/b');
    expect(onPool(world.status('a'), 'shared')).toBe(2);
    expect(cond(world.status('b'), 'Ready')).toMatchObject({ status: 'False', reason: 'CapacityExhausted' });
    expect(cond(world.status('b'), 'Ready')?.message).toMatch(/served first by priority: ml\/a; ml\/b needs ≥ 2 GPUs of shared and 0 are left\. Keeping the last allocation \(2xT4\)/);
    expect(world.deps.get('b')?.get('shared')?.replicas).toBe(2);
  });
});
