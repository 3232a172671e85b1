/**
 * Issue 6: availability in the solve. Pods that stay unschedulable become a cap (full profile: scheduler,
 * KCM, kwok). An in-process Manager (LLMService reconciler; the GPUPool reconciler is not needed).
 *
 * Pool A is the cheapest per throughput but no node of its GPU type exists, so its pods stay Pending; pool B
 * has kwok nodes. With policy.provisioningTimeout 5s the KCM marks A's Deployment ProgressDeadlineExceeded,
 * the operator caps A at its ready replicas (0) and re-plans onto B; B becomes Ready; the status names A as
 * unschedulable and a Warning event is recorded. A's Deployment is never scaled below what is ready: its
 * Pending replica is kept until B serves, then drained per the transition rules (0 ready → 0 replicas).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GP } from '../support/pools-cloud.js';
import type { LLMService } from '../../src/api/index.js';
import { applyCrdsFromDir } from '../support/crds.js';
import { fixturePool, fixtureProfile, startInProcessManager, type InProcessManager } from '../support/in-process-manager.js';
import { testEnv } from '../support/env.js';
import { ignoreNotFound, loadKubeConfig, makeClients } from '../support/kube.js';
import { uniqueName, useTestNamespace } from '../support/namespace.js';
import { applyCr, conditionOf, createGpuNodes, deleteGpuNodes, deploymentsOf, waitForService, type NodeSpec } from '../support/operator-fixtures.js';
import { repoPath } from '../support/paths.js';
import { waitFor } from '../support/wait.js';

const env = testEnv();
const BUCKETS = { inputEdges: [1000], outputEdges: [100, 500] };
type Obj = Record<string, any>;

describe.skipIf(env.profile !== 'full')('GPU pools: a pool whose pods stay unschedulable is capped and the load moves (in-process Manager)', () => {
  const ns = useTestNamespace('pools-un');
  const sfx = uniqueName('pu').slice(3);
  const name = (p: string) => `${p}-${sfx}`.slice(0, 40).replace(/-+$/, '');
  const [poolA, poolB] = ['pa', 'pb'].map(name) as [string, string];
  const nodes: NodeSpec[] = [0, 1].map((i) => ({ name: name(`avl-${i}`), product: `AVL-${sfx}`, gpus: 1 }));
  let kc: KubeConfig;
  let manager: InProcessManager | undefined;

  const pool = (n: string, gpuType: string, cost: string): Obj => fixturePool(n, gpuType, cost, sfx);
  const profile = (n: string, gpuType: string, maxThroughput: number[][]): Obj => fixtureProfile(n, gpuType, BUCKETS, maxThroughput);

  beforeAll(async () => {
    kc = loadKubeConfig(env.kubeconfig);
    await applyCrdsFromDir(kc, repoPath('crds'));
    await createGpuNodes(kc, nodes);
    await applyCr(kc, pool(poolA, 'UNS', '1.00'));
    await applyCr(kc, pool(poolB, 'AVL', '3.00'));
    await applyCr(kc, profile(`prof-${poolA}`, 'UNS', [[2, 1]]), ns.name);
    await applyCr(kc, profile(`prof-${poolB}`, 'AVL', [[3, 4]]), ns.name);
    manager = await startInProcessManager(kc, ns.name, 'pools-unschedulable-test');
  });
  afterAll(async () => {
    await manager?.stop();
    if (kc) {
      await deleteGpuNodes(kc, nodes);
      for (const p of [poolA, poolB]) await ignoreNotFound(() => makeClients(kc).custom.deleteClusterCustomObject({ ...GP, name: p }));
    }
  });

  it('ProgressDeadlineExceeded on A caps it at its ready replicas: re-planned onto B, B Ready, A named in status, a Warning event', async () => {
    const t0 = Date.now();
    await applyCr(kc, {
      apiVersion: 'melange.dev/v1alpha1',
      kind: 'LLMService',
      metadata: { name: 'chat' },
      spec: {
        model: 'm',
        slo: { tpotMillis: 100 },
        buckets: BUCKETS,
        gpus: [poolA, poolB].map((p) => ({ pool: p, profile: `prof-${p}` })),
        workload: { source: 'Static', static: { requestsPerSecond: 1.5, distribution: [[1, 0]] } },
        policy: { headroomPercent: 0, solveInterval: '1h', provisioningTimeout: '5s', scaleDown: { stabilization: '2s', maxStep: 2, stepInterval: '1s' } },
        router: { enabled: false },
        template: { spec: { containers: [{ name: 'server', image: 'registry.invalid/model-server:1' }] } },
      },
    }, ns.name);
    const depA = `chat-${poolA}`;
    const alloc = (s: LLMService, p: string) => s.status?.allocation?.find((a) => a.pool === p)?.replicas ?? 0;

    // The optimum is on A (1 × $1/h against 1 × $3/h).
    const first = await waitForService(kc, ns.name, 'chat', (s) => alloc(s, poolA) === 1, 'planned on A', 30_000);
    expect(alloc(first, poolB)).toBe(0);
    const a0 = await waitFor(async () => (await deploymentsOf(kc, ns.name, 'chat')).get(poolA), { what: 'A Deployment', timeoutMs: 15_000 });
    expect(a0.spec?.progressDeadlineSeconds).toBe(5);

    // Sample A's Deployment: never below its ready replicas, and not below its replicas before B serves.
    const samples: Array<{ aReplicas: number; aReady: number; bReady: number }> = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const deps = await deploymentsOf(kc, ns.name, 'chat');
        const a = deps.get(poolA);
        const b = deps.get(poolB);
        if (a) samples.push({ aReplicas: a.spec?.replicas ?? 0, aReady: a.status?.readyReplicas ?? 0, bReady: b?.status?.readyReplicas ?? 0 });
        await new Promise((r) => setTimeout(r, 300));
      }
    })();

    // The KCM gives up on A after 5 s; the operator re-plans onto B.
    const moved = await waitForService(kc, ns.name, 'chat', (s) => alloc(s, poolA) === 0 && alloc(s, poolB) >= 1, 're-planned onto B', 45_000);
    const unsched = conditionOf(moved, 'CapacityProvisioned');
    const degraded = conditionOf(moved, 'Degraded');
    expect([unsched?.reason, degraded?.reason]).toContain('PoolUnschedulable');
    expect(degraded?.message).toMatch(new RegExp(`${poolA} \\(Deployment ${depA}\\) 0/1 ready since \\d{4}-\\d\\d-\\d\\dT`));
    const deps = await deploymentsOf(kc, ns.name, 'chat');
    expect(deps.get(poolA)?.status?.conditions?.find((c) => c.type === 'Progressing')).toMatchObject({ status: 'False', reason: 'ProgressDeadlineExceeded' });

    // B's replicas become Ready; A's Pending replica drains per the transition rules; Ready=True on B.
    const ready = await waitForService(kc, ns.name, 'chat', (s) => conditionOf(s, 'Ready')?.status === 'True', 'Ready on B', 45_000);
    expect(ready.status?.mix).toBe('1xAVL');
    expect(conditionOf(ready, 'Degraded')).toMatchObject({ status: 'True', reason: 'PoolUnschedulable' });
    expect(conditionOf(ready, 'Degraded')?.message).toContain(`${poolA} (Deployment ${depA}) 0/1 ready`);
    const final = await deploymentsOf(kc, ns.name, 'chat');
    expect(final.get(poolB)?.status?.readyReplicas).toBe(1);
    expect(final.get(poolA)?.spec?.replicas).toBe(0);
    sampling = false;
    await sampler;

    // A never below what it had ready; its Pending replica removed only after B had a ready replica.
    expect(samples.length).toBeGreaterThan(3);
    for (const s of samples) expect(s.aReplicas).toBeGreaterThanOrEqual(s.aReady);
    const firstDrop = samples.findIndex((s) => s.aReplicas < 1);
    if (firstDrop >= 0) expect(samples.slice(0, firstDrop + 1).some((s) => s.bReady >= 1)).toBe(true);

    const ev = await waitFor(async () => {
      const list = await makeClients(kc).events.listNamespacedEvent({ namespace: ns.name });
      return list.items.find((e) => e.reason === 'PoolUnschedulable' && e.regarding?.name === 'chat');
    }, { what: 'a PoolUnschedulable event', timeoutMs: 15_000 });
    expect(ev.type).toBe('Warning');
    expect(ev.note).toContain(poolA);
    console.info(`[pools-unschedulable] moved A → B and Ready in ${Math.round((Date.now() - t0) / 1000)} s`);
  });
});
