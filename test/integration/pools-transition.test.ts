/**
 * Issue 6 (P5 · GPU pools), the solve and the transitions, end to end in the full profile (scheduler, KCM,
 * kwok GPU nodes). One in-process Manager (LLMService reconciler + GPUPool reconciler, `gpuPools: {}`) and
 * the test cloud that turns Cluster API MachineDeployment replicas into kwok Nodes.
 *
 * (a) A workload shift from short to long requests moves the replicas from the cheap GPU type A to B; the
 *     MachineDeployments (node counts) follow; sampled every second, the Ready serving capacity for the
 *     current demand never drops below it. The shift is a Static spec change (Prometheus would only make it
 *     slower). Its rates are chosen so that the old allocation can carry the new demand at the moment of the
 *     switch: no operator can serve long requests on a mix that cannot hold them the instant they arrive.
 * (b) Two services share a pool capped below their independent optima: the allocations in their statuses
 *     respect the cap at the lowest total cost (brute force over every replica vector); with the cap lowered
 *     further, the higher priority is served and the other is CapacityExhausted with the numbers and an event.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bruteForceJointCost } from '../support/brute-force-joint.js';
import { parseGPUPool, parseGPUProfile, type GPUPool, type GPUProfile, type LLMService } from '../../src/api/index.js';
import { instanceFromService } from '../../src/solver/from-api.js';
import { isSuccess, solve, type MilpEngine, type SolveInput } from '../../src/solver/index.js';
import { applyCrdsFromDir } from '../support/crds.js';
import { fixturePool, fixtureProfile, startInProcessManager, type InProcessManager } from '../support/in-process-manager.js';
import { testEnv } from '../support/env.js';
import { ignoreNotFound, loadKubeConfig, makeClients, mergePatch } from '../support/kube.js';
import { uniqueName, useTestNamespace } from '../support/namespace.js';
import { applyCr, conditionOf, deploymentsOf, getService, patchServiceSpec, waitForService } from '../support/operator-fixtures.js';
import { repoPath } from '../support/paths.js';
import { CAPI, GP, CLOUD_GPUS_ANNOTATION, CLOUD_PRODUCT_ANNOTATION, startTestCloud, type TestCloud } from '../support/pools-cloud.js';
import { delay, waitFor } from '../support/wait.js';

const env = testEnv();
const BUCKETS = { inputEdges: [1000], outputEdges: [100, 500] };
type Obj = Record<string, any>;

describe.skipIf(env.profile !== 'full')('GPU pools: joint solve and transitions (in-process Manager, test cloud)', () => {
  const ns = useTestNamespace('pools-tr');
  const sfx = uniqueName('pt').slice(3);
  const name = (p: string) => `${p}-${sfx}`.slice(0, 40).replace(/-+$/, '');
  const [poolA, poolB, poolS, poolO] = ['pa', 'pb', 'ps', 'po'].map(name) as [string, string, string, string];
  const [mdA, mdB] = [name('mda'), name('mdb')];
  let kc: KubeConfig;
  let engine: MilpEngine;
  let cloud: TestCloud | undefined;
  let manager: InProcessManager | undefined;

  const pool = (n: string, gpuType: string, cost: string, extra: Obj = {}): Obj => fixturePool(n, gpuType, cost, sfx, extra);
  const profile = (n: string, gpuType: string, maxThroughput: number[][]): Obj => fixtureProfile(n, gpuType, BUCKETS, maxThroughput);
  const service = (n: string, gpus: string[], rate: number, distribution: number[][], extra: Obj = {}): Obj => ({
    apiVersion: 'melange.dev/v1alpha1',
    kind: 'LLMService',
    metadata: { name: n },
    spec: {
      model: 'm',
      slo: { tpotMillis: 100 },
      buckets: BUCKETS,
      gpus: gpus.map((p) => ({ pool: p, profile: `prof-${p}` })),
      workload: { source: 'Static', static: { requestsPerSecond: rate, distribution } },
      policy: { headroomPercent: 0, solveInterval: '1h' },
      template: { spec: { containers: [{ name: 'server', image: 'registry.invalid/model-server:1' }] } },
      ...extra,
    },
  });
  const machineDeployment = (n: string, product: string): Obj => ({
    apiVersion: 'cluster.x-k8s.io/v1beta1',
    kind: 'MachineDeployment',
    metadata: { name: n, namespace: ns.name, annotations: { [CLOUD_PRODUCT_ANNOTATION]: product, [CLOUD_GPUS_ANNOTATION]: '1' } },
    spec: { clusterName: 'test', replicas: 0, selector: { matchLabels: { md: n } }, template: { metadata: { labels: { md: n } } } },
  });

  beforeAll(async () => {
    kc = loadKubeConfig(env.kubeconfig);
    await applyCrdsFromDir(kc, repoPath('crds'));
    await applyCrdsFromDir(kc, repoPath('test', 'fixtures', 'crds'));
    const { custom } = makeClients(kc);
    for (const [md, product] of [[mdA, `SMALL-${sfx}`], [mdB, `BIG-${sfx}`]] as const) {
      await custom.createNamespacedCustomObject({ ...CAPI, namespace: ns.name, body: machineDeployment(md, product) });
    }
    // (a) A: cheap, best on short requests; B: best on long ones. Node counts through Cluster API.
    await applyCr(kc, pool(poolA, 'SMALL', '1.00', { provider: { type: 'ClusterAPI', clusterAPI: { namespace: ns.name, name: mdA } } }));
    await applyCr(kc, pool(poolB, 'BIG', '3.00', { provider: { type: 'ClusterAPI', clusterAPI: { namespace: ns.name, name: mdB } } }));
    await applyCr(kc, profile(`prof-${poolA}`, 'SMALL', [[2, 1]]), ns.name);
    await applyCr(kc, profile(`prof-${poolB}`, 'BIG', [[3, 4]]), ns.name);
    // (b) S: cheap and the only one that serves long requests, capped at 2 nodes × 2 GPUs; O: uncapped.
    await applyCr(kc, pool(poolS, 'SHT', '1.00', { gpusPerNode: 2, maxNodes: 2 }));
    await applyCr(kc, pool(poolO, 'OTT', '2.50'));
    await applyCr(kc, profile(`prof-${poolS}`, 'SHT', [[2, 1]]), ns.name);
    await applyCr(kc, profile(`prof-${poolO}`, 'OTT', [[3, 0]]), ns.name);
    cloud = startTestCloud(kc, ns.name);
    manager = await startInProcessManager(kc, ns.name, 'pools-transition-test', { gpuPools: { resyncMs: 300 } });
    engine = manager.engine;
  });
  afterAll(async () => {
    await manager?.stop();
    await cloud?.stop();
    if (kc) for (const p of [poolA, poolB, poolS, poolO]) await ignoreNotFound(() => makeClients(kc).custom.deleteClusterCustomObject({ ...GP, name: p }));
  });

  /** Ready serving capacity for a demand: can the ready replicas carry it under the SLO (pinned solve, no headroom)? */
  async function carries(svc: LLMService, ready: Record<string, number>): Promise<boolean> {
    const refs = await refsOf(svc);
    const inst = instanceFromService(svc, refs);
    if (!inst.ok) throw new Error(JSON.stringify(inst.errors));
    const pinned: SolveInput = { ...inst.value.input, headroomPercent: 0, gpus: inst.value.input.gpus.map((g) => ({ ...g, minReplicas: ready[g.id] ?? 0, maxReplicas: ready[g.id] ?? 0 })) };
    return isSuccess(solve(pinned, engine));
  }
  async function refsOf(svc: LLMService): Promise<{ profiles: GPUProfile[]; pools: GPUPool[] }> {
    const { custom } = makeClients(kc);
    const profiles = ((await custom.listNamespacedCustomObject({ group: 'melange.dev', version: 'v1alpha1', plural: 'gpuprofiles', namespace: ns.name })) as { items: unknown[] }).items;
    const pools = await Promise.all(svc.spec.gpus.map((g) => custom.getClusterCustomObject({ ...GP, name: g.pool })));
    const ok = <T,>(r: { ok: true; value: T } | { ok: false }) => (r.ok ? [r.value] : []);
    return { profiles: profiles.flatMap((p) => ok(parseGPUProfile(p, { strict: false }))), pools: pools.flatMap((p) => ok(parseGPUPool(p, { strict: false }))) };
  }
  const mdReplicas = async (md: string) => Number(((await makeClients(kc).custom.getNamespacedCustomObject({ ...CAPI, namespace: ns.name, name: md })) as Obj).spec.replicas);

  it('(a) short → long moves the replicas from A to B, node counts follow, and the ready capacity never drops below the demand', async () => {
    // 8 req/s of short requests: 4 × A ($4) beats 3 × B ($9).
    const scaleDown = { stabilization: '3s', maxStep: 2, stepInterval: '2s' };
    await applyCr(kc, service('shift', [poolA, poolB], 8, [[1, 0]], { policy: { headroomPercent: 0, solveInterval: '1h', scaleDown } }), ns.name);
    await waitForService(kc, ns.name, 'shift', (s) => conditionOf(s, 'Ready')?.status === 'True', 'Ready on 4 × A', 90_000);
    expect(await mdReplicas(mdA)).toBe(4);
    expect((await cloud!.nodesOf(ns.name, mdA)).length).toBe(4);

    // 4 req/s of long requests: 1 × B ($3) saves 25% on 4 × A ($4), which still carries them (4 × 1 req/s).
    const t0 = Date.now();
    const gen = await patchServiceSpec(kc, ns.name, 'shift', { workload: { static: { requestsPerSecond: 4, distribution: [[0, 1]] } } });
    const samples: Obj[] = [];
    for (let k = 1; ; k++) {
      const [svc, deps, nodesA, nodesB] = await Promise.all([getService(kc, ns.name, 'shift'), deploymentsOf(kc, ns.name, 'shift'), cloud!.nodesOf(ns.name, mdA), cloud!.nodesOf(ns.name, mdB)]);
      const ready = { [poolA]: deps.get(poolA)?.status?.readyReplicas ?? 0, [poolB]: deps.get(poolB)?.status?.readyReplicas ?? 0 };
      const sample = {
        s: Math.round((Date.now() - t0) / 100) / 10,
        specA: deps.get(poolA)?.spec?.replicas ?? 0,
        specB: deps.get(poolB)?.spec?.replicas ?? 0,
        readyA: ready[poolA],
        readyB: ready[poolB],
        nodesA: nodesA.length,
        nodesB: nodesB.length,
        capacity: conditionOf(svc, 'CapacityProvisioned')?.reason,
        carries: await carries(svc, ready),
      };
      samples.push(sample);
      expect(sample.carries, JSON.stringify(sample)).toBe(true);
      const finished = svc.status?.observedGeneration === gen && conditionOf(svc, 'Ready')?.status === 'True' && sample.specA === 0 && sample.readyA === 0 && sample.nodesA === 0 && sample.nodesB === 1;
      if (finished) break;
      if (Date.now() - t0 > 100_000) throw new Error(`transition did not finish in 100 s: ${JSON.stringify(samples.slice(-3))}`);
      await delay(Math.max(0, t0 + k * 1_000 - Date.now())); // one sample per second, whatever a sample costs
    }
    console.info(`[pools-transition] ${samples.length} samples over ${samples.at(-1)!.s} s:\n${samples.map((s) => JSON.stringify(s)).join('\n')}`);
    // New capacity first: B was asked for while A still had all 4; A's nodes went only after B served.
    expect(samples.some((s) => s.specB >= 1 && s.specA === 4)).toBe(true);
    for (const s of samples) if (s.nodesA < 4 || s.specA < 4) expect(s.readyB, JSON.stringify(s)).toBeGreaterThanOrEqual(1);
    expect(samples.some((s) => s.capacity === 'DrainingSurplus')).toBe(true);
    expect(await mdReplicas(mdA)).toBe(0);
    expect(await mdReplicas(mdB)).toBe(1);
    const st = (await getService(kc, ns.name, 'shift')).status!;
    expect(st.mix).toBe('1xBIG');
  });

  it('(b) two services sharing a capped pool: the cap goes to the lowest total cost; under a tighter cap priority decides', async () => {
    // Alone, x (3 short + 1 long req/s) and y (1.5 + 1.5) would each take 3 replicas of S; S has 4 GPUs.
    await applyCr(kc, service('x', [poolS, poolO], 4, [[3, 1]]), ns.name);
    await applyCr(kc, service('y', [poolS, poolO], 3, [[1, 1]], { priority: 5 }), ns.name);
    const solved = (s: LLMService) => conditionOf(s, 'Solved')?.status === 'True' && s.status?.observedGeneration === s.metadata.generation;
    let [x, y] = await Promise.all(['x', 'y'].map((n) => waitForService(kc, ns.name, n, solved, 'solved', 60_000)));
    const shared = (s: LLMService) => s.status?.allocation?.find((a) => a.pool === poolS)?.replicas ?? 0;
    // Both statuses settle on the joint decision (the second reconcile re-enqueues the first).
    await waitFor(async () => {
      [x, y] = await Promise.all(['x', 'y'].map((n) => getService(kc, ns.name, n)));
      return shared(x!) + shared(y!) <= 4 && solved(x!) && solved(y!);
    }, { what: 'both allocations within the cap', timeoutMs: 30_000 });
    const refs = await refsOf(x!);
    const alone = [x!, y!].map((s) => {
      const inst = instanceFromService(s, refs);
      if (!inst.ok) throw new Error(JSON.stringify(inst.errors));
      const r = solve({ ...inst.value.input, gpus: inst.value.input.gpus.map(({ maxReplicas: _m, ...g }) => g) }, engine);
      return isSuccess(r) ? (r.allocation.find((a) => a.id === poolS)?.replicas ?? 0) : NaN;
    });
    expect(alone[0]! + alone[1]!).toBeGreaterThan(4);
    const brute = bruteForceJointCost([x!, y!], refs, poolS, 4, engine);
    const total = Number(x!.status!.costPerHour) + Number(y!.status!.costPerHour);
    console.info(`[pools-transition] alone on S: ${alone.join(' + ')}; joint: x ${x!.status!.mix} $${x!.status!.costPerHour}, y ${y!.status!.mix} $${y!.status!.costPerHour}; brute force $${brute.toFixed(2)}`);
    expect(total).toBeCloseTo(brute, 2);

    // maxNodes 1 (2 GPUs): x needs ≥ 1, y ≥ 2. y has the higher priority and is served; x keeps what it runs.
    const xMix = x!.status!.mix;
    await makeClients(kc).custom.patchClusterCustomObject({ ...GP, name: poolS, body: { spec: { maxNodes: 1 } } }, mergePatch());
    const xs = await waitForService(kc, ns.name, 'x', (s) => conditionOf(s, 'Ready')?.reason === 'CapacityExhausted', 'x CapacityExhausted', 30_000);
    expect(conditionOf(xs, 'Ready')?.message).toBe(
      `GPUPool ${poolS} is capped at 2 GPUs (maxNodes 1 × 2) and cannot carry every service sharing it; needs: ${ns.name}/x (priority 0) ≥ 1, ${ns.name}/y (priority 5) ≥ 2; ` +
        `served first by priority: ${ns.name}/y; ${ns.name}/x needs ≥ 1 GPUs of ${poolS} and 0 are left. Keeping the last allocation (${xMix}) and leaving its Deployments untouched.`,
    );
    expect(xs.status?.mix).toBe(xMix);
    const ys = await waitForService(kc, ns.name, 'y', (s) => solved(s) && shared(s) <= 2, 'y within the new cap', 30_000);
    expect(conditionOf(ys, 'Solved')?.status).toBe('True');
    const ev = await waitFor(async () => {
      const list = await makeClients(kc).events.listNamespacedEvent({ namespace: ns.name });
      return list.items.find((e) => e.reason === 'CapacityExhausted' && e.regarding?.name === 'x');
    }, { what: 'a CapacityExhausted event for x', timeoutMs: 30_000 });
    expect(ev.type).toBe('Warning');
  });

});
