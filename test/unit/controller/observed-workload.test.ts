import { describe, expect, it } from 'vitest';
import { ApiException, type V1Secret } from '@kubernetes/client-node';
import { ObservedWorkloadSource, SecretCredentials, WorkloadSources, defaultBackoffFor, type WorkloadObserver } from '../../../src/controller/workload.js';
import type { SecretReader } from '../../../src/workload/secrets.js';
import { PrometheusWorkloadSource } from '../../../src/workload/source.js';
import type { WorkloadObservation } from '../../../src/workload/source.js';
import { service } from './fixtures.js';

const prom = (over: Record<string, unknown> = {}) =>
  service({ spec: { workload: { source: 'Prometheus', prometheus: { window: '1m' } }, policy: { solveInterval: '10s' }, ...over } });

function scripted(answers: WorkloadObservation[]): WorkloadObserver & { calls: number } {
  const o = {
    calls: 0,
    async observe(): Promise<WorkloadObservation> {
      const a = answers[Math.min(o.calls, answers.length - 1)] as WorkloadObservation;
      o.calls++;
      return a;
    },
  };
  return o;
}

const sample = (over: Partial<Extract<WorkloadObservation, { ok: true }>> = {}): WorkloadObservation => ({
  ok: true,
  requestsPerSecond: 4,
  distribution: [[0.5, 0], [0.5, 0]],
  window: '1m',
  source: 'router',
  sizeAware: true,
  warnings: [],
  ...over,
});

