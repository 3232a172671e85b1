/**
 * Issue 5 acceptance, "never act on missing data", at the operator level: the operator runs as its own process
 * (CLI) on the real API server, planning an LLMService with spec.workload.source=Prometheus.
 *
 *   1. A real Prometheus of this test's own (so stopping it touches no other test) scrapes a real exporter of
 *      the router's counter. Stopped → MetricsAvailable=False QueryFailed, the allocation (status and
 *      Deployments) unchanged over more than 2 solve intervals while the operator keeps retrying, the process
 *      alive and healthy; restarted on the same port and data → MetricsAvailable=True again, same process.
 *   2. spec.workload.prometheus.url pointed at a stand-in on 127.0.0.1 that answers garbage (not JSON), "NaN"
 *      samples, or empty vectors → each gives MetricsAvailable=False with its own reason (QueryFailed with the
 *      decode error, InvalidData naming NaN, NoData), the allocation unchanged, no crash; each recovers.
 *   3. The stand-in requires a bearer token: no reference → HTTP 401; a reference to a missing Secret, to a
 *      Secret without the opt-in label melange.dev/prometheus-credentials="true" (the token is never sent), to
 *      a missing key → InvalidConfig naming the field; the labelled Secret → MetricsAvailable=True.
 *
 * Timing: solveInterval 2 s, window 10 s; after a failure the operator retries after 2 s, 4 s, 8 s…
 * (defaultBackoffFor), a spec.workload change is tried at once, and after a gap in the data (QueryFailed, Stale,
 * NoData) good answers are held for one window before they are planned on. Every wait is bounded with that in mind.
 */
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LLMService } from '../../src/api/index.js';
import { applyCrdsFromDir } from '../support/crds.js';
import { testEnv } from '../support/env.js';
import { startFakePrometheus, type FakePrometheus, type FakePrometheusMode } from '../support/fake-prometheus.js';
import { httpGet } from '../support/http.js';
import { ignoreNotFound, loadKubeConfig, makeClients, mergePatch } from '../support/kube.js';
import { uniqueName, useTestNamespace } from '../support/namespace.js';
import { applyCr, conditionOf, deploymentsOf, getService, patchServiceSpec, replicasByPool, waitForService } from '../support/operator-fixtures.js';
import { tinyReplicas, tinyService } from '../support/operator-objects.js';
import { startOperator, stopOperators, type OperatorProcess } from '../support/operator-process.js';
import { repoPath } from '../support/paths.js';
import { startPrometheus, waitForQuery, type PrometheusInstance } from '../support/prometheus.js';
import { stopProcess } from '../support/processes.js';
import { startRouterExporter, type TestExporter } from '../support/test-exporter.js';
import { delay } from '../support/wait.js';

const env = testEnv();
const SOLVE_INTERVAL_MS = 2_000;
const RATE = 3; // req/s measured through the real Prometheus → tinyReplicas(3) = 4
const FAKE_RATE = 3.2; // the stand-in's "ok" answer: same replicas, but visible in status.workload
const SVC = 'svc';

