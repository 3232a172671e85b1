/**
 * Issue 4 acceptance, the reconcile path, against the harness's real control plane (full profile: KCM,
 * scheduler and kwok GPU nodes, so model-server pods really schedule onto the right GPU type and become
 * Ready). The operator runs as its own process through `melangectl controller`.
 */
import type { KubeConfig, V1Deployment } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyCrdsFromDir } from '../support/crds.js';
import { testEnv } from '../support/env.js';
import { httpGet } from '../support/http.js';
import { ignoreNotFound, loadKubeConfig, makeClients } from '../support/kube.js';
import { uniqueName, useTestNamespace } from '../support/namespace.js';
import {
  applyCr,
  conditionOf,
  createGpuNodes,
  crRef,
  deleteGpuNodes,
  deploymentsOf,
  exampleDocs,
  expectedPlan,
  kubectl,
  patchServiceSpec,
  replicasByPool,
  waitForService,
  type NodeSpec,
} from '../support/operator-fixtures.js';
import { startOperator, stopOperators, type OperatorProcess } from '../support/operator-process.js';
import { repoPath } from '../support/paths.js';
import { delay, waitFor } from '../support/wait.js';

const env = testEnv();
const full = env.profile === 'full';
type Obj = Record<string, unknown>;

describe.skipIf(!full)('operator: examples → per-GPU-type Deployments with honest status', () => {
  const ns = useTestNamespace('op-reconcile');
  const suffix = uniqueName('n').slice(2);
  // The example pools select nodes by these products; the nodes carry the GPU taint the pools tolerate.
  const nodes: NodeSpec[] = [
    ...Array.from({ length: 6 }, (_, i) => ({ name: `l4-${i}-${suffix}`, product: 'NVIDIA-L4', gpus: 1 })),
    ...Array.from({ length: 6 }, (_, i) => ({ name: `a10g-${i}-${suffix}`, product: 'NVIDIA-A10G', gpus: 1 })),
    { name: `a100-0-${suffix}`, product: 'NVIDIA-A100-SXM4-80GB', gpus: 8 },
    { name: `h100-0-${suffix}`, product: 'NVIDIA-H100-80GB-HBM3', gpus: 8 },
  ];
  let kc: KubeConfig;
  let op: OperatorProcess | undefined;
  let pools: Obj[];
  let profiles: Obj[];
  let chat: Obj;

  beforeAll(async () => {
    kc = loadKubeConfig(env.kubeconfig);
    await applyCrdsFromDir(kc, repoPath('crds'));
    pools = await exampleDocs('gpupools.yaml');
    profiles = await exampleDocs('gpuprofiles-llama2-7b.yaml');
    chat = (await exampleDocs('llmservice-chat.yaml'))[0] as Obj;
    await createGpuNodes(kc, nodes);
    for (const p of pools) await applyCr(kc, p);
    for (const p of profiles) await applyCr(kc, p, ns.name);
    op = await startOperator({ kubeconfig: env.kubeconfig, leaseNamespace: ns.name, watchNamespace: ns.name, logDir: `${env.runDir}/logs`, name: 'op-reconcile' });
  });

  afterAll(async () => {
    await stopOperators([op]);
    if (kc) {
      await deleteGpuNodes(kc, nodes);
      const { custom } = makeClients(kc);
      for (const p of pools ?? []) {
        await ignoreNotFound(() => custom.deleteClusterCustomObject({ group: 'melange.dev', version: 'v1alpha1', plural: 'gpupools', name: String((p.metadata as Obj).name) }));
      }
    }
  });

  const byPool = (deps: Map<string, V1Deployment>) => replicasByPool(deps);

  it('applying the examples yields the solved Deployments, Ready status, printer columns and kubectl wait', async () => {
    const t0 = Date.now();
    await applyCr(kc, chat, ns.name);
    const expected = await expectedPlan({ ...chat, metadata: { ...(chat.metadata as Obj), namespace: ns.name } }, profiles, pools);
    expect(expected.replicas).toEqual({ l4: 2, a10g: 1, a100: 2, h100: 0 }); // the example's documented plan

    // kubectl wait is what users run; it needs the Ready condition and nothing else.
    await kubectl(env.binDir, env.kubeconfig, ['-n', ns.name, 'wait', '--for=condition=Ready', 'llmservice/chat', '--timeout=150s'], 160_000);
    const readyAfterS = (Date.now() - t0) / 1000;

    const svc = await waitForService(kc, ns.name, 'chat', (s) => conditionOf(s, 'Ready')?.status === 'True', 'Ready');
    const st = svc.status!;
    expect(st.observedGeneration).toBe(svc.metadata.generation);
    for (const type of ['Ready', 'Solved', 'MetricsAvailable', 'CapacityProvisioned', 'Degraded']) {
      expect(conditionOf(svc, type)?.observedGeneration, type).toBe(svc.metadata.generation);
    }
    expect(conditionOf(svc, 'Solved')).toMatchObject({ status: 'True', reason: 'Optimal' });
    expect(conditionOf(svc, 'MetricsAvailable')).toMatchObject({ status: 'True', reason: 'StaticWorkload' });
    expect(conditionOf(svc, 'CapacityProvisioned')).toMatchObject({ status: 'True', reason: 'ReplicasReady' });
    expect(conditionOf(svc, 'Degraded')).toMatchObject({ status: 'False' });
    expect(st.mix).toBe('2xL4+1xA10G+2xA100-80GB');
    expect(st.costPerHour).toBe('9.75');
    expect(st.bestSingleType).toEqual({ pool: 'a100', costPerHour: '11.01' });
    expect(st.savingsPercent).toBe('11.4');
    expect(st.allocation?.map((a) => [a.pool, a.replicas, a.readyReplicas, a.costPerHour])).toEqual([
      ['l4', 2, 2, '1.40'],
      ['a10g', 1, 1, '1.01'],
      ['a100', 2, 2, '7.34'],
      ['h100', 0, 0, '0.00'],
    ]);
    expect(st.lastSolve).toMatchObject({ status: 'optimal' });
    expect(st.workload).toEqual({ requestsPerSecond: 8, source: 'Static' });
    // The split routes every bucket with traffic, and each bucket's weights sum to 1.
    expect(st.split?.length).toBe(expected.split.length);
    for (const s of st.split ?? []) expect(Object.values(s.weights).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 3);

    const deps = await deploymentsOf(kc, ns.name, 'chat');
    expect(byPool(deps)).toEqual({ l4: 2, a10g: 1, a100: 2 }); // h100 has no replicas: never created
    const a100 = deps.get('a100')!;
    expect(a100.metadata?.name).toBe('chat-a100');
    expect(a100.metadata?.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'melange-operator', 'app.kubernetes.io/instance': 'chat', 'app.kubernetes.io/name': 'chat', 'melange.dev/pool': 'a100' });
    expect(a100.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: 'LLMService', name: 'chat', uid: svc.metadata.uid, controller: true })]);
    expect(a100.metadata?.managedFields?.some((f) => f.manager === 'melange-operator' && f.operation === 'Apply')).toBe(true);
    const pod = a100.spec?.template.spec;
    expect(pod?.nodeSelector).toEqual({ 'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-80GB' });
    expect(pod?.tolerations).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(pod?.containers[0]?.resources?.limits).toEqual({ 'nvidia.com/gpu': '1' });
    expect(pod?.containers[0]?.image).toBe('vllm/vllm-openai:v0.8.5'); // the user's template, passed through

    // The pods really run on nodes of their GPU type.
    const { core } = makeClients(kc);
    const pods = (await core.listNamespacedPod({ namespace: ns.name, labelSelector: 'melange.dev/service=chat' })).items;
    expect(pods.filter((p) => p.status?.phase === 'Running')).toHaveLength(5);
    for (const p of pods) {
      const pool = p.metadata?.labels?.['melange.dev/pool'];
      expect(p.spec?.nodeName, `${p.metadata?.name}`).toMatch(new RegExp(`^${pool}-\\d-${suffix}$`));
    }

    const table = await kubectl(env.binDir, env.kubeconfig, ['-n', ns.name, 'get', 'llmservices']);
    const [header, row] = table.trim().split('\n');
    expect(header?.split(/\s{2,}/)).toEqual(['NAME', 'MODEL', 'MIX', 'COST/H', 'SAVINGS', 'READY', 'AGE']);
    expect(row?.split(/\s{2,}/).slice(0, 6)).toEqual(['chat', 'meta-llama/Llama-2-7b-hf', '2xL4+1xA10G+2xA100-80GB', '9.75', '11.4', 'True']);
    const wide = await kubectl(env.binDir, env.kubeconfig, ['-n', ns.name, 'get', 'llms', '-o', 'wide']);
    expect(wide).toMatch(/SOLVE/);
    expect(wide).toMatch(/optimal/);
    console.info(`[operator-reconcile] chat Ready ${readyAfterS.toFixed(1)} s after apply`);
  });

  it('writes status only when it changed: resourceVersion stays put across periodic re-evaluations', async () => {
    // A short interval makes the periodic path run often; the spec change itself is one status write.
    const gen = await patchServiceSpec(kc, ns.name, 'chat', { policy: { solveInterval: '2s' } });
    await waitForService(kc, ns.name, 'chat', (s) => s.status?.observedGeneration === gen && conditionOf(s, 'Ready')?.status === 'True', 'observes the new generation');
    await delay(1_500); // let the last readiness-driven update land
    const before = await waitForStable(kc, ns.name);
    const reconcilesBefore = metricValue(await op!.metrics(), 'controller_runtime_reconcile_total', { controller: 'llmservice', result: 'success' });
    const unchangedBefore = metricValue(await op!.metrics(), 'llmservice_solves_total', { outcome: 'unchanged' });
    await delay(8_000); // ≥ 3 solve intervals
    const after = await getRaw(kc, ns.name, 'chat');
    const reconcilesAfter = metricValue(await op!.metrics(), 'controller_runtime_reconcile_total', { controller: 'llmservice', result: 'success' });
    const unchangedAfter = metricValue(await op!.metrics(), 'llmservice_solves_total', { outcome: 'unchanged' });
    expect(reconcilesAfter - reconcilesBefore).toBeGreaterThanOrEqual(3); // the interval really fires
    expect(unchangedAfter - unchangedBefore).toBeGreaterThanOrEqual(3); // identical instance: solver not re-run
    expect((after.metadata as Obj).resourceVersion).toBe(before);
  });

  it('a spec change re-solves at once (not on the interval) and observedGeneration follows; scale-up before scale-down', async () => {
    // solveInterval 1h: anything that happens within seconds is the spec-change path, not the timer.
    const samples: Array<{ l4: number; a10g: number; a10gReady: number; a100Ready: number }> = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const d = await deploymentsOf(kc, ns.name, 'chat').catch(() => undefined);
        if (d) samples.push({ l4: d.get('l4')?.spec?.replicas ?? 0, a10g: d.get('a10g')?.spec?.replicas ?? 0, a10gReady: d.get('a10g')?.status?.readyReplicas ?? 0, a100Ready: d.get('a100')?.status?.readyReplicas ?? 0 });
        await delay(50);
      }
    })();
    const t0 = Date.now();
    const gen = await patchServiceSpec(kc, ns.name, 'chat', { policy: { solveInterval: '1h', scaleDown: { stabilization: '1s' } }, workload: { static: { requestsPerSecond: 12 } } });
    const svc = await waitForService(kc, ns.name, 'chat', (s) => s.status?.observedGeneration === gen && s.status.workload?.requestsPerSecond === 12, 're-solved for 12 req/s', 30_000);
    const resolvedS = (Date.now() - t0) / 1000;
    const expected = await expectedPlan({ ...chat, metadata: { ...(chat.metadata as Obj), namespace: ns.name }, spec: { ...(chat.spec as Obj), workload: { source: 'Static', static: { ...((chat.spec as Obj).workload as { static: Obj }).static, requestsPerSecond: 12 } } } }, profiles, pools);
    expect(expected.replicas).toEqual({ l4: 1, a10g: 3, a100: 3, h100: 0 });
    expect(Object.fromEntries(svc.status!.allocation!.map((a) => [a.pool, a.replicas]))).toEqual(expected.replicas);
    expect(resolvedS).toBeLessThan(15);
    for (const c of svc.status!.conditions!) expect(c.observedGeneration, c.type).toBe(gen);

    await waitForService(kc, ns.name, 'chat', (s) => conditionOf(s, 'Ready')?.status === 'True' && s.status?.observedGeneration === gen, 'Ready on the new mix', 120_000);
    expect(byPool(await deploymentsOf(kc, ns.name, 'chat'))).toEqual({ l4: 1, a10g: 3, a100: 3 });
    sampling = false;
    await sampler;
    // Make before break: L4 went down to 1 only once the new A10G and A100 capacity was ready.
    for (const s of samples) if (s.l4 < 2) expect(s.a10gReady >= 3 && s.a100Ready >= 3, JSON.stringify(s)).toBe(true);
    // ...and the new capacity was requested first: A10G already at 3 while L4 was still held at 2.
    expect(samples.some((s) => s.a10g === 3 && s.l4 === 2)).toBe(true);
    console.info(`[operator-reconcile] spec change re-solved in ${resolvedS.toFixed(1)} s; ${samples.length} transition samples`);
  });

  it('a tighter SLO re-solves with the profiles measured at that SLO', async () => {
    // Profiles measured at 40 ms TPOT (illustrative: half the 120 ms throughput) under new names.
    const tight = profiles.map((p) => {
      const spec = p.spec as { maxThroughput: number[][]; slo: Obj };
      return { ...p, metadata: { name: `${String((p.metadata as Obj).name)}-40ms` }, spec: { ...spec, slo: { tpotMillis: 40 }, maxThroughput: spec.maxThroughput.map((r) => r.map((v) => v / 2)) } };
    });
    for (const p of tight) await applyCr(kc, p, ns.name);
    const gpus = ((chat.spec as Obj).gpus as Obj[]).map((g) => ({ ...g, profile: `${String(g.profile)}-40ms` }));
    const spec = { slo: { tpotMillis: 40 }, gpus, workload: { static: { requestsPerSecond: 6 } } };
    const gen = await patchServiceSpec(kc, ns.name, 'chat', spec);
    const svc = await waitForService(kc, ns.name, 'chat', (s) => s.status?.observedGeneration === gen && conditionOf(s, 'Solved')?.observedGeneration === gen, 're-solved for 40 ms', 30_000);
    const full = { ...chat, metadata: { ...(chat.metadata as Obj), namespace: ns.name }, spec: { ...(chat.spec as Obj), ...spec, workload: { source: 'Static', static: { ...((chat.spec as Obj).workload as { static: Obj }).static, requestsPerSecond: 6 } } } };
    const expected = await expectedPlan(full, tight, pools);
    expect(conditionOf(svc, 'Solved')?.status).toBe('True');
    expect(Object.fromEntries(svc.status!.allocation!.map((a) => [a.pool, a.replicas]))).toEqual(expected.replicas);
    await waitForService(kc, ns.name, 'chat', (s) => conditionOf(s, 'Ready')?.status === 'True' && conditionOf(s, 'Ready')?.observedGeneration === gen, 'Ready at 40 ms', 120_000);
  });

  it('an unservable spec → Ready=False naming the bucket, Deployments untouched (never scaled to zero), a Warning event', async () => {
    const before = byPool(await deploymentsOf(kc, ns.name, 'chat'));
    const svc0 = await waitForService(kc, ns.name, 'chat', (s) => conditionOf(s, 'Ready')?.status === 'True', 'Ready before');
    // Only the cheap GPUs, which cannot hold the 12k-token prompts the distribution still contains.
    const gpus = svc0.spec.gpus.filter((g) => g.pool === 'l4' || g.pool === 'a10g');
    const gen = await patchServiceSpec(kc, ns.name, 'chat', { gpus });
    const svc = await waitForService(kc, ns.name, 'chat', (s) => s.status?.observedGeneration === gen && conditionOf(s, 'Ready')?.status === 'False', 'Ready=False', 30_000);
    expect(conditionOf(svc, 'Ready')?.reason).toBe('BucketUnservable');
    expect(conditionOf(svc, 'Ready')?.message).toMatch(/bucket \(input ≤ 12000 tokens, output ≤ 100 tokens\)/);
    expect(conditionOf(svc, 'Solved')).toMatchObject({ status: 'False', reason: 'BucketUnservable', observedGeneration: gen });
    expect(conditionOf(svc, 'Degraded')).toMatchObject({ status: 'True', reason: 'BucketUnservable' });
    expect(svc.status?.mix).toBe(svc0.status?.mix); // the last allocation is still what runs
    expect(svc.status?.lastSolve?.status).toBe('infeasible');

    const { events } = makeClients(kc);
    const ev = await waitFor(
      async () => (await events.listNamespacedEvent({ namespace: ns.name })).items.find((e) => e.regarding?.name === 'chat' && e.reason === 'BucketUnservable'),
      { what: 'BucketUnservable event', timeoutMs: 15_000 },
    );
    expect(ev.type).toBe('Warning');
    expect(ev.reportingController).toBe('melange.dev/melange-operator');
    expect(ev.note).toMatch(/12000/);
    // Held for a while: nothing was scaled, in particular nothing to zero.
    for (let i = 0; i < 10; i++) {
      expect(byPool(await deploymentsOf(kc, ns.name, 'chat'))).toEqual(before);
      await delay(300);
    }

    // A pool that does not exist is named too.
    const gen2 = await patchServiceSpec(kc, ns.name, 'chat', { gpus: [...svc0.spec.gpus, { pool: 'nope', profile: 'llama2-7b-a100-40ms' }] });
    const svc2 = await waitForService(kc, ns.name, 'chat', (s) => s.status?.observedGeneration === gen2, 'observes the missing pool', 30_000);
    expect(conditionOf(svc2, 'Ready')).toMatchObject({ status: 'False', reason: 'PoolNotFound' });
    expect(conditionOf(svc2, 'Ready')?.message).toMatch(/GPUPool "nope" not found/);
    expect(byPool(await deploymentsOf(kc, ns.name, 'chat'))).toEqual(before);

    // Fixing the spec recovers without anyone touching the operator.
    const gen3 = await patchServiceSpec(kc, ns.name, 'chat', { gpus: svc0.spec.gpus });
    await waitForService(kc, ns.name, 'chat', (s) => s.status?.observedGeneration === gen3 && conditionOf(s, 'Ready')?.status === 'True', 'Ready again', 60_000);
  });

  it('serves /healthz, /readyz and /metrics and logs JSON with the object key and a reconcileID', async () => {
    expect((await httpGet(`${op!.healthUrl}/healthz`)).status).toBe(200);
    expect((await httpGet(`${op!.healthUrl}/readyz`)).status).toBe(200);
    const text = await op!.metrics();
    expect(metricValue(text, 'controller_runtime_reconcile_total', { controller: 'llmservice', result: 'success' })).toBeGreaterThan(0);
    expect(metricValue(text, 'llmservice_hourly_cost_dollars', { namespace: ns.name, name: 'chat' })).toBeGreaterThan(0);
    expect(text).toMatch(/llmservice_solver_duration_seconds_count\{[^}]*outcome="optimal"/);
    expect(text).toMatch(/controller_runtime_reconcile_time_seconds_bucket/);
    expect(metricValue(text, 'leader_election_master_status', { name: 'melange-operator-leader' })).toBe(1);
    const line = op!.logs().find((l) => l.msg === 'status updated');
    expect(line).toMatchObject({ level: 'info', controller: 'llmservice', llmservice: `${ns.name}/chat`, app: 'melange-operator' });
    expect(typeof line?.reconcileID).toBe('string');
  });

  it('deleting the LLMService garbage-collects its Deployments', async () => {
    const { custom } = makeClients(kc);
    await custom.deleteNamespacedCustomObject({ ...crRef(ns.name, 'llmservices'), name: 'chat' });
    await waitFor(async () => (await deploymentsOf(kc, ns.name, 'chat')).size === 0, { what: 'Deployments of chat collected', timeoutMs: 60_000, intervalMs: 500 });
    await delay(2_000);
    expect((await deploymentsOf(kc, ns.name, 'chat')).size).toBe(0); // and the operator did not recreate them
    expect(op!.alive()).toBe(true);
  });
});

async function getRaw(kc: KubeConfig, namespace: string, name: string): Promise<Obj> {
  return (await makeClients(kc).custom.getNamespacedCustomObject({ ...crRef(namespace, 'llmservices'), name })) as Obj;
}

/** The resourceVersion once it stopped changing for 2 s. */
async function waitForStable(kc: KubeConfig, namespace: string): Promise<string> {
  let last = '';
  let since = Date.now();
  return waitFor(
    async () => {
      const rv = String(((await getRaw(kc, namespace, 'chat')).metadata as Obj).resourceVersion);
      if (rv !== last) {
        last = rv;
        since = Date.now();
        return undefined;
      }
      return Date.now() - since >= 2_000 ? rv : undefined;
    },
    { what: 'status to settle', timeoutMs: 30_000, intervalMs: 250 },
  );
}

/** The value of one sample of a Prometheus text exposition (0 if absent). */
export function metricValue(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^[^{ ]+(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const got = Object.fromEntries([...(m[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[2]);
  }
  return 0;
}
