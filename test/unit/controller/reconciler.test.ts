import { ApiException } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { findCondition, type GPUPool, type GPUProfile } from '../../../src/api/index.js';
import type { DeploymentManifest } from '../../../src/controller/desired.js';
import type { EventSink } from '../../../src/controller/events.js';
import { createLogger } from '../../../src/controller/logger.js';
import { createMetrics } from '../../../src/controller/metrics.js';
import { NAMESPACE_TERMINATING_RECHECK_MS, Reconciler } from '../../../src/controller/reconciler.js';
import type { ClusterView, ObservedDeployment } from '../../../src/controller/view.js';
import { WorkQueue, runWorkers } from '../../../src/controller/workqueue.js';
import { WorkloadSources } from '../../../src/controller/workload.js';
import type { ClusterWriter } from '../../../src/controller/writer.js';
import { loadHighsEngine, solve, type SolveInput, type SolveResult } from '../../../src/solver/index.js';
import { POOLS, PROFILES, service } from './fixtures.js';

const engine = await loadHighsEngine();
type Obj = Record<string, unknown>;

/** A tiny in-memory cluster: the view the reconciler reads and the writer it writes through. */
class World implements ClusterWriter, EventSink {
  svc: Obj | undefined;
  rv = 10;
  poolList: GPUPool[] = [...POOLS];
  profilesList: GPUProfile[] = [...PROFILES];
  deps = new Map<string, ObservedDeployment>();
  applies: DeploymentManifest[] = [];
  scales: Array<[string, number]> = [];
  patches: Obj[] = [];
  events: Array<{ type: string; reason: string; note: string }> = [];
  conflictOnce = false;
  /** Whether status writes show up in the view right away (a synced cache) or not (a lagging one). */
  cacheFollowsWrites = true;

  constructor() {
    this.svc = JSON.parse(JSON.stringify(service())) as Obj;
  }
  service(): unknown {
    return this.svc ? structuredClone(this.svc) : undefined;
  }
  profiles(): GPUProfile[] {
    return this.profilesList;
  }
  pools(): GPUPool[] {
    return this.poolList;
  }
  deployments(): ObservedDeployment[] {
    return [...this.deps.values()];
  }
  async applyDeployment(d: DeploymentManifest): Promise<void> {
    this.applies.push(d);
    const pool = d.metadata.labels['melange.dev/pool']!;
    const prev = this.deps.get(pool);
    this.deps.set(pool, { name: d.metadata.name, pool, exists: true, replicas: d.spec.replicas, readyReplicas: prev?.readyReplicas ?? 0, observed: true, appliedHash: d.metadata.annotations['melange.dev/applied-hash']!, ...(prev?.progressing ? { progressing: prev.progressing } : {}) });
  }
  async scaleDeployment(_ns: string, name: string, replicas: number): Promise<void> {
    this.scales.push([name, replicas]);
  }
  async patchServiceStatus(_ns: string, _name: string, resourceVersion: string | undefined, patch: unknown) {
    if (this.conflictOnce) {
      this.conflictOnce = false;
      throw Object.assign(new Error('the object has been modified'), { statusCode: 409 });
    }
    const meta = this.svc!.metadata as Obj;
    if (resourceVersion !== undefined && resourceVersion !== String(meta.resourceVersion) && resourceVersion !== String(this.rv)) {
      throw Object.assign(new Error('conflict'), { statusCode: 409 });
    }
    this.patches.push(patch as Obj);
    const status = applyMerge(this.svc!.status, patch) as Obj;
    this.rv++;
    if (this.cacheFollowsWrites) this.svc = { ...this.svc, metadata: { ...meta, resourceVersion: String(this.rv) }, status };
    return { resourceVersion: String(this.rv), status };
  }
  async emit(_ref: unknown, type: string, reason: string, _action: string, note: string): Promise<void> {
    this.events.push({ type, reason, note });
  }
  readyAll(): void {
    for (const d of this.deps.values()) d.readyReplicas = d.replicas;
  }
  editSpec(spec: Obj): void {
    const meta = this.svc!.metadata as Obj;
    this.svc = { ...this.svc, metadata: { ...meta, generation: Number(meta.generation) + 1, resourceVersion: String(++this.rv) }, spec: { ...(this.svc!.spec as Obj), ...spec } };
  }
}