describe('ObservedWorkloadSource (src/workload observations behind the controller seam)', () => {
  it('a router sample becomes the solver override and MetricsAvailable=True RouterMetrics', async () => {
    const e = await new ObservedWorkloadSource(scripted([sample()])).estimate(prom());
    expect(e).toMatchObject({ ok: true, source: 'Prometheus', requestsPerSecond: 4, window: '1m', fallback: false, override: { requestsPerSecond: 4, distribution: [[0.5, 0], [0.5, 0]] } });
    expect(e.metrics).toMatchObject({ status: 'True', reason: 'RouterMetrics' });
    expect(e.metrics.message).toContain('from the router');
  });

  it('vLLM histograms without a router say "not size-aware"', async () => {
    const e = await new ObservedWorkloadSource(scripted([sample({ source: 'vllm-histograms', sizeAware: false })])).estimate(prom({ router: { enabled: false } }));
    expect(e).toMatchObject({ ok: true, metrics: { status: 'True', reason: 'VllmHistograms' } });
    expect(e.metrics.message).toContain('not size-aware');
    expect(e.metrics.message).toContain('no router');
  });

  it('a failure holds with MetricsAvailable=False, backs off (no new query before the retry time), then recovers', async () => {
    let t = Date.parse('2026-01-01T00:00:00Z');
    const obs = scripted([{ ok: false, reason: 'QueryFailed', message: 'connection refused' }, { ok: false, reason: 'Stale', message: 'stale' }, sample()]);
    const src = new ObservedWorkloadSource(obs, { now: () => new Date(t) });
    const svc = prom();
    const a = await src.estimate(svc);
    expect(a).toMatchObject({ ok: false, reason: 'QueryFailed', retryInMs: 10_000, metrics: { status: 'False', reason: 'QueryFailed' } });
    expect(a.metrics.message).toMatch(/keeping the last allocation, retry in 10s/);
    t += 3_000;
    const b = await src.estimate(svc); // within the back-off: the last failure, no query
    expect(obs.calls).toBe(1);
    expect(b).toMatchObject({ ok: false, reason: 'QueryFailed', retryInMs: 7_000 });
    t += 7_000;
    const c = await src.estimate(svc); // second failure: twice the delay
    expect(obs.calls).toBe(2);
    expect(c).toMatchObject({ ok: false, reason: 'Stale', retryInMs: 20_000, metrics: { reason: 'Stale' } });
    t += 20_000;
    // Prometheus answers again, but its 1m rate window still spans the gap: held one window (see below).
    expect(await src.estimate(svc)).toMatchObject({ ok: false, reason: 'NoData', retryInMs: 60_000, metrics: { status: 'False', reason: 'NoData' } });
    expect(obs.calls).toBe(3);
    t += 60_000;
    expect(await src.estimate(svc)).toMatchObject({ ok: true, metrics: { status: 'True' } });
    expect(obs.calls).toBe(4);
  });

  it('after a gap (QueryFailed, Stale, NoData) good answers are held for one window, then planned on; no hold after InvalidConfig/InvalidData', async () => {
    const start = Date.parse('2026-01-01T00:00:00Z');
    let t = start;
    const obs = scripted([{ ok: false, reason: 'QueryFailed', message: 'connection refused' }, sample({ requestsPerSecond: 0.97 }), sample({ requestsPerSecond: 2.5 }), sample({ requestsPerSecond: 3 })]);
    const src = new ObservedWorkloadSource(obs, { now: () => new Date(t) });
    const svc = prom(); // window 1m, solveInterval 10s
    expect(await src.estimate(svc)).toMatchObject({ ok: false, reason: 'QueryFailed' });
    t += 10_000; // retry: Prometheus is back; 0.97 req/s is an under-count from a window that starts in the hole
    const first = await src.estimate(svc);
    expect(first).toMatchObject({ ok: false, reason: 'NoData', retryInMs: 60_000, metrics: { status: 'False', reason: 'NoData' } });
    expect(first.metrics.message).toMatch(/Prometheus answers again \(0\.97 req\/s over 1m\), but that window may still span the gap in the data \(after QueryFailed\)/);
    expect(first.metrics.message).toContain('keeping the last allocation until 2026-01-01T00:01:10.000Z (in 60s)');
    t += 30_000; // a watch event in between: observed again (no back-off: Prometheus answers), still held
    expect(await src.estimate(svc)).toMatchObject({ ok: false, reason: 'NoData', retryInMs: 30_000 });
    expect(obs.calls).toBe(3);
    t += 30_000; // one full window after the first good answer
    expect(await src.estimate(svc)).toMatchObject({ ok: true, requestsPerSecond: 3, metrics: { status: 'True', reason: 'RouterMetrics' } });
    // Answers that were wrong but not missing (Prometheus answered, its TSDB has no hole): no hold.
    for (const reason of ['InvalidConfig', 'InvalidData'] as const) {
      const o2 = scripted([{ ok: false, reason, message: 'x' }, sample()]);
      const s2 = new ObservedWorkloadSource(o2, { now: () => new Date(t) });
      await s2.estimate(svc);
      t += 10_000;
      expect(await s2.estimate(svc), reason).toMatchObject({ ok: true });
    }
    // A gap earlier in the streak counts even if the last failure was another reason (QueryFailed, then InvalidData).
    const o5 = scripted([{ ok: false, reason: 'QueryFailed', message: 'x' }, { ok: false, reason: 'InvalidData', message: 'y' }, sample()]);
    const s5 = new ObservedWorkloadSource(o5, { now: () => new Date(t) });
    await s5.estimate(svc);
    t += 10_000;
    await s5.estimate(svc);
    t += 20_000;
    const held = await s5.estimate(svc);
    expect(held).toMatchObject({ ok: false, reason: 'NoData', retryInMs: 60_000 });
    expect(held.metrics.message).toContain('(after QueryFailed)');
    t += 10_000; // still held, still says why
    expect((await s5.estimate(svc)).metrics.message).toContain('(after QueryFailed)');
    // The window is the service's: 10s → held 10 s.
    const o3 = scripted([{ ok: false, reason: 'Stale', message: 'x' }, sample()]);
    const s3 = new ObservedWorkloadSource(o3, { now: () => new Date(t) });
    const short = prom({ workload: { source: 'Prometheus', prometheus: { window: '10s' } } });
    await s3.estimate(short);
    t += 10_000;
    expect(await s3.estimate(short)).toMatchObject({ ok: false, reason: 'NoData', retryInMs: 10_000 });
    t += 10_000;
    expect(await s3.estimate(short)).toMatchObject({ ok: true });
    // A failure during the hold starts over: back-off, then a new hold after the next good answer.
    const o4 = scripted([{ ok: false, reason: 'NoData', message: 'x' }, sample(), { ok: false, reason: 'QueryFailed', message: 'y' }, sample(), sample()]);
    const s4 = new ObservedWorkloadSource(o4, { now: () => new Date(t) });
    await s4.estimate(short);
    t += 10_000;
    expect(await s4.estimate(short)).toMatchObject({ ok: false, reason: 'NoData' }); // held
    t += 5_000;
    expect(await s4.estimate(short)).toMatchObject({ ok: false, reason: 'QueryFailed', retryInMs: 10_000 });
    t += 10_000;
    expect(await s4.estimate(short)).toMatchObject({ ok: false, reason: 'NoData', retryInMs: 10_000 }); // a fresh hold
    t += 10_000;
    expect(await s4.estimate(short)).toMatchObject({ ok: true });
  });

  it('a changed spec.workload is observed at once, without waiting out the back-off of the old one', async () => {
    let t = Date.parse('2026-01-01T00:00:00Z');
    const obs = scripted([{ ok: false, reason: 'QueryFailed', message: 'connection refused' }, sample()]);
    const src = new ObservedWorkloadSource(obs, { now: () => new Date(t) });
    expect(await src.estimate(prom())).toMatchObject({ ok: false, retryInMs: 10_000 });
    t += 1_000;
    expect(await src.estimate(prom())).toMatchObject({ ok: false, retryInMs: 9_000 }); // same spec: held back
    expect(obs.calls).toBe(1);
    const fixed = prom({ workload: { source: 'Prometheus', prometheus: { window: '1m', url: 'http://127.0.0.1:9090' } } });
    expect(await src.estimate(fixed)).toMatchObject({ ok: true });
    expect(obs.calls).toBe(2);
  });

  it('back-off starts at the solve interval and is capped', () => {
    expect(defaultBackoffFor(prom())).toEqual({ initialMs: 10_000, maxMs: 300_000, multiplier: 2, jitter: 0 });
  });

  it('behind WorkloadSources: Prometheus services use it, Static services do not', async () => {
    const obs = scripted([sample()]);
    const sources = new WorkloadSources({ Prometheus: new ObservedWorkloadSource(obs) });
    expect(await sources.estimate(service())).toMatchObject({ ok: true, source: 'Static' });
    expect(obs.calls).toBe(0);
    expect(await sources.estimate(prom())).toMatchObject({ ok: true, source: 'Prometheus', requestsPerSecond: 4 });
  });
});

