import { describe, expect, it } from 'vitest';
import { builtinCatalog } from '../../../src/api/index.js';
import { instanceFromService } from '../../../src/solver/from-api.js';
import { PrometheusError, type PrometheusClientOptions, type PrometheusQuerier, type QueryOptions, type Sample, type VectorResult } from '../../../src/workload/prometheus-client.js';
import { routerQueries, vllmQueries } from '../../../src/workload/queries.js';
import { SecretRefError } from '../../../src/workload/secrets.js';
import {
  PrometheusWorkloadSource,
  SpecWorkloadSource,
  StaticWorkloadSource,
  metricsAvailableCondition,
  toWorkloadOverride,
  type PrometheusWorkloadSourceOptions,
  type WorkloadObservation,
} from '../../../src/workload/source.js';
import { makeService, matrixSum } from './fixtures.js';

const NOW = new Date('2026-11-28T10:00:00Z');
const T = NOW.getTime() / 1000;
const s = (labels: Record<string, string>, value: number): Sample => ({ labels, value, timestamp: T });

type Answer = Sample[] | Error;

/** Answers queries by their exact text; unknown queries get an empty vector. Records every call. */
class FakePrometheus implements PrometheusQuerier {
  readonly calls: { query: string; time: Date | undefined }[] = [];
  constructor(private readonly answers: Map<string, Answer> = new Map()) {}
  set(query: { text: string }, a: Answer): this {
    this.answers.set(query.text, a);
    return this;
  }
  async queryVector(query: string, opts: QueryOptions = {}): Promise<VectorResult> {
    this.calls.push({ query, time: opts.time });
    const a = this.answers.get(query) ?? [];
    if (a instanceof Error) throw a;
    return { resultType: 'vector', samples: a, warnings: [] };
  }
}

const routerSel = [
  { name: 'namespace', value: 'team-a' },
  { name: 'service', value: 'chat' },
];
const vllmSel = [{ name: 'model_name', value: 'meta-llama/Llama-2-7b-hf' }];
const rq = routerQueries(routerSel, 300_000, 60_000);
const vq = vllmQueries(vllmSel, 300_000, 60_000);

function withRouter(p: FakePrometheus, rate = 1): FakePrometheus {
  return p
    .set(rq.bucketRates, [s({ input_le: '100', output_le: '100' }, 3 * rate), s({ input_le: '4000', output_le: '500' }, rate)])
    .set(rq.recentRate, [s({}, 4 * rate)])
    .set(rq.lastSeen, [s({}, T - 2)]);
}

const vllmHist = (cum: number[], total: number, les: number[]) => [...les.map((le, i) => s({ le: String(le) }, cum[i] ?? 0)), s({ le: '+Inf' }, total)];
function withVllm(p: FakePrometheus): FakePrometheus {
  return p
    .set(vq.promptBuckets, vllmHist([5, 5, 10], 10, [100, 1000, 5000]))
    .set(vq.generationBuckets, vllmHist([8, 10], 10, [100, 500]))
    .set(vq.successRate, [s({}, 2)])
    .set(vq.recentSuccessRate, [s({}, 2)])
    .set(vq.lastSeen, [s({}, T - 1)]);
}

function source(fake: FakePrometheus, over: PrometheusWorkloadSourceOptions = {}) {
  const created: PrometheusClientOptions[] = [];
  const src = new PrometheusWorkloadSource({
    createClient: (opts) => {
      created.push(opts);
      return fake;
    },
    ...over,
  });
  return { src, created };
}

const expectOk = (o: WorkloadObservation) => {
  if (!o.ok) throw new Error(`expected ok, got ${o.reason}: ${o.message}`);
  return o;
};

