// Operator benchmark (not a test): N LLMServices with static workloads on a private `full` control plane
// (kube-apiserver, etcd, KCM, scheduler, kwok fake GPU nodes, so pods really schedule and turn Ready).
// Reports the time until every service reports Ready=True for its current generation, then operator CPU and
// RSS over 5 solve intervals of steady state, and kube-apiserver requests per reconcile.
//
//   npm run bench:controller -- [services=100] [solveIntervalSeconds=10] [componentQps=0]
// Targets (issue P3): 1,000 services converge within 120 s; steady state under 0.5 core and 500 MiB.
//
// Two times are reported, because "Ready" needs the cluster to bring the pods up too: `plannedS` is when
// every service has status for its generation with an allocation (the operator's part: solve, apply the
// Deployment, write status), `convergedS` when every service is Ready (KCM created the ReplicaSets and
// Pods, the scheduler bound them, kwok made them Ready, and the operator saw it). componentQps > 0 raises
// KCM's and the scheduler's client QPS from the kubeadm defaults (KCM 20), as large clusters do: at 20 QPS
// KCM alone needs minutes for 1,000 ReplicaSets and 2,000 Pods, whatever the operator does.
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { locateBinDir } from '../test/support/bins.js';
import { startControlPlane } from '../test/support/control-plane.js';
import { applyCrdsFromDir } from '../test/support/crds.js';
import { httpGet } from '../test/support/http.js';
import { loadKubeConfig, makeClients } from '../test/support/kube.js';
import { createGpuNode } from '../test/support/kwok-nodes.js';
import { makeClients as makeOperatorClients, serverSideApply } from '../src/controller/kube.js';
import { FIXTURE_MANAGER, applyCr } from '../test/support/operator-fixtures.js';
import { tinyService } from '../test/support/operator-objects.js';
import { startOperator } from '../test/support/operator-process.js';
import { stopProcesses } from '../test/support/processes.js';

const N = Number(process.argv[2] ?? 100);
const INTERVAL_S = Number(process.argv[3] ?? 10);
const COMPONENT_QPS = Number(process.argv[4] ?? 0);
const NAMESPACES = 10;
const REPLICAS_PER_SERVICE = 2; // 1 req/s, 1 req/s per replica, +10% headroom → 2 replicas
const PODS_PER_NODE = 500;

const runDir = await mkdtemp(join(tmpdir(), 'melange-bench-'));
const cp = await startControlPlane({ binDir: locateBinDir(), profile: 'full', runDir, ...(COMPONENT_QPS > 0 ? { componentQps: COMPONENT_QPS } : {}) });
const kc = loadKubeConfig(cp.kubeconfig);
const { custom, core } = makeClients(kc);

const apiRequests = async (): Promise<number> => {
  const r = await httpGet(`${cp.apiUrl}/metrics`, { ca: cp.pki.caCrt, cert: cp.pki.adminCrt, key: cp.pki.adminKey }, 20_000);
  let sum = 0;
  for (const l of r.body.split('\n')) if (l.startsWith('apiserver_request_total{') && !/verb="WATCH"/.test(l)) sum += Number(l.split(' ').pop());
  return sum;
};
const cpuSeconds = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
const memory = (pid: number) => {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? 0) / 1024;
  return { rssMiB: kb('VmRSS'), peakRssMiB: kb('VmHWM') };
};