describe('operator: Prometheus outage and garbage/NaN/empty answers hold the allocation and recover', { timeout: 240_000 }, () => {
  const ns = useTestNamespace('metrics-outage');
  const sfx = uniqueName('mo').slice(3);
  const tiny = tinyService(SVC, `mo-${sfx}`);
  const ops: OperatorProcess[] = [];
  let kc: KubeConfig;
  let exporter: TestExporter | undefined;
  let prom: PrometheusInstance | undefined;
  let promDir = '';
  let fake: FakePrometheus | undefined;
  let op: OperatorProcess;
  const expectedReplicas = tinyReplicas(RATE);

  const metrics = (s: LLMService) => conditionOf(s, 'MetricsAvailable');
  const allocationOf = (s: LLMService) => JSON.stringify((s.status?.allocation ?? []).map((a) => [a.pool, a.replicas]));
  const healthz = async () => (await httpGet(`${op.healthUrl}/healthz`, {}, 2_000)).status;
  const startOwnPrometheus = (port?: number) =>
    startPrometheus({ runDir: promDir, staticTargets: [{ job: 'router', targets: [exporter!.target] }], ...(port ? { port } : {}) });

  /** The allocation in status and the Deployments' replicas, to compare before/after. */
  const snapshot = async () => {
    const s = await getService(kc, ns.name, SVC);
    return { status: allocationOf(s), deployments: replicasByPool(await deploymentsOf(kc, ns.name, SVC)) };
  };

  /**
   * Polls for `ms` (≥ 2 solve intervals): MetricsAvailable stays False with `reason`, status allocation and
   * Deployments stay as `before`, the operator process lives and /healthz answers 200. Returns the condition
   * messages seen (they carry the retry count: the operator kept trying, it did not just stop).
   */
  const holdsFor = async (ms: number, reason: string, before: Awaited<ReturnType<typeof snapshot>>): Promise<string[]> => {
    const messages = new Set<string>();
    const until = Date.now() + ms;
    for (let i = 0; Date.now() < until && i < 200; i++) {
      const s = await getService(kc, ns.name, SVC);
      const m = metrics(s);
      expect(m, 'MetricsAvailable').toMatchObject({ status: 'False', reason });
      messages.add(m?.message ?? '');
      expect(allocationOf(s), 'status.allocation').toBe(before.status);
      expect(replicasByPool(await deploymentsOf(kc, ns.name, SVC)), 'Deployment replicas').toEqual(before.deployments);
      expect(op.alive(), 'operator process alive').toBe(true);
      expect(await healthz()).toBe(200);
      await delay(400);
    }
    return [...messages];
  };

  beforeAll(async () => {
    kc = loadKubeConfig(env.kubeconfig);
    await applyCrdsFromDir(kc, repoPath('crds'));
    await applyCr(kc, tiny.pool);
    await applyCr(kc, tiny.profile, ns.name);
    exporter = await startRouterExporter([{ labels: { namespace: ns.name, service: SVC, input_le: '1000', output_le: '500' }, rate: RATE }]);
    promDir = mkdtempSync(join(env.runDir, 'outage-prometheus-'));
    prom = await startOwnPrometheus();
    fake = await startFakePrometheus({ buckets: [{ input_le: '1000', output_le: '500', rate: FAKE_RATE }] });
    op = await startOperator({ kubeconfig: env.kubeconfig, leaseNamespace: ns.name, watchNamespace: ns.name, logDir: join(env.runDir, 'logs'), name: `op-outage-${sfx}` });
    ops.push(op);
  });

  afterAll(async () => {
    await stopOperators(ops);
    if (prom) await stopProcess(prom.process, 5_000).catch(() => {});
    await exporter?.close();
    await fake?.close();
    if (kc) await ignoreNotFound(() => makeClients(kc).custom.deleteClusterCustomObject({ group: 'melange.dev', version: 'v1alpha1', plural: 'gpupools', name: tiny.poolName }));
  });

  it('Prometheus stopped → MetricsAvailable=False, allocation held, operator alive; restarted → recovers by itself', async () => {
    // The exporter's series are in our Prometheus with a rate before the operator looks.
    await waitForQuery(prom!.url, `sum(rate(melange_router_requests_total{namespace="${ns.name}"}[10s]))`, (s) => Math.abs((s[0]?.value ?? 0) - RATE) < 0.05, 30_000);
    await applyCr(
      kc,
      {
        ...tiny.service,
        spec: {
          ...(tiny.service.spec as Record<string, unknown>),
          workload: { source: 'Prometheus', prometheus: { url: prom!.url, window: '10s' } },
          policy: { solveInterval: `${SOLVE_INTERVAL_MS / 1000}s` },
        },
      },
      ns.name,
    );
    const planned = await waitForService(
      kc,
      ns.name,
      SVC,
      (s) => metrics(s)?.reason === 'RouterMetrics' && s.status?.allocation?.[0]?.replicas === expectedReplicas,
      `allocated from the router metrics (${expectedReplicas} replicas)`,
      60_000,
    );
    expect(planned.status?.workload?.requestsPerSecond).toBeCloseTo(RATE, 1);
    const before = await snapshot();
    expect(before.deployments).toEqual({ [tiny.poolName]: expectedReplicas });

    // Stop it. The next observation (≤ 1 solve interval) fails: connection refused.
    const t0 = Date.now();
    await stopProcess(prom!.process, 10_000);
    const down = await waitForService(kc, ns.name, SVC, (s) => metrics(s)?.status === 'False', 'MetricsAvailable=False after Prometheus stopped', 20_000);
    const detectMs = Date.now() - t0;
    expect(metrics(down)).toMatchObject({ reason: 'QueryFailed' });
    // The first failure may be a keep-alive socket closed by the shutdown itself; then connection refused.
    expect(metrics(down)?.message).toContain(`network: cannot reach Prometheus at ${prom!.url}`);
    expect(metrics(down)?.message).toContain('keeping the last allocation');

    // Held for more than 2 solve intervals, with retries (the message counts them), no restart.
    const messages = await holdsFor(2 * SOLVE_INTERVAL_MS + 1_500, 'QueryFailed', before);
    expect(messages.some((m) => /retry #[2-9]/.test(m)), `retries while down: ${messages.join(' | ')}`).toBe(true);
    expect(messages.some((m) => /ECONNREFUSED/.test(m)), `connection refused while down: ${messages.join(' | ')}`).toBe(true);

    // Back on the same port with the same TSDB, without touching the operator.
    const pid = op.record.pid;
    const t1 = Date.now();
    prom = await startOwnPrometheus(Number(new URL(prom!.url).port));
    // Until it is True again: the allocation never moves, not even on the first answers, whose rate window still
    // spans the outage and under-counts (the operator holds them one window: MetricsAvailable=False NoData).
    const allocations = new Set<string>();
    const recovering = new Set<string>();
    const up = await waitForService(
      kc,
      ns.name,
      SVC,
      (s) => {
        allocations.add(allocationOf(s));
        const m = metrics(s);
        if (m?.status === 'False') recovering.add(`${m.reason}: ${m.message}`);
        return m?.status === 'True';
      },
      'MetricsAvailable=True after Prometheus came back',
      90_000,
    );
    const recoverMs = Date.now() - t1;
    expect([...allocations]).toEqual([before.status]);
    expect(
      [...recovering].some((m) => m.startsWith('NoData: Prometheus answers again')),
      `held one window after the outage: ${[...recovering].join(' | ')}`,
    ).toBe(true);
    expect(metrics(up)?.reason).toBe('RouterMetrics');
    expect(op.alive()).toBe(true);
    expect(op.record.pid).toBe(pid);
    const seen = `${JSON.stringify(metrics(up))} workload=${JSON.stringify(up.status?.workload)}`;
    expect(allocationOf(up), seen).toBe(before.status);
    expect(up.status?.workload?.requestsPerSecond, seen).toBeCloseTo(RATE, 1);
    console.info(`[metrics-outage] Prometheus down detected in ${detectMs} ms; recovered ${recoverMs} ms after restart (back-off grows 2 s, 4 s, 8 s…)`);
  });

  it('garbage, NaN and empty answers → MetricsAvailable=False naming which, allocation held, no crash; each recovers', async () => {
    const f = fake!;
    await patchServiceSpec(kc, ns.name, SVC, { workload: { prometheus: { url: f.url } } });
    await waitForService(kc, ns.name, SVC, (s) => metrics(s)?.status === 'True' && Math.abs((s.status?.workload?.requestsPerSecond ?? 0) - FAKE_RATE) < 0.01, 'planning from the stand-in', 30_000);

    const cases: Array<{ mode: FakePrometheusMode; reason: string; message: RegExp }> = [
      { mode: 'garbage', reason: 'QueryFailed', message: /decode: HTTP 200: response is not JSON/ },
      { mode: 'nan', reason: 'InvalidData', message: /not a finite non-negative number.*= NaN/ },
      { mode: 'empty', reason: 'NoData', message: /no workload data at .*neither router series .* nor vLLM series/ },
    ];
    for (const c of cases) {
      const before = await snapshot();
      expect(before.deployments).toEqual({ [tiny.poolName]: expectedReplicas });
      f.mode = c.mode;
      const bad = await waitForService(kc, ns.name, SVC, (s) => metrics(s)?.status === 'False', `MetricsAvailable=False on ${c.mode}`, 20_000);
      expect(metrics(bad), c.mode).toMatchObject({ reason: c.reason });
      expect(metrics(bad)?.message, c.mode).toMatch(c.message);
      await holdsFor(2 * SOLVE_INTERVAL_MS + 500, c.reason, before);
      f.mode = 'ok';
      const seen = new Set<string>();
      const ok = await waitForService(kc, ns.name, SVC, (s) => (seen.add(allocationOf(s)), metrics(s)?.status === 'True'), `recovery after ${c.mode}`, 40_000);
      expect(allocationOf(ok)).toBe(before.status);
      expect([...seen], `allocation while recovering from ${c.mode}`).toEqual([before.status]);
    }
    // Nothing crashed or restarted on the way.
    expect(op.alive()).toBe(true);
    expect(op.logs().filter((l) => l.level === 'fatal' || /unhandled|uncaught/i.test(String(l.msg)))).toEqual([]);
  });

  it('a bearer-token-protected endpoint works only with a Secret labelled melange.dev/prometheus-credentials="true"', async () => {
    const f = fake!;
    const token = `tok-${uniqueName('t')}`;
    const { core } = makeClients(kc);
    const before = await snapshot();
    const sentToken = () => f.requests.filter((r) => r.authorization === `Bearer ${token}`).length;
    const waitMetrics = (pred: (m: NonNullable<ReturnType<typeof metrics>>) => boolean, what: string, ms = 30_000) =>
      waitForService(
        kc,
        ns.name,
        SVC,
        (s) => {
          const m = metrics(s);
          return m !== undefined && pred(m);
        },
        what,
        ms,
      ).then((s) => metrics(s)!);

    // No credentials: the endpoint answers 401.
    f.mode = 'ok';
    f.bearerToken = token;
    const unauth = await waitMetrics((m) => m.status === 'False', 'HTTP 401 without a token');
    expect(unauth).toMatchObject({ reason: 'QueryFailed' });
    expect(unauth.message).toContain('HTTP 401');

    // A reference to a Secret that does not exist (a spec change: tried at once).
    await patchServiceSpec(kc, ns.name, SVC, { workload: { prometheus: { bearerTokenSecretRef: { name: 'prom-token', key: 'token' } } } });
    const missing = await waitMetrics((m) => m.reason === 'InvalidConfig', 'InvalidConfig: Secret not found', 20_000);
    expect(missing.message).toContain(`spec.workload.prometheus.bearerTokenSecretRef.name: Secret ${ns.name}/prom-token key "token": Secret not found`);

    // The Secret exists but has not opted in: refused, and the token never leaves the operator.
    await core.createNamespacedSecret({ namespace: ns.name, body: { metadata: { name: 'prom-token' }, stringData: { token: `${token}\n` } } });
    const notOptedIn = await waitMetrics((m) => m.reason === 'InvalidConfig' && m.message.includes('not labelled'), 'InvalidConfig: Secret not opted in', 30_000);
    expect(notOptedIn.message).toContain(`Secret ${ns.name}/prom-token`);
    expect(notOptedIn.message).toContain('melange.dev/prometheus-credentials: "true"');
    expect(notOptedIn.message).not.toContain(token);
    const requestsAtRefusal = f.requests.length;
    await holdsFor(SOLVE_INTERVAL_MS + 500, 'InvalidConfig', before);
    expect(sentToken()).toBe(0);
    expect(f.requests.length, 'no query at all while the credentials are refused').toBe(requestsAtRefusal);

    // The owner opts the Secret in: used on the next retry, by itself.
    await core.patchNamespacedSecret(
      { name: 'prom-token', namespace: ns.name, body: { metadata: { labels: { 'melange.dev/prometheus-credentials': 'true' } } } },
      mergePatch(),
    );
    const authed = await waitMetrics((m) => m.status === 'True', 'MetricsAvailable=True with the labelled Secret', 40_000);
    expect(authed.reason).toBe('RouterMetrics');
    expect(sentToken()).toBeGreaterThan(0);
    expect(allocationOf(await getService(kc, ns.name, SVC))).toBe(before.status);

    // A key the Secret does not have: the message names the field to fix and the keys it has (not their values).
    await patchServiceSpec(kc, ns.name, SVC, { workload: { prometheus: { bearerTokenSecretRef: { name: 'prom-token', key: 'tokn' } } } });
    const noKey = await waitMetrics((m) => m.reason === 'InvalidConfig', 'InvalidConfig: missing key', 20_000);
    expect(noKey.message).toContain(`spec.workload.prometheus.bearerTokenSecretRef.key: Secret ${ns.name}/prom-token key "tokn": no such key (has: token)`);
    expect(noKey.message).not.toContain(token);
    await holdsFor(SOLVE_INTERVAL_MS, 'InvalidConfig', before);
    expect(op.alive()).toBe(true);
  });
});
