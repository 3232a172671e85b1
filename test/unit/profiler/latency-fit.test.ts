/**
 * The latency model a GPUProfile carries (spec.latency, src/api/latency.ts), fitted by the profiler to its alone
 * probes (src/profiler/latency-fit.ts): recovers the emulator's own cost model from the paper's bucket edges, keeps
 * every coefficient >= 0 at the true constrained optimum, refuses points that cannot determine it, and ends up in
 * the GPUProfile that `melangectl profile` writes.
 */
import { describe, expect, it } from 'vitest';
import { aloneLatencyMillis, PAPER_BUCKETS, parseGPUProfile, type LatencyModel } from '../../../src/api/index.js';
import { contextError } from '../../../src/emulator/engine.js';
import { enginePerf, GPU_TYPES, type GpuType } from '../../../src/emulator/gpu-models.js';
import { simulate } from '../../../src/emulator/simulate.js';
import { fitLatencyModel, formatLatencyFit, latencyFitError, type LatencyPoint } from '../../../src/profiler/latency-fit.js';
import { modelEndpoint } from '../../../src/profiler/model.js';
import { alonePoints, buildProfile } from '../../../src/profiler/output.js';
import type { ProbeContext, ProbeOutcome, ProbeSpec } from '../../../src/profiler/probe.js';
import { runProfile, type ProfileOptions } from '../../../src/profiler/run.js';

/** One request alone on an idle emulated engine: its end-to-end latency (ms). */
function emulatedAlone(gpu: GpuType, input: number, output: number): number {
  const r = simulate(enginePerf(gpu), [{ id: '0', inputTokens: input, outputTokens: output, arrival: 0 }]).finished[0]!;
  return (r.finish - r.arrival) * 1000;
}

/** The alone probes of the paper's grid on an emulated GPU: every bucket it accepts, at its upper edges. */
function paperPoints(gpu: GpuType): LatencyPoint[] {
  const out: LatencyPoint[] = [];
  for (const input of PAPER_BUCKETS.inputEdges) {
    for (const output of PAPER_BUCKETS.outputEdges) {
      if (!contextError(enginePerf(gpu), input, output)) out.push({ input, output, latencyMillis: emulatedAlone(gpu, input, output) });
    }
  }
  return out;
}

const relErr = (predicted: number, actual: number) => Math.abs(predicted - actual) / actual;
const sse = (m: LatencyModel, ps: readonly LatencyPoint[]) => ps.reduce((s, p) => s + ((aloneLatencyMillis(m, p.input, p.output) - p.latencyMillis) / p.latencyMillis) ** 2, 0);
const KEYS = ['overheadMillis', 'prefillMillisPerToken', 'decodeStepMillis', 'decodeMillisPerContextToken'] as const;

describe('fitLatencyModel: recovery of a known cost model', () => {
  it("recovers the emulated A10G's constants from the paper's bucket edges and predicts a held-out short answer", () => {
    const points = paperPoints('A10G');
    expect(points.length).toBe(48); // the 12000 and 16000 rows exceed max_model_len
    const m = fitLatencyModel(points)!;
    expect(m).toBeDefined();
    const perf = enginePerf('A10G');
    // The engine's first step carries the request overhead and the prefill; each of the other output-1 steps costs
    // baseStep + perContextToken x its context. That is the model's shape exactly.
    expect(relErr(m.overheadMillis, perf.requestOverheadS * 1000)).toBeLessThan(0.01);
    expect(relErr(m.prefillMillisPerToken, perf.prefillPerTokenS * 1000)).toBeLessThan(0.01);
    expect(relErr(m.decodeStepMillis, perf.baseStepS * 1000)).toBeLessThan(0.01);
    expect(relErr(m.decodeMillisPerContextToken, perf.perContextTokenS * 1000)).toBeLessThan(0.01);
    const e = latencyFitError(m, points);
    expect(e.max).toBeLessThan(0.01);
    expect(e.mean).toBeLessThanOrEqual(e.max);
    // The case the router's SLO guard exists for: a 3-token answer to a 900-token prompt, not a probed size.
    expect(relErr(aloneLatencyMillis(m, 900, 3), emulatedAlone('A10G', 900, 3))).toBeLessThan(0.02);
    expect(relErr(aloneLatencyMillis(m, 100, 1), emulatedAlone('A10G', 100, 1))).toBeLessThan(0.02);
  });

  it('fits every emulated GPU type within 1% (chunked prefill of 16000-token prompts included)', () => {
    for (const gpu of GPU_TYPES) {
      const points = paperPoints(gpu);
      const m = fitLatencyModel(points)!;
      expect(m, gpu).toBeDefined();
      expect(latencyFitError(m, points).max, gpu).toBeLessThan(0.01);
      expect(relErr(aloneLatencyMillis(m, 900, 3), emulatedAlone(gpu, 900, 3)), gpu).toBeLessThan(0.02);
    }
  });

  it('weighs relative error: a short request is fitted as well as a long one, not drowned by it', () => {
    // Truth: 50 ms + 20 ms per output token; the long requests carry +-10% noise worth seconds each.
    const truth = (o: number) => 50 + 20 * o;
    const points: LatencyPoint[] = [];
    for (const input of [100, 1000]) {
      points.push({ input, output: 2, latencyMillis: truth(2) }, { input, output: 5, latencyMillis: truth(5) });
      points.push({ input, output: 2000, latencyMillis: truth(2000) * 1.1 }, { input, output: 1900, latencyMillis: truth(1900) * 0.9 });
    }
    const m = fitLatencyModel(points)!;
    for (const o of [2, 5]) expect(relErr(aloneLatencyMillis(m, 100, o), truth(o))).toBeLessThan(0.05);
  });
});