describe('PrometheusWorkloadSource', () => {
  it('uses the router metrics: joint matrix, robust rate, window; all queries at the caller\'s time', async () => {
    const fake = withRouter(new FakePrometheus());
    const { src, created } = source(fake);
    const o = expectOk(await src.observe(makeService(), NOW));
    expect(o.source).toBe('router');
    expect(o.sizeAware).toBe(true);
    expect(o.window).toBe('5m');
    expect(o.requestsPerSecond).toBe(4);
    expect(o.distribution).toEqual([[0.75, 0], [0, 0], [0, 0.25]]);
    expect(o.details).toMatchObject({ windowMeanRate: 4, recentRate: 4, lastSampleAgeMs: 2000 });
    expect(fake.calls.map((c) => c.query).sort()).toEqual([rq.bucketRates.text, rq.recentRate.text, rq.lastSeen.text].sort());
    expect(fake.calls.every((c) => c.time?.getTime() === NOW.getTime())).toBe(true);
    expect(created[0]?.url).toBe('http://127.0.0.1:9');
  });

  it('falls back to vLLM histograms when no router series exist: sizeAware false, independence warning', async () => {
    const fake = withVllm(new FakePrometheus());
    const o = expectOk(await source(fake).src.observe(makeService(), NOW));
    expect(o.source).toBe('vllm-histograms');
    expect(o.sizeAware).toBe(false);
    expect(o.requestsPerSecond).toBe(2);
    expect(matrixSum(o.distribution)).toBeCloseTo(1, 12);
    // input [100, 1000, 4000] ← C(100)=5, C(1000)=5; output [100, 500] ← C(100)=8
    expect(o.distribution[0]?.[0]).toBeCloseTo(0.5 * 0.8, 12);
    expect(o.distribution[2]?.[1]).toBeCloseTo(0.5 * 0.2, 12);
    expect(o.warnings[0]).toContain('no router series melange_router_requests_total{namespace="team-a",service="chat"}');
    expect(o.warnings.join()).toContain('independent');
  });

  it('does not fall back when the router stopped reporting mid-window: Stale', async () => {
    const fake = withVllm(withRouter(new FakePrometheus())).set(rq.lastSeen, []);
    const o = await source(fake).src.observe(makeService(), NOW);
    expect(o).toMatchObject({ ok: false, reason: 'Stale', source: 'router' });
    expect(fake.calls.some((c) => c.query.includes('vllm:'))).toBe(false);
  });

  it('goes straight to vLLM when the router is disabled (stale router data is ignored)', async () => {
    const fake = withVllm(withRouter(new FakePrometheus()));
    const o = expectOk(await source(fake).src.observe(makeService({ routerEnabled: false }), NOW));
    expect(o.source).toBe('vllm-histograms');
    expect(fake.calls.some((c) => c.query.includes('melange_router'))).toBe(false);
    expect(o.warnings.join()).not.toContain('no router series');
  });

  it('no series at all → NoData naming both selectors', async () => {
    const o = await source(new FakePrometheus()).src.observe(makeService(), NOW);
    expect(o).toMatchObject({ ok: false, reason: 'NoData' });
    if (!o.ok) {
      expect(o.message).toContain('melange_router_requests_total{namespace="team-a",service="chat"}');
      expect(o.message).toContain('vllm:request_prompt_tokens_count{model_name="meta-llama/Llama-2-7b-hf"}');
    }
  });

  it('zero traffic with current series is ok (rate 0): the controller plans the minimum', async () => {
    const fake = new FakePrometheus()
      .set(rq.bucketRates, [s({ input_le: '100', output_le: '100' }, 0)])
      .set(rq.recentRate, [s({}, 0)])
      .set(rq.lastSeen, [s({}, T - 1)]);
    const o = expectOk(await source(fake).src.observe(makeService(), NOW));
    expect(o.requestsPerSecond).toBe(0);
    expect(matrixSum(o.distribution)).toBe(0);
  });

  it('a failing query → QueryFailed with the Prometheus error kind and query', async () => {
    const fake = withRouter(new FakePrometheus()).set(rq.recentRate, new PrometheusError('timeout', 'query timed out after 10 ms'));
    const o = await source(fake).src.observe(makeService(), NOW);
    expect(o).toMatchObject({ ok: false, reason: 'QueryFailed' });
    if (!o.ok) {
      expect(o.message).toContain('timeout: query timed out');
      expect(o.message).toContain(rq.recentRate.text);
    }
  });

  it('NaN from Prometheus → InvalidData, never a plan', async () => {
    const fake = withRouter(new FakePrometheus()).set(rq.recentRate, [s({}, Number.NaN)]);
    expect(await source(fake).src.observe(makeService(), NOW)).toMatchObject({ ok: false, reason: 'InvalidData' });
  });

  it('configuration problems → InvalidConfig', async () => {
    const fake = new FakePrometheus();
    const noUrl = makeService({ workload: { source: 'Prometheus', prometheus: { window: '5m' } } });
    expect(await new PrometheusWorkloadSource({ createClient: () => fake }).observe(noUrl, NOW)).toMatchObject({ ok: false, reason: 'InvalidConfig' });
    // The operator-wide default URL applies when the spec has none.
    const { src, created } = source(withRouter(fake), { defaultUrl: 'http://127.0.0.1:19090' });
    expect((await src.observe(noUrl, NOW)).ok).toBe(true);
    expect(created[0]?.url).toBe('http://127.0.0.1:19090');

    const badCreds = source(fake, { credentials: async () => Promise.reject(new Error('Secret team-a/prom key "token": Secret not found')) });
    const o = await badCreds.src.observe(makeService(), NOW);
    expect(o).toMatchObject({ ok: false, reason: 'InvalidConfig' });
    if (!o.ok) expect(o.message).toContain('Secret not found');
    // The API server failing to answer is transient (retried with back-off), not the user's configuration.
    const unavailable = source(fake, {
      credentials: async () => Promise.reject(new SecretRefError('ApiError', 'team-a', { name: 'prom', key: 'token' }, 'cannot read it: HTTP 503')),
    });
    expect(await unavailable.src.observe(makeService(), NOW)).toMatchObject({ ok: false, reason: 'QueryFailed', message: expect.stringContaining('HTTP 503') });

    const badMatchers = source(fake, { vllmMatchers: () => [{ name: 'bad-label', value: 'x' }] });
    expect(await badMatchers.src.observe(makeService({ routerEnabled: false }), NOW)).toMatchObject({ ok: false, reason: 'InvalidConfig' });

    // The real client validates the URL (no credentials in it).
    const real = new PrometheusWorkloadSource();
    const withCreds = makeService({ workload: { source: 'Prometheus', prometheus: { url: 'http://u:p@127.0.0.1:9' } } });
    expect(await real.observe(withCreds, NOW)).toMatchObject({ ok: false, reason: 'InvalidConfig' });
  });

  it('passes resolved credentials to the client', async () => {
    const { src, created } = source(withRouter(new FakePrometheus()), { credentials: async () => ({ bearerToken: 't', caPem: 'pem' }) });
    await src.observe(makeService(), NOW);
    expect(created[0]).toMatchObject({ bearerToken: 't', caPem: 'pem' });
  });

  it('uses the spec window and the configured matchers', async () => {
    const svc = makeService({ workload: { source: 'Prometheus', prometheus: { url: 'http://127.0.0.1:9', window: '10m' } } });
    const matchers = [{ name: 'exported_service', value: 'chat' }];
    const q = routerQueries(matchers, 600_000, 30_000);
    const fake = new FakePrometheus()
      .set(q.bucketRates, [s({ input_le: '100', output_le: '100' }, 1)])
      .set(q.recentRate, [s({}, 1)])
      .set(q.lastSeen, [s({}, T)]);
    const o = expectOk(await source(fake, { routerMatchers: () => matchers, shortWindow: '30s', minRequestsForDistribution: 0 }).src.observe(svc, NOW));
    expect(o.window).toBe('10m');
    expect(o.warnings).toEqual([]);
  });

  it('the observation feeds instanceFromService (rate and distribution replace the static workload)', async () => {
    const cat = builtinCatalog();
    // The catalog's profiles use the paper's 10 × 6 buckets.
    const svc = makeService({ inputEdges: [25, 100, 250, 500, 1000, 2000, 4000, 8000, 12000, 16000], outputEdges: [25, 100, 250, 500, 1000, 2000] });
    const fake = new FakePrometheus()
      .set(rq.bucketRates, [s({ input_le: '100', output_le: '250' }, 3), s({ input_le: '2000', output_le: '500' }, 1)])
      .set(rq.recentRate, [s({}, 4)])
      .set(rq.lastSeen, [s({}, T)]);
    const o = expectOk(await source(fake).src.observe(svc, NOW));
    const inst = instanceFromService(svc, { profiles: cat.profiles, pools: cat.pools }, toWorkloadOverride(o));
    expect(inst.ok).toBe(true);
    if (inst.ok) {
      expect(inst.value.input.workload).toMatchObject({ totalRate: 4 });
      expect(inst.value.input.headroomPercent).toBe(10); // headroom stays the solver's job
    }
  });
});

