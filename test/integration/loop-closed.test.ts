/**
 * Issue 5 acceptance, the closed loop, on 127.0.0.1: real Prometheus scraping a real router process in front
 * of real emulator processes (one A10G, one A100), the operator as a process on the real API server planning
 * from Prometheus (spec.workload.source: Prometheus). The router's config file is kept in sync with the
 * operator's ConfigMap by the test (DNS discovery replaced by the local emulators' URLs: no kubelet here).
 *
 * Short requests → the allocation is dominated by the cheap A10G; long requests → within 3 solve intervals
 * the allocation and the ConfigMap split move toward the A100; load stopped → the allocation is not scaled
 * to zero (MetricsAvailable stays True at zero traffic, or goes False with Stale).
 */
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LLMService } from '../../src/api/index.js';
import { emulatedProfile } from '../../src/emulator/simulate.js';
import { runLoad, type LoadReport } from '../../src/loadgen/index.js';
import { validateConfig } from '../../src/router/config.js';
import { applyCrdsFromDir } from '../support/crds.js';
import { testEnv } from '../support/env.js';
import { ignoreNotFound, loadKubeConfig, makeClients } from '../support/kube.js';
import { startEmulator, startRouter, syncRouterConfig, type CliProcess } from '../support/loop-processes.js';
import { uniqueName, useTestNamespace } from '../support/namespace.js';
import { applyCr, conditionOf, getService, waitForService } from '../support/operator-fixtures.js';
import { startOperator, stopOperators, type OperatorProcess } from '../support/operator-process.js';
import { repoPath } from '../support/paths.js';
import { writeScrapeTargets } from '../support/prometheus.js';
import { delay } from '../support/wait.js';

const env = testEnv();
const SOLVE_INTERVAL_S = 6;
const BUCKETS = { inputEdges: [256, 3072], outputEdges: [64] };
const TPOT = 100;

type Obj = Record<string, unknown>;