describe('unresolvedCredentials', () => {
  it('passes services without Secret references and refuses those with one', async () => {
    const { unresolvedCredentials } = await import('../../../src/controller/workload.js');
    expect(await unresolvedCredentials(prom())).toEqual({});
    const withRef = service({ spec: { workload: { source: 'Prometheus', prometheus: { bearerTokenSecretRef: { name: 'p', key: 'token' } } } } });
    await expect(unresolvedCredentials(withRef)).rejects.toThrow(/not supported/);
  });
});

describe('SecretCredentials (the operator\'s credentials callback)', () => {
  const b64 = (v: string) => Buffer.from(v, 'utf8').toString('base64');
  const LABEL = { 'melange.dev/prometheus-credentials': 'true' };
  /** A fake API server's Secrets; `reads` counts GETs (the only verb the operator has on Secrets). */
  function secrets(initial: Record<string, { data: Record<string, string>; labels?: Record<string, string> }>) {
    const store = new Map(Object.entries(initial));
    const reads: string[] = [];
    const core: SecretReader = {
      async readNamespacedSecret({ name, namespace }): Promise<V1Secret> {
        reads.push(`${namespace}/${name}`);
        const s = store.get(name);
        if (!s) throw new ApiException(404, 'not found', JSON.stringify({ kind: 'Status', code: 404, reason: 'NotFound' }), {});
        return { metadata: { name, namespace, ...(s.labels ? { labels: s.labels } : {}) }, data: Object.fromEntries(Object.entries(s.data).map(([k, v]) => [k, b64(v)])) };
      },
    };
    return { core, reads, store };
  }
  const withToken = (name = 'prom-token', key = 'token') =>
    prom({ workload: { source: 'Prometheus', prometheus: { window: '1m', url: 'http://127.0.0.1:9', bearerTokenSecretRef: { name, key } } } });

  it('no Secret reference → nothing read', async () => {
    const { core, reads } = secrets({});
    expect(await new SecretCredentials(core).resolve(prom())).toEqual({});
    expect(reads).toEqual([]);
  });

  it('reads the labelled Secret of the service\'s namespace with one GET and returns the trimmed token', async () => {
    const { core, reads } = secrets({ 'prom-token': { data: { token: 'abc\n' }, labels: LABEL } });
    expect(await new SecretCredentials(core).resolve(withToken())).toEqual({ bearerToken: 'abc' });
    expect(reads).toEqual(['ml/prom-token']);
  });

  it('refuses a Secret without the opt-in label, naming the Secret, the field and the label', async () => {
    const { core } = secrets({ 'prom-token': { data: { token: 'super-secret-value' } } });
    const err = (await new SecretCredentials(core).resolve(withToken()).catch((e: unknown) => e)) as Error;
    expect(err.message).toContain('spec.workload.prometheus.bearerTokenSecretRef.name: Secret ml/prom-token');
    expect(err.message).toContain('melange.dev/prometheus-credentials: "true"');
    expect(err.message).not.toContain('super-secret-value');
  });

  it('caches successes for ttlMs (one GET per burst of reconciles), never failures; 0 disables', async () => {
    let t = 1_000_000;
    const { core, reads, store } = secrets({ 'prom-token': { data: { token: 'one' } } });
    const creds = new SecretCredentials(core, { ttlMs: 10_000, now: () => t });
    await expect(creds.resolve(withToken())).rejects.toThrow(/not labelled/);
    store.set('prom-token', { data: { token: 'one' }, labels: LABEL }); // the owner opts in: used on the next call
    expect(await creds.resolve(withToken())).toEqual({ bearerToken: 'one' });
    expect(reads).toHaveLength(2);
    store.set('prom-token', { data: { token: 'two' }, labels: LABEL }); // rotated
    t += 9_999;
    expect(await creds.resolve(withToken())).toEqual({ bearerToken: 'one' }); // cached
    expect(reads).toHaveLength(2);
    t += 1;
    expect(await creds.resolve(withToken())).toEqual({ bearerToken: 'two' }); // expired: read again
    expect(reads).toHaveLength(3);
    // A different reference is a different entry.
    store.set('other', { data: { tok: 'three' }, labels: LABEL });
    expect(await creds.resolve(withToken('other', 'tok'))).toEqual({ bearerToken: 'three' });
    expect(reads).toHaveLength(4);
    // The opt-in label removed: refused once the entry expires.
    store.set('prom-token', { data: { token: 'two' } });
    t += 10_000;
    await expect(creds.resolve(withToken())).rejects.toThrow(/not labelled/);
    const uncached = secrets({ 'prom-token': { data: { token: 'x' }, labels: LABEL } });
    const c0 = new SecretCredentials(uncached.core, { ttlMs: 0 });
    await c0.resolve(withToken());
    await c0.resolve(withToken());
    expect(uncached.reads).toHaveLength(2);
  });

  it('behind PrometheusWorkloadSource: a refused Secret → InvalidConfig and no request is sent; a labelled one → the token on the wire', async () => {
    const { core, store } = secrets({ 'prom-token': { data: { token: 'tok-123' } } });
    const sent: Array<string | null> = [];
    const fetchFn = (async (_url: string | URL | Request, init?: RequestInit) => {
      sent.push(new Headers(init?.headers).get('authorization'));
      return new Response(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [] } }), { status: 200, headers: { 'content-type': 'application/json' } });
    }) as typeof fetch;
    const source = new PrometheusWorkloadSource({ credentials: new SecretCredentials(core, { ttlMs: 0 }).resolve, fetch: fetchFn });
    const refused = await source.observe(withToken(), new Date());
    expect(refused).toMatchObject({ ok: false, reason: 'InvalidConfig' });
    if (!refused.ok) expect(refused.message).toMatch(/Prometheus credentials: spec\.workload\.prometheus\.bearerTokenSecretRef\.name: .*not labelled melange\.dev\/prometheus-credentials/);
    expect(sent).toEqual([]);
    const noKey = await source.observe(withToken('prom-token', 'nokey'), new Date());
    expect(noKey).toMatchObject({ ok: false, reason: 'InvalidConfig' });
    store.set('prom-token', { data: { token: 'tok-123' }, labels: LABEL });
    const noKey2 = await source.observe(withToken('prom-token', 'nokey'), new Date());
    if (!noKey2.ok) expect(noKey2.message).toContain('spec.workload.prometheus.bearerTokenSecretRef.key: Secret ml/prom-token key "nokey": no such key (has: token)');
    expect(sent).toEqual([]);
    const o = await source.observe(withToken(), new Date());
    expect(o).toMatchObject({ ok: false, reason: 'NoData' }); // the fake answers empty vectors
    expect(sent.length).toBeGreaterThan(0);
    expect(new Set(sent)).toEqual(new Set(['Bearer tok-123']));
  });
});