describe('StaticWorkloadSource / SpecWorkloadSource', () => {
  const staticSvc = makeService({
    workload: { source: 'Static', static: { requestsPerSecond: 8, distribution: [[1, 1], [2, 0], [0, 4]] } },
  });

  it('normalises the declared weights', async () => {
    const o = expectOk(await new StaticWorkloadSource().observe(staticSvc));
    expect(o).toMatchObject({ source: 'static', sizeAware: true, requestsPerSecond: 8 });
    expect(o.distribution).toEqual([[0.125, 0.125], [0.25, 0], [0, 0.5]]);
    expect(o.window).toBeUndefined();
  });

  it('Static without spec.workload.static is InvalidConfig', async () => {
    expect(await new StaticWorkloadSource().observe(makeService())).toMatchObject({ ok: false, reason: 'InvalidConfig' });
  });

  it('dispatches on spec.workload.source', async () => {
    const prom = { observe: async () => ({ ok: false, reason: 'NoData', message: 'fake' }) as const };
    const spec = new SpecWorkloadSource(prom);
    expect((await spec.observe(staticSvc, NOW)).ok).toBe(true);
    expect(await spec.observe(makeService(), NOW)).toMatchObject({ ok: false, reason: 'NoData' });
  });
});

describe('metricsAvailableCondition', () => {
  it('False with the failure reason; True with the source as reason', () => {
    expect(metricsAvailableCondition({ ok: false, reason: 'Stale', message: 'old' }, 3)).toEqual({
      type: 'MetricsAvailable',
      status: 'False',
      reason: 'Stale',
      message: 'old',
      observedGeneration: 3,
    });
    const c = metricsAvailableCondition({
      ok: true,
      requestsPerSecond: 4.123456,
      distribution: [[1]],
      window: '5m',
      source: 'vllm-histograms',
      sizeAware: false,
      warnings: ['w1'],
    });
    expect(c).toMatchObject({ status: 'True', reason: 'VllmHistograms' });
    expect(c.message).toBe('4.123 req/s over 5m from vLLM histograms (not size-aware); w1');
  });
});
