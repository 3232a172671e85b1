/**
 * The simulated-time endpoint (src/profiler/simulated.ts): what accuracy.test.ts measures is only worth something
 * if a simulated probe is the HTTP probe minus the wire — the load generator's very arrivals, the emulator's
 * engine and error messages, the profiler's window.
 */
import { describe, expect, it } from 'vitest';
import { contextError, enginePerf, simulate } from '../../../src/emulator/index.js';
import { runLoad } from '../../../src/loadgen/run.js';
import { poissonArrivals, simulatedEndpoint, simulatedProbe, type ProbeContext } from '../../../src/profiler/index.js';

const ctx = (seed = 7): ProbeContext => ({ url: 'http://127.0.0.1:1', model: 'm', api: 'chat', timeScale: 1e6, timing: 'client', seed, arrivalWallS: 1e3, drainWallS: 5 });

describe('simulatedEndpoint', () => {
  it('sends the load generator\'s arrivals for the same seed, to the microsecond', async () => {
    const clock = { t: 0 };
    const fetchFn = (async (input: string | URL | Request) => {
      if (String(input).endsWith('/v1/models')) return new Response(JSON.stringify({ data: [{ id: 'm' }] }));
      return new Response(JSON.stringify({ choices: [{ message: { content: 'x' } }], usage: { prompt_tokens: 100, completion_tokens: 25 } }));
    }) as typeof fetch;
    const report = await runLoad(
      { url: 'http://127.0.0.1:1', rate: 3, requests: 200, durationS: 1e6, timeScale: 1, seed: 11, model: 'm', stream: false, distribution: { name: 'fixed', ranges: [{ probability: 1, inputMin: 100, inputMax: 100, outputMin: 25, outputMax: 25 }] } },
      { fetch: fetchFn, now: () => clock.t, sleep: async (ms) => { await new Promise((r) => setImmediate(r)); clock.t += Math.max(0, ms); } },
    );
    const sent = report.results.map((r) => r.sentAtMs);
    const planned = poissonArrivals(11, 3, 200, 100, 25).map((s) => s * 1000);
    expect(sent).toHaveLength(200);
    sent.forEach((ms, i) => expect(ms).toBeCloseTo(planned[i]!, 3));
  });

  it('answers GET /v1/models as the emulator, labelled simulated; no /metrics (the simulation times itself)', async () => {
    const ep = simulatedEndpoint('a10g', { model: 'my-model' });
    const models = await ep.fetch('http://127.0.0.1:1/v1/models');
    expect(models.headers.get('x-melange-emulator')).toBe('A10G (simulated time)');
    expect(((await models.json()) as { data: Array<{ id: string }> }).data[0]!.id).toBe('my-model');
    expect((await ep.fetch('http://127.0.0.1:1/metrics')).status).toBe(404);
    expect(() => simulatedEndpoint('TPU')).toThrow(/gpu: no emulator model for "TPU"/);
  });

  it('refuses an oversized request with the emulator\'s own 400, and times a request alone like the engine', () => {
    const perf = enginePerf('A10G');
    const refused = simulatedProbe(perf, { kind: 'alone', input: 12000, output: 25, rate: 0, requests: 3 }, ctx());
    expect(refused.record).toMatchObject({ outcome: 'rejected', error: `http_400: ${contextError(perf, 12000, 25)}` });
    const alone = simulatedProbe(perf, { kind: 'alone', input: 100, output: 25, rate: 0, requests: 3 }, ctx());
    const r = simulate(perf, [{ id: 'x', inputTokens: 100, outputTokens: 25, arrival: 0 }]).finished[0]!;
    expect(alone.record.meanLatencyMillis).toBeCloseTo((r.finish - r.arrival) * 1000, 3);
    expect(alone.record.measurement).toMatchObject({ rate: 0, throughput: 0 });
  });

  it('a load probe measures the offered rate of the window and a TPOT that grows with it; an overload falls behind', () => {
    const perf = enginePerf('L4');
    const at = (rate: number) => simulatedProbe(perf, { kind: 'load', input: 100, output: 25, rate, requests: 2000 }, ctx()).record.measurement!;
    const light = at(2);
    const near = at(5.5);
    const over = at(14); // above saturation: one request steals ~86 ms of GPU time
    expect(light.rate / 2).toBeGreaterThan(0.9);
    expect(light.rate / 2).toBeLessThan(1.1);
    expect(light.meanTpotMillis).toBeLessThan(near.meanTpotMillis);
    expect(near.meanTpotMillis).toBeLessThan(over.meanTpotMillis);
    expect(over.throughput * 1.1).toBeLessThan(over.rate); // the queue grows: derive.ts's queue test fails it
  });

  it('cuts arrivals at the probe\'s arrival window, like the load generator, and says the probe was truncated', () => {
    const o = simulatedProbe(enginePerf('L4'), { kind: 'load', input: 100, output: 25, rate: 2, requests: 500 }, { ...ctx(), timeScale: 1, arrivalWallS: 60 });
    expect(o.truncated).toBe(true);
    expect(o.record.requests.sent).toBeLessThan(500);
    expect(o.record.requests.sent).toBe(poissonArrivals(7, 2, 500, 100, 25).filter((t) => t <= 60).length);
  });
});