describe('planner: missing measurements never move an existing allocation', () => {
  it('a failing measured source with a static fallback plans a new service but holds an allocated one; back-off sets the requeue', async () => {
    const { Planner } = await import('../../../src/controller/planner.js');
    const { createLogger } = await import('../../../src/controller/logger.js');
    const { loadHighsEngine, solve } = await import('../../../src/solver/index.js');
    const { POOLS, PROFILES } = await import('./fixtures.js');
    const engine = await loadHighsEngine();
    const failing = new ObservedWorkloadSource(scripted([{ ok: false, reason: 'QueryFailed', message: 'connection refused' }]));
    const planner = new Planner({ workload: new WorkloadSources({ Prometheus: failing }), solve: async (i) => solve(i, engine) });
    const svc = service({ spec: { workload: { source: 'Prometheus', prometheus: {}, static: { requestsPerSecond: 3, distribution: [[1, 0], [0, 0]] } }, policy: { solveInterval: '10s' } } });
    const refs = { profiles: PROFILES, pools: POOLS };
    const log = createLogger('silent');
    // No static: held, requeued after the back-off delay.
    const bare = prom();
    const held = await planner.plan('ml/chat', bare, refs, { small: 2 }, new Date(), log);
    expect(held.outcome).toMatchObject({ kind: 'held', reason: 'QueryFailed' });
    expect(held.metrics).toMatchObject({ status: 'False', reason: 'QueryFailed' });
    expect(held.nextSolveInMs).toBe(10_000);
    // With a static fallback and an allocation: held too (never act on the fallback over a running allocation).
    const failing2 = new ObservedWorkloadSource(scripted([{ ok: false, reason: 'Stale', message: 'no new samples' }]));
    const p2 = new Planner({ workload: new WorkloadSources({ Prometheus: failing2 }), solve: async (i) => solve(i, engine) });
    const kept = await p2.plan('ml/chat', svc, refs, { small: 2 }, new Date(), log);
    expect(kept.outcome).toMatchObject({ kind: 'held', reason: 'WorkloadUnavailable' });
    expect(kept.metrics).toMatchObject({ status: 'False', reason: 'Stale' });
    // A new service (no allocation yet) is planned from the static fallback.
    const p3 = new Planner({ workload: new WorkloadSources({ Prometheus: new ObservedWorkloadSource(scripted([{ ok: false, reason: 'NoData', message: 'empty' }])) }), solve: async (i) => solve(i, engine) });
    const fresh = await p3.plan('ml/chat', svc, refs, undefined, new Date(), log);
    expect(fresh.outcome.kind).toBe('allocated');
  });
});