describe('fitLatencyModel: constraints and refusals', () => {
  // Latency FALLING with the prompt: the unconstrained fit is exact with prefill = -0.05 ms/token.
  const falling: LatencyPoint[] = [];
  for (const input of [100, 1000, 2000]) for (const output of [10, 100]) falling.push({ input, output, latencyMillis: 200 - 0.05 * input + 20 * output });

  it('never returns a negative coefficient: the one the data pushes below 0 is 0', () => {
    const m = fitLatencyModel(falling)!;
    expect(m).toBeDefined();
    expect(m.prefillMillisPerToken).toBe(0);
    for (const k of KEYS) expect(m[k], k).toBeGreaterThanOrEqual(0);
    expect(m.decodeStepMillis).toBeGreaterThan(0);
  });

  it('is the constrained optimum: no feasible nudge of any coefficient lowers the relative squared error', () => {
    const m = fitLatencyModel(falling)!;
    const best = sse(m, falling);
    for (const k of KEYS) {
      for (const f of [1e-3, -1e-3]) {
        const step = m[k] === 0 ? (f > 0 ? 1e-4 : 0) : m[k] * f;
        if (step === 0) continue;
        expect(sse({ ...m, [k]: m[k] + step }, falling), `${k} ${f}`).toBeGreaterThanOrEqual(best * (1 - 1e-9));
      }
    }
  });

  it('refuses fewer than 2 usable points, ignoring non-finite and non-positive latencies', () => {
    expect(fitLatencyModel([])).toBeUndefined();
    expect(fitLatencyModel([{ input: 100, output: 10, latencyMillis: 300 }])).toBeUndefined();
    const junk = [NaN, 0, -5, Infinity].map((latencyMillis, k) => ({ input: 100 * (k + 1), output: 10 * (k + 1), latencyMillis }));
    expect(fitLatencyModel([...junk, { input: 100, output: 10, latencyMillis: 300 }])).toBeUndefined();
  });

  it('refuses points that cannot tell the terms apart, and fits once they can', () => {
    const at = (input: number, output: number) => ({ input, output, latencyMillis: 30 + 0.4 * input + output * (30 + 0.002 * (input + output / 2)) });
    // One prompt length: overhead and prefill are the same column.
    const oneInput = [10, 50, 100, 500].map((o) => at(500, o));
    expect(fitLatencyModel(oneInput)).toBeUndefined();
    // One output length: the decode terms are combinations of the others.
    expect(fitLatencyModel([100, 500, 1000, 4000].map((i) => at(i, 100)))).toBeUndefined();
    // Two prompt lengths x two output lengths separate all four.
    const grid = [at(100, 10), at(100, 500), at(2000, 10), at(2000, 500)];
    const m = fitLatencyModel(grid)!;
    expect(m).toBeDefined();
    expect(latencyFitError(m, grid).max).toBeLessThan(1e-9);
    expect(m.overheadMillis).toBeCloseTo(30, 6);
  });

  it('latencyFitError and formatLatencyFit report the relative errors', () => {
    const m = { overheadMillis: 10, prefillMillisPerToken: 0, decodeStepMillis: 0, decodeMillisPerContextToken: 0 };
    const ps = [{ input: 1, output: 1, latencyMillis: 10 }, { input: 1, output: 1, latencyMillis: 20 }];
    expect(latencyFitError(m, ps)).toEqual({ max: 0.5, mean: 0.25 });
    expect(formatLatencyFit(m, ps)).toMatch(/10 ms \+ 0 ms × input .* 2 alone probes: max error 50\.0%, mean 25\.0%/);
  });
});

