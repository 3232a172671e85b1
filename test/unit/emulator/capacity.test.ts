import { describe, expect, it } from 'vitest';
import { builtinCatalog, PAPER_BUCKETS } from '../../../src/api/catalog.js';
import { aloneLatencyMillis } from '../../../src/api/latency.js';
import { analyticMaxThroughput, enginePerf, GPU_MODELS, GPU_TYPES, type GpuType } from '../../../src/emulator/gpu-models.js';
import { emulatedMaxThroughput, paperTpot, simulate } from '../../../src/emulator/simulate.js';

const catalog = builtinCatalog();
const catalogValue = (gpu: GpuType, input: number, output: number): number => {
  const p = catalog.profiles.find((x) => x.spec.gpuType === gpu)!;
  const i = PAPER_BUCKETS.inputEdges.indexOf(input);
  const j = PAPER_BUCKETS.outputEdges.indexOf(output);
  return p.spec.maxThroughput[i]![j]!;
};
const opts = { iterations: 12 };
const cap = (gpu: GpuType, input: number, output: number, slo = 120) => emulatedMaxThroughput(gpu, input, output, slo, opts);
const perDollar = (gpu: GpuType, input: number, output: number) => cap(gpu, input, output) / Number(GPU_MODELS[gpu].price);

describe('GPU models vs the illustrative catalog', () => {
  it('share the catalog\'s constants: the closed form reproduces every catalog number exactly', () => {
    for (const gpu of GPU_TYPES) {
      const profile = catalog.profiles.find((p) => p.spec.gpuType === gpu);
      expect(profile, gpu).toBeDefined();
      PAPER_BUCKETS.inputEdges.forEach((input, i) =>
        PAPER_BUCKETS.outputEdges.forEach((output, j) => {
          expect(analyticMaxThroughput(gpu, input, output, 120), `${gpu} ${input}/${output}`).toBe(profile!.spec.maxThroughput[i]![j]);
        }),
      );
    }
  });

  it("the catalog's latency models predict one request alone on the emulator's engine within 1.5% at every bucket edge", () => {
    for (const gpu of GPU_TYPES) {
      const model = catalog.profiles.find((p) => p.spec.gpuType === gpu)!.spec.latency;
      expect(model, gpu).toBeDefined();
      const perf = enginePerf(gpu);
      let checked = 0;
      for (const input of PAPER_BUCKETS.inputEdges) {
        for (const output of PAPER_BUCKETS.outputEdges) {
          if (input + output > perf.maxModelLen) continue;
          const alone = simulate(perf, [{ id: 'x', inputTokens: input, outputTokens: output, arrival: 0 }]).finished[0]!;
          const measuredMs = (alone.finish - alone.arrival) * 1000;
          expect(Math.abs(aloneLatencyMillis(model!, input, output) / measuredMs - 1), `${gpu} ${input}/${output}: ${measuredMs} ms`).toBeLessThan(0.015);
          checked++;
        }
      }
      expect(checked, gpu).toBeGreaterThanOrEqual(48);
    }
  });

  it('prices match the catalog pools', () => {
    for (const gpu of GPU_TYPES) {
      expect(catalog.pools.find((p) => p.spec.gpuType === gpu)!.spec.costPerGPUHour).toBe(GPU_MODELS[gpu].price);
    }
  });

  // Buckets where the simulated emulator and the catalog's mean-field model should agree (docs/emulator.md has
  // the full table: long-prompt/short-output and KV-bound buckets deviate, for reasons explained there).
  const agree: Array<[GpuType, number, number]> = [
    ['L4', 100, 100],
    ['L4', 500, 250],
    ['A10G', 250, 250],
    ['A10G', 1000, 100],
    ['A100-80GB', 25, 25],
    ['A100-80GB', 1000, 500],
    ['H100-80GB', 2000, 250],
    ['H100-80GB', 4000, 100],
  ];
  it.each(agree)('simulated capacity of %s at %i in / %i out is 0.75x-1.1x the catalog value', (gpu, input, output) => {
    const c = catalogValue(gpu, input, output);
    const e = cap(gpu, input, output);
    expect(e / c).toBeGreaterThan(0.75);
    expect(e / c).toBeLessThan(1.1);
  });
});

describe('the paper\'s qualitative facts hold in the emulator', () => {
  it('L4 and A10G cannot serve 12k-token prompts at all (context), big GPUs can', () => {
    expect(cap('L4', 12000, 100)).toBe(0);
    expect(cap('A10G', 12000, 100)).toBe(0);
    expect(enginePerf('A10G').maxModelLen).toBeLessThan(12000);
    expect(enginePerf('A100-80GB').maxModelLen).toBeGreaterThanOrEqual(16000 + 2000);
  });

  it('bigger GPUs serve more long requests per instance (H100 > A100 > A10G > L4)', () => {
    const c = (['L4', 'A10G', 'A100-80GB', 'H100-80GB'] as const).map((g) => cap(g, 4000, 250));
    expect(c[0]).toBeGreaterThan(0);
    for (let i = 1; i < c.length; i++) expect(c[i]).toBeGreaterThan(c[i - 1]!);
  });

  it('cheap GPUs are more cost-efficient on short requests, big ones on long requests', () => {
    // short: 100 in / 100 out
    const shortCheap = Math.max(perDollar('L4', 100, 100), perDollar('A10G', 100, 100));
    const shortBig = Math.max(perDollar('A100-80GB', 100, 100), perDollar('H100-80GB', 100, 100));
    expect(shortCheap).toBeGreaterThan(shortBig);
    // long: 4000 in / 500 out
    const longCheap = Math.max(perDollar('L4', 4000, 500), perDollar('A10G', 4000, 500));
    const longBig = Math.max(perDollar('A100-80GB', 4000, 500), perDollar('H100-80GB', 4000, 500));
    expect(longBig).toBeGreaterThan(longCheap);
  });

  it('a tight SLO favours the big GPU more than a loose one (A100 / A10G capacity ratio grows)', () => {
    const ratio = (slo: number) => emulatedMaxThroughput('A100-80GB', 1000, 250, slo, opts) / emulatedMaxThroughput('A10G', 1000, 250, slo, opts);
    expect(ratio(40)).toBeGreaterThan(ratio(120));
  });

  it('around 1k in / 500 out at 120 ms, A100 carries several times what A10G does (paper: ≈ 5x)', () => {
    const r = cap('A100-80GB', 1000, 500) / cap('A10G', 1000, 500);
    expect(r).toBeGreaterThan(3.5);
    expect(r).toBeLessThan(7);
  });

  it('an unloaded request\'s TPOT is about one decode step (weights read once per step)', () => {
    for (const gpu of GPU_TYPES) {
      const perf = enginePerf(gpu);
      const { finished } = simulate(perf, [{ id: 'x', inputTokens: 25, outputTokens: 200, arrival: 0 }]);
      const tpot = paperTpot(finished[0]!);
      expect(tpot).toBeGreaterThanOrEqual(perf.baseStepS);
      expect(tpot).toBeLessThan(perf.baseStepS * 1.3);
    }
  });
});