try {
  await applyCrdsFromDir(kc, join(process.cwd(), 'crds'));
  const t = tinyService('x', 'bench', 1);
  await applyCr(kc, t.pool);
  const nodes = Math.ceil((N * REPLICAS_PER_SERVICE) / PODS_PER_NODE) + 1;
  for (let i = 0; i < nodes; i++) {
    await createGpuNode(kc, { name: `bench-gpu-${i}`, product: t.product, gpus: PODS_PER_NODE, pods: PODS_PER_NODE,
      taints: [{ key: 'nvidia.com/gpu', value: 'present', effect: 'NoSchedule' }] });
  }
  for (let i = 0; i < NAMESPACES; i++) {
    await core.createNamespace({ body: { metadata: { name: `b${i}` } } });
    await applyCr(kc, t.profile, `b${i}`);
  }
  const op = await startOperator({ kubeconfig: cp.kubeconfig, leaseNamespace: 'default', logDir: runDir, name: 'bench', extraArgs: [`--log-level=${process.env.BENCH_LOG_LEVEL ?? 'warn'}`, ...(process.env.BENCH_WORKERS ? [`--workers=${process.env.BENCH_WORKERS}`] : [])] });
  const pid = op.record.pid;
  const t0 = Date.now();
  const svc = (i: number) => ({ ...t.service, metadata: { name: `s${i}` },
    spec: { ...(t.service.spec as object), policy: { solveInterval: `${INTERVAL_S}s` } } });
  // Created like a deploy pipeline would: keep-alive connections (the operator's pooled client), 16 in flight.
  const writer = makeOperatorClients(kc);
  const queue = Array.from({ length: N }, (_, i) => i);
  await Promise.all(Array.from({ length: 16 }, async () => {
    for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
      const body = { ...svc(i), metadata: { name: `s${i}`, namespace: `b${i % NAMESPACES}` } };
      await writer.custom.patchNamespacedCustomObject(
        { group: 'melange.dev', version: 'v1alpha1', plural: 'llmservices', namespace: body.metadata.namespace, name: body.metadata.name, body, fieldManager: FIXTURE_MANAGER, force: true },
        serverSideApply(),
      );
    }
  }));
  writer.agents.destroy();
  const createdS = (Date.now() - t0) / 1000;
  type Item = { metadata: { generation: number }; status?: { observedGeneration?: number; allocation?: unknown[]; conditions?: Array<{ type: string; status: string }> } };
  const deadline = t0 + 15 * 60_000;
  let ready = 0;
  let plannedS: number | undefined;
  let polls = 0;
  while (Date.now() < deadline) {
    const l = (await custom.listClusterCustomObject({ group: 'melange.dev', version: 'v1alpha1', plural: 'llmservices' })) as { items: Item[] };
    const current = l.items.filter((s) => s.status?.observedGeneration === s.metadata.generation);
    if (plannedS === undefined && current.filter((s) => (s.status?.allocation?.length ?? 0) > 0).length >= N) plannedS = (Date.now() - t0) / 1000;
    ready = current.filter((s) => s.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length;
    if (ready >= N) break;
    if (++polls % 10 === 0) {
      const m = await op.metrics().catch(() => '');
      const v = (name: string) => m.split('\n').filter((x) => x.startsWith(name)).reduce((a, x) => a + Number(x.split(' ').pop()), 0);
      const planned = current.filter((s) => (s.status?.allocation?.length ?? 0) > 0).length;
      console.error(`[bench] t=${((Date.now() - t0) / 1000).toFixed(0)}s planned=${planned} ready=${ready} queueDepth=${v('workqueue_depth{')} reconciles=${v('controller_runtime_reconcile_total{')}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  const convergedS = (Date.now() - t0) / 1000;
  const metric = async (name: string) => (await op.metrics()).split('\n').filter((x) => x.startsWith(name))
    .reduce((a, x) => a + Number(x.split(' ').pop()), 0);
  await new Promise((r) => setTimeout(r, 5_000));
  const before = { cpu: cpuSeconds(pid), api: await apiRequests(), rec: await metric('controller_runtime_reconcile_total{'), at: Date.now() };
  await new Promise((r) => setTimeout(r, 5 * INTERVAL_S * 1000));
  const after = { cpu: cpuSeconds(pid), api: await apiRequests(), rec: await metric('controller_runtime_reconcile_total{'), at: Date.now() };
  const seconds = (after.at - before.at) / 1000;
  const reconciles = after.rec - before.rec;
  const apiReqs = after.api - before.api - 2; // our own two /metrics reads
  const mem = memory(pid);
  const result = {
    services: N, componentQps: COMPONENT_QPS || 'defaults (KCM 20, scheduler 50)', readyServices: ready, createdS, plannedS, convergedS,
    steady: { seconds, cpuCores: (after.cpu - before.cpu) / seconds, reconciles, apiRequests: apiReqs, apiRequestsPerReconcile: apiReqs / Math.max(1, reconciles) },
    ...mem,
  };
  console.log(JSON.stringify(result, null, 2));
  const pass = (ok: boolean, what: string) => console.log(`${ok ? 'PASS' : 'FAIL'}  ${what}`);
  pass(ready >= N, `all ${N} services Ready (${ready})`);
  if (N >= 1000) pass(convergedS <= 120, `converged within 120 s: ${convergedS.toFixed(1)} s`);
  pass(result.steady.cpuCores < 0.5, `steady-state CPU < 0.5 core: ${result.steady.cpuCores.toFixed(3)}`);
  pass(mem.peakRssMiB < 500, `peak RSS < 500 MiB: ${mem.peakRssMiB.toFixed(0)} MiB`);
  await op.terminate();
} finally {
  await stopProcesses(cp.processes);
  if (process.env.BENCH_KEEP) console.error(`[bench] kept ${runDir}`);
  else await rm(runDir, { recursive: true, force: true });
}
