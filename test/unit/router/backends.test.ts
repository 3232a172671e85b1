import { describe, expect, it } from 'vitest';
import { BackendRegistry } from '../../../src/router/backends.js';
import { METRIC, RouterMetrics } from '../../../src/router/metrics.js';

const A = 'http://127.0.0.1:8001';
const B = 'http://127.0.0.1:8002';

/** The in-flight gauge as scraped, series by pool/backend. */
async function scrapeInflight(metrics: RouterMetrics): Promise<Record<string, number>> {
  const m = await metrics.inflight.get();
  return Object.fromEntries(m.values.map((v) => [`${String(v.labels.pool)}/${String(v.labels.backend)}`, v.value]));
}

function wire(reg: BackendRegistry): RouterMetrics {
  const metrics = new RouterMetrics();
  metrics.setBackendLoadReader(function* () {
    for (const b of reg.withInflight()) {
      yield { labels: { namespace: 'ns', service: 'svc', pool: b.pool, backend: b.label }, inflight: b.inflight, pendingPrefillTokens: b.pendingPrefillTokens };
    }
  });
  return metrics;
}

describe('BackendRegistry and the in-flight gauge read at scrape time', () => {
  it('keeps Backend objects (and their counts) across list updates', () => {
    const reg = new BackendRegistry();
    expect(reg.setPool('l4', [A, B])).toEqual([]);
    const first = reg.byPool().get('l4')?.[0];
    if (!first) throw new Error('no backend');
    first.inflight = 3;
    reg.setPool('l4', [B, A]);
    expect(reg.byPool().get('l4')?.find((b) => b.id === A)).toBe(first);
    expect(first.inflight).toBe(3);
  });

  it('a removed backend keeps its series while requests are in flight, and loses it when they end', async () => {
    const reg = new BackendRegistry();
    const metrics = wire(reg);
    reg.setPool('l4', [A, B]);
    const a = reg.byPool().get('l4')?.find((b) => b.id === A);
    if (!a) throw new Error('no backend');
    reg.addInflight(a, +1);
    reg.addInflight(a, +1);
    expect(await scrapeInflight(metrics)).toEqual({ 'l4/127.0.0.1:8001': 2, 'l4/127.0.0.1:8002': 0 });

    const removed = reg.setPool('l4', [B]);
    expect(removed).toEqual([a]);
    expect(a.listed).toBe(false);
    expect(await scrapeInflight(metrics)).toEqual({ 'l4/127.0.0.1:8001': 2, 'l4/127.0.0.1:8002': 0 });
    reg.addInflight(a, -1);
    expect(await scrapeInflight(metrics)).toEqual({ 'l4/127.0.0.1:8001': 1, 'l4/127.0.0.1:8002': 0 });
    reg.addInflight(a, -1);
    expect(await scrapeInflight(metrics)).toEqual({ 'l4/127.0.0.1:8002': 0 });
  });

  it('forgets a removed backend when its last request ends, scraped or not (nothing accumulates unscraped)', () => {
    const reg = new BackendRegistry();
    for (let i = 0; i < 50; i++) {
      reg.setPool('l4', [`http://127.0.0.1:${9000 + i}`]);
      const b = reg.byPool().get('l4')?.[0];
      if (!b) throw new Error('no backend');
      reg.addInflight(b, +1);
      reg.setPool('l4', []); // removed while busy
      reg.addInflight(b, -1);
    }
    expect([...reg.withInflight()]).toEqual([]);
  });

  it('a backend listed again while still busy is the same object, counted once', async () => {
    const reg = new BackendRegistry();
    const metrics = wire(reg);
    reg.setPool('l4', [A]);
    const a = reg.byPool().get('l4')?.[0];
    if (!a) throw new Error('no backend');
    reg.addInflight(a, +1);
    reg.removePool('l4');
    expect(reg.byPool().get('l4')).toBeUndefined();
    reg.setPool('l4', [A]);
    expect(reg.byPool().get('l4')?.[0]).toBe(a);
    expect(a.listed).toBe(true);
    expect(await scrapeInflight(metrics)).toEqual({ 'l4/127.0.0.1:8001': 1 });
    // the same URL in another pool is another backend
    reg.setPool('a100', [A]);
    expect(reg.byPool().get('a100')?.[0]).not.toBe(a);
    expect(await scrapeInflight(metrics)).toEqual({ 'l4/127.0.0.1:8001': 1, 'a100/127.0.0.1:8001': 0 });
  });

  it('pending prefill tokens: counted per backend, shown by their own gauge, never below zero', async () => {
    const reg = new BackendRegistry();
    const metrics = wire(reg);
    reg.setPool('l4', [A, B]);
    const [a, b] = reg.byPool().get('l4') ?? [];
    if (!a || !b) throw new Error('no backends');
    reg.addPendingPrefill(a, 900);
    reg.addPendingPrefill(a, 40);
    reg.addPendingPrefill(b, 7);
    const scrape = async () => Object.fromEntries((await metrics.pendingPrefill.get()).values.map((v) => [String(v.labels.backend), v.value]));
    expect(await scrape()).toEqual({ '127.0.0.1:8001': 940, '127.0.0.1:8002': 7 });
    reg.addPendingPrefill(a, -900);
    reg.addPendingPrefill(b, -50); // more taken off than was put on: clamped, not negative
    expect(await scrape()).toEqual({ '127.0.0.1:8001': 40, '127.0.0.1:8002': 0 });
    expect(b.pendingPrefillTokens).toBe(0);
  });

  it('two backends of a pool under one host:port (different paths) are summed into their series', async () => {
    const reg = new BackendRegistry();
    const metrics = wire(reg);
    reg.setPool('l4', [`${A}/v1`, `${A}/v2`]);
    const [x, y] = reg.byPool().get('l4') ?? [];
    if (!x || !y) throw new Error('no backends');
    x.inflight = 2;
    y.inflight = 5;
    expect(await scrapeInflight(metrics)).toEqual({ 'l4/127.0.0.1:8001': 7 });
    expect((await metrics.registry.getSingleMetricAsString(METRIC.inflight)).split('\n').filter((l) => l.startsWith(METRIC.inflight))).toHaveLength(1);
  });
});
