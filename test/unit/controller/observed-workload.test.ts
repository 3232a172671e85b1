import { describe, expect, it } from 'vitest';
import { ObservedWorkloadSource, WorkloadSources, defaultBackoffFor, type WorkloadObserver } from '../../../src/controller/workload.js';
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
    expect(await src.estimate(svc)).toMatchObject({ ok: true, metrics: { status: 'True' } });
    expect(obs.calls).toBe(3);
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