describe('buildProfile: spec.latency', () => {
  // A GPU whose one request alone takes exactly TRUTH, and TPOT = alone / (1 - rate/c) under load; 10000-token context.
  const TRUTH: LatencyModel = { overheadMillis: 40, prefillMillisPerToken: 0.3, decodeStepMillis: 25, decodeMillisPerContextToken: 0.002 };
  const gpu = modelEndpoint(
    'fake GPU',
    (input, output, rate) => {
      const alone = aloneLatencyMillis(TRUTH, input, output) / output;
      const c = 4000 / (input + 4 * output);
      return rate >= c ? { meanTpotMillis: 1e5, throughput: c } : { meanTpotMillis: alone / (1 - rate / c), throughput: rate };
    },
    (input, output) => (input + output > 10_000 ? "http_400: This model's maximum context length is 10000 tokens" : undefined),
  );
  const probe = async (spec: ProbeSpec, _ctx: ProbeContext): Promise<ProbeOutcome> => ({
    record: spec.kind === 'alone' ? gpu.alone(spec.input, spec.output) : gpu.load(spec.input, spec.output, spec.rate, spec.requests),
    truncated: false,
  });
  const discoveryFetch = (async (input: string | URL | Request) =>
    String(input).endsWith('/v1/models') ? new Response(JSON.stringify({ data: [{ id: 'fake-model' }] }), { status: 200 }) : new Response('no', { status: 404 })) as typeof fetch;
  const options = (buckets: ProfileOptions['buckets']): ProfileOptions => ({ url: 'http://127.0.0.1:9', gpuType: 'FAKE', buckets, sloTpotMillis: 100, maxDurationS: 1e9, timing: 'client' });

  it('is fitted to every measured alone probe (cannot-serve ones included, refused ones not), validates, and reproduces them', async () => {
    // 8000x25 alone misses the SLO (cannot-serve, but its alone probe was measured); the 12000 row is refused.
    const r = await runProfile(options({ inputEdges: [100, 1000, 8000, 12000], outputEdges: [25, 200, 1000] }), { fetch: discoveryFetch, probe });
    expect(r.status).toBe('complete');
    const p = r.profile!;
    const v = parseGPUProfile(p);
    expect(v.ok, JSON.stringify(v)).toBe(true);
    expect(p.spec.maxThroughput[2]![0]).toBe(0);
    const points = alonePoints(r.state);
    expect(points.map((q) => `${q.input}x${q.output}`)).toEqual(['100x25', '100x200', '100x1000', '1000x25', '1000x200', '1000x1000', '8000x25', '8000x200', '8000x1000']);
    const m = p.spec.latency!;
    expect(m).toBeDefined();
    for (const k of KEYS) {
      expect(Number(m[k].toPrecision(4)), `${k} has 4 significant digits`).toBe(m[k]);
      expect(relErr(m[k], TRUTH[k]), k).toBeLessThan(1e-3);
    }
    for (const q of points) expect(relErr(aloneLatencyMillis(m, q.input, q.output), q.latencyMillis), `${q.input}x${q.output}`).toBeLessThan(1e-3);
    // The same model after a YAML-ish round trip through the API schema.
    if (v.ok) expect(v.value.spec.latency).toEqual(m);
  });

  it('is left out when the alone probes cannot determine it (one prompt length), and the profile still validates', async () => {
    const r = await runProfile(options({ inputEdges: [1000], outputEdges: [25, 200, 1000] }), { fetch: discoveryFetch, probe });
    expect(r.status).toBe('complete');
    expect(alonePoints(r.state)).toHaveLength(3);
    expect(r.profile!.spec).not.toHaveProperty('latency');
    expect(parseGPUProfile(r.profile!).ok).toBe(true);
    expect(buildProfile(r.state).spec.latency).toBeUndefined();
  });
});