describe('closed loop: Prometheus → operator → ConfigMap → router → emulators', { timeout: 180_000 }, () => {
  const ns = useTestNamespace('loop');
  const sfx = uniqueName('lp').slice(3);
  const small = `a10g-${sfx}`;
  const big = `a100-${sfx}`;
  const procs: CliProcess[] = [];
  const ops: OperatorProcess[] = [];
  let kc: KubeConfig;
  let sync: { stop: () => void } | undefined;
  let router: (CliProcess & { metricsPort: number }) | undefined;
  let scrapeFile = '';
  const configTexts: string[] = [];

  const replicas = (s: LLMService) => Object.fromEntries((s.status?.allocation ?? []).map((a) => [a.pool, a.replicas])) as Record<string, number>;
  const share = (r: Record<string, number>, pool: string) => {
    const total = Object.values(r).reduce((a, b) => a + b, 0);
    return total === 0 ? 0 : (r[pool] ?? 0) / total;
  };
  /** Weight of `pool` on the long input range (1) in the ConfigMap's split. */
  const longWeight = (text: string, pool: string) => {
    const v = validateConfig(parseYaml(text));
    if (!v.ok) throw new Error(v.errors.join('; '));
    const e = v.config.split.find((s) => s.input === 1 && s.output === 0);
    if (!e) return 0;
    const sum = Object.values(e.weights).reduce((a, b) => a + b, 0);
    return sum === 0 ? 0 : (e.weights[pool] ?? 0) / sum;
  };

  beforeAll(async () => {
    kc = loadKubeConfig(env.kubeconfig);
    await applyCrdsFromDir(kc, repoPath('crds'));
    const pool = (name: string, gpuType: string, cost: string): Obj => ({
      apiVersion: 'melange.dev/v1alpha1',
      kind: 'GPUPool',
      metadata: { name },
      spec: { gpuType, costPerGPUHour: cost, gpusPerNode: 1, nodeSelector: { 'nvidia.com/gpu.product': `LOOP-${gpuType}-${sfx}` } },
    });
    const profile = (name: string, gpuType: string, emu: 'A10G' | 'A100-80GB'): Obj => ({
      apiVersion: 'melange.dev/v1alpha1',
      kind: 'GPUProfile',
      metadata: { name },
      spec: { model: 'emulated', gpuType, slo: { tpotMillis: TPOT }, buckets: BUCKETS, maxThroughput: emulatedProfile(emu, BUCKETS.inputEdges, BUCKETS.outputEdges, TPOT) },
    });
    // A10G: ~3.6 req/s short, ~0.21 long; A100: ~9.6 short, ~0.96 long. At $1 vs $3 per hour the A10G is
    // cheaper per short request (1/3.6 < 3/9.6) and the A100 per long one (3/0.96 < 1/0.21).
    await applyCr(kc, pool(small, 'A10G', '1.00'));
    await applyCr(kc, pool(big, 'A100', '3.00'));
    await applyCr(kc, profile(`p-${small}`, 'A10G', 'A10G'), ns.name);
    await applyCr(kc, profile(`p-${big}`, 'A100', 'A100-80GB'), ns.name);
    const logDir = `${env.runDir}/logs`;
    procs.push(await startEmulator(`loop-emu-a10g-${sfx}`, 'A10G', logDir));
    procs.push(await startEmulator(`loop-emu-a100-${sfx}`, 'A100', logDir));
  });

  afterAll(async () => {
    sync?.stop();
    await stopOperators(ops);
    if (router) await router.stop();
    for (const p of procs) await p.stop();
    if (scrapeFile) await writeScrapeTargets(env.fileSdDir, `loop-${sfx}`, []);
    if (!kc) return;
    const { custom } = makeClients(kc);
    for (const name of [small, big]) await ignoreNotFound(() => custom.deleteClusterCustomObject({ group: 'melange.dev', version: 'v1alpha1', plural: 'gpupools', name }));
  });

  it('short → cheap type; long → toward the big type within 3 solve intervals; no traffic → not scaled to zero', async () => {
    const logDir = `${env.runDir}/logs`;
    ops.push(
      await startOperator({
        kubeconfig: env.kubeconfig,
        leaseNamespace: ns.name,
        watchNamespace: ns.name,
        logDir,
        name: `op-loop-${sfx}`,
        extraArgs: ['--prometheus-url', env.prometheusUrl, '--router-image', 'registry.invalid/melange-operator:test'],
      }),
    );
    await applyCr(
      kc,
      {
        apiVersion: 'melange.dev/v1alpha1',
        kind: 'LLMService',
        metadata: { name: 'llm' },
        spec: {
          model: 'emulated',
          slo: { tpotMillis: TPOT },
          buckets: BUCKETS,
          gpus: [
            { pool: small, profile: `p-${small}` },
            { pool: big, profile: `p-${big}` },
          ],
          // The static workload plans the service until Prometheus has data (the router needs a first split).
          workload: { source: 'Prometheus', prometheus: { window: '20s' }, static: { requestsPerSecond: 1, distribution: [[0.9], [0.1]] } },
          policy: { solveInterval: `${SOLVE_INTERVAL_S}s` },
          router: { enabled: true, replicas: 1 },
          template: { spec: { containers: [{ name: 'server', image: 'registry.invalid/model-server:1', ports: [{ name: 'http', containerPort: 8000 }] }] } },
        },
      },
      ns.name,
    );
    await waitForService(kc, ns.name, 'llm', (s) => (s.status?.split?.length ?? 0) > 0, 'a first split', 60_000);

    // The router: its config file follows the ConfigMap, with the local emulators as backends.
    const dir = mkdtempSync(join(env.runDir, 'loop-router-'));
    const file = join(dir, 'config.yaml');
    const backends = { A10G: [procs[0]!.url], A100: [procs[1]!.url] };
    const s = syncRouterConfig(kc, ns.name, 'llm-router', file, backends, (t) => configTexts.push(t));
    sync = s;
    await s.first;
    router = await startRouter(`loop-router-${sfx}`, file, logDir);
    scrapeFile = await writeScrapeTargets(env.fileSdDir, `loop-${sfx}`, [{ targets: [`127.0.0.1:${router.metricsPort}`] }]);

    // Phase 1: short requests.
    const shortDist = { name: 'short', ranges: [{ probability: 1, inputMin: 40, inputMax: 200, outputMin: 16, outputMax: 48 }] };
    const longDist = { name: 'long', ranges: [{ probability: 1, inputMin: 1200, inputMax: 2800, outputMin: 16, outputMax: 48 }] };
    const load = (distribution: typeof shortDist, rate: number, durationS: number, seed: number): Promise<LoadReport> =>
      runLoad({ url: router!.url, rate, requests: Math.ceil(rate * durationS), durationS, distribution, seed, maxInFlight: 64, requestTimeoutS: 60, drainS: 30 });
    const shortLoad = load(shortDist, 4, 30, 1);
    const p1 = await waitForService(
      kc,
      ns.name,
      'llm',
      (sv) => conditionOf(sv, 'MetricsAvailable')?.reason === 'RouterMetrics' && share(replicas(sv), small) > 0.5,
      'a measured allocation dominated by A10G',
      60_000,
    );
    const r1 = replicas(p1);
    console.info(`[loop] short: ${JSON.stringify(r1)} at ${p1.status?.workload?.requestsPerSecond} req/s; ${conditionOf(p1, 'MetricsAvailable')?.message}`);
    expect(share(r1, small)).toBeGreaterThan(0.5);
    const shortReport = await shortLoad;
    expect(shortReport.completed).toBeGreaterThan(0);

    // Phase 2: long requests; within 3 solve intervals the allocation and the split move toward the A100.
    const longLoad = load(longDist, 1, 30, 2);
    const t0 = Date.now();
    const bigShare0 = share(r1, big);
    const deadline = t0 + 3 * SOLVE_INTERVAL_S * 1000 + 2_000; // + a status write and a ConfigMap poll
    let p2: LLMService | undefined;
    while (Date.now() < deadline) {
      const sv = await getService(kc, ns.name, 'llm');
      if (share(replicas(sv), big) > bigShare0) {
        p2 = sv;
        break;
      }
      await delay(500);
    }
    expect(p2, `allocation did not move toward ${big} within 3 solve intervals`).toBeDefined();
    const r2 = replicas(p2!);
    console.info(`[loop] long after ${((Date.now() - t0) / 1000).toFixed(1)} s: ${JSON.stringify(r2)} at ${p2!.status?.workload?.requestsPerSecond} req/s`);
    // The ConfigMap (and the router's file) follow the status split.
    const { core } = makeClients(kc);
    let cmText = '';
    for (let i = 0; i < 10; i++) {
      cmText = (await core.readNamespacedConfigMap({ name: 'llm-router', namespace: ns.name })).data?.['config.yaml'] ?? '';
      const v = validateConfig(parseYaml(cmText));
      if (v.ok && JSON.stringify(v.config.split) === JSON.stringify((await getService(kc, ns.name, 'llm')).status?.split)) break;
      await delay(500);
    }
    expect(longWeight(cmText, big)).toBeGreaterThan(0);
    // The router's file is synced from the ConfigMap by polling (standing in for kubelet): give it a few polls.
    for (let i = 0; i < 20 && configTexts.at(-1) !== cmText; i++) await delay(500);
    expect(configTexts.at(-1)).toBe(cmText);
    // The router really saw long requests, per Prometheus.
    const q = await fetch(`${env.prometheusUrl}/api/v1/query?query=${encodeURIComponent(`sum(melange_router_requests_total{namespace="${ns.name}",service="llm",input_le="3072"})`)}`);
    const body = (await q.json()) as { data: { result: Array<{ value: [number, string] }> } };
    expect(Number(body.data.result[0]?.value[1] ?? 0)).toBeGreaterThan(0);
    await longLoad;

    // Phase 3: no traffic. MetricsAvailable stays True (zero rate) or goes False/Stale; never scaled to zero.
    await delay((20 + 2 * SOLVE_INTERVAL_S) * 1000);
    const p3 = await getService(kc, ns.name, 'llm');
    const m = conditionOf(p3, 'MetricsAvailable');
    console.info(`[loop] idle: ${JSON.stringify(replicas(p3))}; MetricsAvailable=${m?.status} ${m?.reason}: ${m?.message}`);
    expect(m?.status === 'True' || (m?.status === 'False' && m.reason === 'Stale')).toBe(true);
    expect(Object.values(replicas(p3)).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });
});