function applyMerge(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Obj = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as Obj) } : {};
  for (const [k, v] of Object.entries(patch as Obj)) {
    if (v === null) delete out[k];
    else out[k] = applyMerge(out[k], v);
  }
  return out;
}

function setup(opts: { solve?: (i: SolveInput) => Promise<SolveResult>; now?: () => Date } = {}) {
  const world = new World();
  let solves = 0;
  const metrics = createMetrics({ defaultMetrics: false });
  const view: ClusterView = { service: () => world.service(), profiles: () => world.profiles(), pools: () => world.pools(), deployments: () => world.deployments() };
  const r = new Reconciler({
    view,
    writer: world,
    events: world,
    workload: new WorkloadSources(),
    solve: async (i) => {
      solves++;
      return opts.solve ? opts.solve(i) : solve(i, engine);
    },
    log: createLogger('silent'),
    metrics,
    ...(opts.now ? { now: opts.now } : {}),
  });
  return { world, r, metrics, solves: () => solves };
}

const cond = (w: World, type: string) => findCondition((w.svc?.status as { conditions?: never[] } | undefined)?.conditions, type);

describe('Reconciler', () => {
  it('first pass: creates a Deployment per GPU type with replicas, writes status, emits AllocationChanged', async () => {
    const { world, r } = setup();
    const res = await r.reconcile('ml/chat');
    expect(world.applies.map((d) => [d.metadata.name, d.spec.replicas])).toEqual(
      [...world.deps.values()].map((d) => [d.name, d.replicas]),
    );
    expect(world.applies.every((d) => d.spec.replicas > 0)).toBe(true);
    expect(world.patches).toHaveLength(1);
    expect(cond(world, 'Solved')).toMatchObject({ status: 'True', reason: 'Optimal' });
    expect(cond(world, 'Ready')).toMatchObject({ status: 'False', reason: 'WaitingForReplicas' });
    expect(world.events.map((e) => e.reason)).toEqual(['AllocationChanged']);
    expect(res.requeueAfterMs).toBe(60_000);
  });

  it('is level-triggered and idempotent: the same world twice makes no second write and no second solve', async () => {
    const { world, r, solves } = setup();
    await r.reconcile('ml/chat');
    world.readyAll();
    await r.reconcile('ml/chat');
    expect(cond(world, 'Ready')).toMatchObject({ status: 'True' });
    expect(world.events.map((e) => e.reason)).toEqual(['AllocationChanged', 'CapacityReady']);
    const [applies, patches] = [world.applies.length, world.patches.length];
    await r.reconcile('ml/chat');
    await r.reconcile('ml/chat');
    expect(world.applies.length).toBe(applies); // applied hash + replicas equal: nothing to send
    expect(world.patches.length).toBe(patches); // status equal: nothing to write
    expect(solves()).toBe(1); // identical instance: the deterministic solver is not re-run
  });

  it('re-solves at once when the spec changes, and observedGeneration follows', async () => {
    const { world, r, solves } = setup();
    await r.reconcile('ml/chat');
    world.readyAll();
    await r.reconcile('ml/chat');
    world.editSpec({ workload: { source: 'Static', static: { requestsPerSecond: 40, distribution: [[8, 1], [1, 0]] } } });
    const before = solves();
    await r.reconcile('ml/chat');
    expect(solves()).toBeGreaterThan(before); // the optimum, plus a pinned check of the current allocation (hysteresis)
    const st = world.svc!.status as { observedGeneration: number; workload: { requestsPerSecond: number } };
    expect(st.observedGeneration).toBe(2);
    expect(st.workload.requestsPerSecond).toBe(40);
    expect(cond(world, 'Solved')?.observedGeneration).toBe(2);
  });

  it('bad references hold: Ready=False PoolNotFound, no Deployment touched, a Warning event', async () => {
    const { world, r } = setup();
    await r.reconcile('ml/chat');
    world.readyAll();
    await r.reconcile('ml/chat');
    const applies = world.applies.length;
    world.poolList = world.poolList.filter((p) => p.metadata.name !== 'big');
    await r.reconcile('ml/chat');
    expect(world.applies.length).toBe(applies);
    expect(world.scales).toEqual([]);
    expect(cond(world, 'Ready')).toMatchObject({ status: 'False', reason: 'PoolNotFound' });
    expect(cond(world, 'Ready')?.message).toMatch(/GPUPool "big" not found.*Keeping the last allocation/);
    expect(world.events.at(-1)).toMatchObject({ type: 'Warning', reason: 'PoolNotFound' });
  });

  it('a solver timeout keeps the last allocation, says so, and retries on the next interval', async () => {
    let t = Date.parse('2026-11-28T10:00:00Z');
    let fail = false;
    const { world, r, solves } = setup({
      now: () => new Date(t),
      solve: async (i) =>
        fail
          ? { status: 'error', reason: 'Timeout', message: 'solve exceeded its 10000 ms deadline', baselines: [], stats: { engine: 'highs', mode: 'fractional', status: 'error', ms: 10_000, variables: 0, constraints: 0 } }
          : solve(i, engine),
    });
    await r.reconcile('ml/chat');
    world.readyAll();
    await r.reconcile('ml/chat');
    const mix = (world.svc!.status as { mix: string }).mix;
    fail = true;
    world.editSpec({ workload: { source: 'Static', static: { requestsPerSecond: 12, distribution: [[8, 1], [1, 0]] } } });
    await r.reconcile('ml/chat');
    expect(cond(world, 'Solved')).toMatchObject({ status: 'False', reason: 'Timeout' });
    expect(cond(world, 'Degraded')).toMatchObject({ status: 'True', reason: 'Timeout' });
    expect((world.svc!.status as { mix: string }).mix).toBe(mix);
    const n = solves();
    await r.reconcile('ml/chat');
    expect(solves()).toBe(n); // not before the interval
    t += 60_000;
    fail = false;
    await r.reconcile('ml/chat');
    expect(solves()).toBe(n + 1);
    expect(cond(world, 'Solved')).toMatchObject({ status: 'True' });
  });

  it('a 409 on the status write fails the reconcile and the work queue retries it', async () => {
    const { world, r } = setup();
    world.conflictOnce = true;
    const q = new WorkQueue();
    const errors: unknown[] = [];
    const done = runWorkers({ queue: q, concurrency: 1, reconcile: (k) => r.reconcile(k).then(() => ({})), onError: (_k, e) => errors.push(e) });
    q.add('ml/chat');
    await new Promise((res) => setTimeout(res, 300));
    q.shutDown();
    await done;
    expect(errors).toHaveLength(1);
    expect(world.patches).toHaveLength(1);
    expect(cond(world, 'Solved')?.status).toBe('True');
  });

  it('a namespace being deleted (403 NamespaceTerminating): no error, no status write, a quiet recheck later', async () => {
    const { world, r } = setup();
    const refuse = (reason: string) => {
      world.applyDeployment = async () => {
        throw new ApiException(403, 'Forbidden', JSON.stringify({ kind: 'Status', code: 403, reason: 'Forbidden', message: 'refused', details: { causes: reason ? [{ reason }] : [] } }), {});
      };
    };
    refuse('NamespaceTerminating');
    // Resolves (no error for the work queue to log and retry with backoff), with the slow recheck.
    expect(await r.reconcile('ml/chat')).toEqual({ requeueAfterMs: NAMESPACE_TERMINATING_RECHECK_MS });
    expect(world.patches).toHaveLength(0);
    // Any other 403 (RBAC) is still a failure the work queue retries.
    refuse('');
    await expect(r.reconcile('ml/chat')).rejects.toMatchObject({ code: 403 });
  });

  it('does not rewrite status from a cache that has not seen its own last write', async () => {
    const { world, r } = setup();
    world.cacheFollowsWrites = false;
    await r.reconcile('ml/chat');
    expect(world.patches).toHaveLength(1);
    await r.reconcile('ml/chat'); // the view still shows the old object
    expect(world.patches).toHaveLength(1);
  });

  it('a deleted service is forgotten (metrics series removed)', async () => {
    const { world, r, metrics } = setup();
    await r.reconcile('ml/chat');
    expect(await metrics.registry.getSingleMetricAsString('llmservice_hourly_cost_dollars')).toMatch(/name="chat"/);
    world.svc = undefined;
    expect(await r.reconcile('ml/chat')).toEqual({});
    expect(await metrics.registry.getSingleMetricAsString('llmservice_hourly_cost_dollars')).not.toMatch(/name="chat"/);
  });

  it('after a change of mix the old capacity waits out the stabilization window, drains in bounded steps, and the reconcile requeues itself for it', async () => {
    let t = Date.parse('2026-11-28T10:00:00Z');
    const { world, r } = setup({ now: () => new Date(t) });
    // Short prompts at 6 req/s: two replicas of the small GPU type are the cheapest.
    world.editSpec({
      workload: { source: 'Static', static: { requestsPerSecond: 6, distribution: [[1, 0], [0, 0]] } },
      policy: { scaleDown: { stabilization: '30s', maxStep: 1, stepInterval: '5s' } },
    });
    await r.reconcile('ml/chat');
    world.readyAll();
    await r.reconcile('ml/chat');
    expect(cond(world, 'Ready')?.status).toBe('True');
    const small0 = world.deps.get('small')!.replicas;
    expect(small0).toBeGreaterThanOrEqual(2);

    // Only long prompts now: the small GPU type cannot serve them, so its replicas become surplus.
    world.editSpec({ workload: { source: 'Static', static: { requestsPerSecond: 6, distribution: [[0, 0], [1, 0]] } } });
    let res = await r.reconcile('ml/chat');
    expect(world.deps.get('small')!.replicas).toBe(small0); // new capacity first
    expect(cond(world, 'CapacityProvisioned')?.reason).toBe('WaitingForReplicas');
    world.readyAll();
    t += 1_000;
    res = await r.reconcile('ml/chat');
    expect(world.deps.get('small')!.replicas).toBe(small0);
    expect(res.requeueAfterMs).toBe(30_000);
    expect(cond(world, 'CapacityProvisioned')).toMatchObject({ status: 'False', reason: 'DrainingSurplus' });
    expect(cond(world, 'CapacityProvisioned')?.message).toMatch(/removing the surplus \(small \d+ → 0\) once the stabilization window ends at 2026-11-28T10:00:31Z/);

    t += 29_999;
    await r.reconcile('ml/chat');
    expect(world.deps.get('small')!.replicas).toBe(small0); // not a millisecond early
    const seen: number[] = [];
    for (let i = 0; i < 20 && world.deps.get('small')!.replicas > 0; i++) {
      t += 5_000;
      res = await r.reconcile('ml/chat');
      world.readyAll();
      seen.push(world.deps.get('small')!.replicas);
      if (world.deps.get('small')!.replicas > 0) expect(res.requeueAfterMs).toBe(5_000); // come back for the next step
      else expect(res.requeueAfterMs).toBe(60_000); // drained: back to the solve interval
    }
    expect(seen).toEqual(Array.from({ length: small0 }, (_, i) => small0 - 1 - i)); // one replica per step
    await r.reconcile('ml/chat');
    expect(cond(world, 'Ready')?.status).toBe('True');
    expect(world.events.at(-1)?.reason).toBe('CapacityReady');
  });

  it('a pool whose Deployment hits ProgressDeadlineExceeded is capped at its ready replicas: re-planned onto another GPU type, status and a Warning event, never below what is ready', async () => {
    let t = Date.parse('2026-11-28T10:00:00Z');
    const { world, r } = setup({ now: () => new Date(t) });
    world.editSpec({
      workload: { source: 'Static', static: { requestsPerSecond: 6, distribution: [[1, 0], [0, 0]] } },
      policy: { provisioningTimeout: '5s', scaleDown: { stabilization: '10s', maxStep: 5, stepInterval: '1s' } },
    });
    await r.reconcile('ml/chat');
    const small0 = world.deps.get('small')!.replicas;
    expect(small0).toBeGreaterThanOrEqual(2);
    expect(world.deps.has('big')).toBe(false);
    expect(world.applies.at(-1)?.spec.progressDeadlineSeconds).toBe(5);

    // No node of the small type: nothing becomes ready and the Deployment controller gives up.
    t += 6_000;
    Object.assign(world.deps.get('small')!, { readyReplicas: 0, progressing: { status: 'False', reason: 'ProgressDeadlineExceeded', since: new Date(t - 1_000).toISOString() } });
    const res = await r.reconcile('ml/chat');
    const alloc = () => Object.fromEntries(((world.svc?.status as { allocation: Array<{ pool: string; replicas: number }> }).allocation).map((a) => [a.pool, a.replicas]));
    expect(alloc().small).toBe(0);
    expect(alloc().big).toBeGreaterThanOrEqual(1);
    expect(world.deps.get('small')!.replicas).toBe(small0); // make before break: kept until big is ready
    expect(cond(world, 'CapacityProvisioned')).toMatchObject({ status: 'False', reason: 'PoolUnschedulable' });
    expect(cond(world, 'CapacityProvisioned')?.message).toContain(`small (Deployment chat-small) 0/${small0} ready since 2026-11-28T10:00:06Z`);
    expect(cond(world, 'Ready')?.status).toBe('False');
    expect(world.events.filter((e) => e.reason === 'PoolUnschedulable')).toMatchObject([{ type: 'Warning' }]);
    expect(res.requeueAfterMs).toBeLessThanOrEqual(60_000);

    // big becomes ready; after the window the small pool's pending replicas drain (there was nothing ready).
    world.deps.get('big')!.readyReplicas = world.deps.get('big')!.replicas;
    for (let i = 0; i < 10; i++) {
      t += 5_000;
      await r.reconcile('ml/chat');
      expect(world.deps.get('big')!.replicas).toBe(alloc().big);
      if (world.deps.get('small')!.replicas === 0) {
        // drained: the Deployment controller calls a 0-replica Deployment complete; the cap stays regardless.
        world.deps.get('small')!.progressing = { status: 'True', reason: 'NewReplicaSetAvailable' };
      }
    }
    expect(world.deps.get('small')!.replicas).toBe(0);
    expect(alloc().small).toBe(0);
    expect(cond(world, 'Ready')?.status).toBe('True');
    expect(cond(world, 'Degraded')).toMatchObject({ status: 'True', reason: 'PoolUnschedulable' });
    expect(world.events.filter((e) => e.reason === 'PoolUnschedulable')).toHaveLength(1);

    // After the retry window the pool is tried again: the cheap type is planned again.
    t = Date.parse('2026-11-28T10:30:07Z');
    await r.reconcile('ml/chat');
    expect(alloc().small).toBeGreaterThanOrEqual(2);
    expect(world.events.filter((e) => e.reason === 'PoolCapLifted')).toMatchObject([{ type: 'Normal' }]);
    expect(cond(world, 'Degraded')?.reason).toBe('AsExpected');
    expect(world.deps.get('big')!.replicas).toBeGreaterThanOrEqual(1); // big keeps serving until small is ready
  });
});
