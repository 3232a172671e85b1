/**
 * How accurate is `melangectl profile`? Profiles the emulator's engine in SIMULATED time (simulatedEndpoint: the
 * scheduler `melangectl emulate` serves, the load generator's arrivals, measure.ts's window, no sockets) for two
 * GPU types, L4 and A10G, over inputs <= 100, <= 250, <= 12000 x outputs <= 25, <= 50 tokens at 120 ms, and
 * compares with the emulator's TRUE capacity. emulator.test.ts drives real emulator processes over HTTP (the CLI,
 * a killed endpoint and the resume) and checks that HTTP never measures more than this mode does.
 *
 *   - True capacity = the emulator's own capacity function, emulatedMaxThroughput (the paper's definition in
 *     simulated time), at its longest horizon (20,000 requests), averaged over 8 seeds: a steady-state value good
 *     to about 0.3%. It takes 80 s to compute, so the values are pinned (fixtures/true-capacity.ts) and CHECKED
 *     here against the emulator as it is now: 3% below each, one 20,000-request run meets the SLO; 3% above, it
 *     misses. (At its default horizon, 300 requests, the same function reads 2-6% HIGH, a 6-seed mean of it
 *     included: a run that short never reaches the steady state.)
 *   - Probes of 20,000 requests near the answer: the Poisson luck of one arrival sequence is ~2.6% (1 s.d.) at
 *     the default 1,000 requests and ~0.8% at 20,000 (docs/profiling.md has the study over 8 seeds), and the
 *     paper's scenarios have allocations that flip at -3% / +2% of capacity. Deterministic: the simulation is
 *     seeded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseGPUProfile, type GPUProfile } from '../../../src/api/index.js';
import { enginePerf, MAX_SPAN_RATIO, trialAtRate } from '../../../src/emulator/index.js';
import { CANNOT_SERVE_ANNOTATION, LOWER_BOUND_ANNOTATION, deriveMaxThroughput, runProfile, simulatedEndpoint } from '../../../src/profiler/index.js';
import { compareScenarios, describeOutcome, GPUS, type Capacities } from './fixtures/scenarios.js';
import { TRUE_CAPACITY, TRUE_CAPACITY_SLO_MILLIS as SLO } from './fixtures/true-capacity.js';

const BUCKETS = { inputEdges: [100, 250, 12000], outputEdges: [25, 50] };
const PROBE_REQUESTS = 20_000;

const report: string[] = [];
const profiles = {} as Record<(typeof GPUS)[number], GPUProfile>;

beforeAll(async () => {
  for (const gpu of GPUS) {
    const endpoint = simulatedEndpoint(gpu);
    const r = await runProfile(
      { url: 'http://127.0.0.1:1', gpuType: gpu, buckets: BUCKETS, sloTpotMillis: SLO, maxDurationS: 600, sizing: { minRequests: PROBE_REQUESTS, maxRequests: PROBE_REQUESTS } },
      { fetch: endpoint.fetch, probe: endpoint.probe },
    );
    expect(r.status, r.message).toBe('complete');
    profiles[gpu] = r.profile!;
    report.push(`${gpu}: ${r.probesRun} probes in ${r.wallSeconds.toFixed(1)} s`);
  }
}, 120_000);

afterAll(() => console.log(`[profiler accuracy]\n${report.join('\n')}`));

describe('the pinned true capacities', () => {
  it.each(GPUS.flatMap((g) => [100, 250].flatMap((i, a) => [25, 50].map((o, b) => [g, i, o, TRUE_CAPACITY[g][a]![b]!] as const))))(
    'are the emulator\'s: %s %s in / %s out at %s req/s meets the SLO at 0.97x and misses it at 1.03x',
    (gpu, input, output, c) => {
      const trial = (f: number) => trialAtRate(enginePerf(gpu), input, output, c * f, { seed: 1, requests: 20_000, sloHintS: SLO / 1000 });
      const below = trial(0.97);
      const above = trial(1.03);
      expect(below.meanTpotS * 1000).toBeLessThanOrEqual(SLO);
      expect(below.spanRatio).toBeLessThanOrEqual(MAX_SPAN_RATIO);
      expect(above.meanTpotS * 1000).toBeGreaterThan(SLO);
    },
  );
});

describe('profiling the emulator in simulated time', () => {
  it('writes GPUProfiles the schema accepts, labelled as measured on the emulator', () => {
    for (const gpu of GPUS) {
      const v = parseGPUProfile(profiles[gpu]);
      expect(v.ok, JSON.stringify(v)).toBe(true);
      expect(profiles[gpu].metadata.annotations?.['melange.dev/measured-on']).toMatch(/EMULATOR \(\S+ \(simulated time\)/);
      expect(profiles[gpu].metadata.annotations?.[LOWER_BOUND_ANNOTATION]).toBeUndefined();
    }
  });

  it('recovers each type\'s per-bucket capacity within 10% (in fact within 3%)', () => {
    const errors: string[] = [];
    for (const gpu of GPUS) {
      for (const [i, input] of [100, 250].entries()) {
        for (const [j, output] of [25, 50].entries()) {
          const got = profiles[gpu].spec.maxThroughput[i]![j]!;
          const want = TRUE_CAPACITY[gpu][i]![j]!;
          const err = got / want - 1;
          report.push(`${gpu.padEnd(5)} ${String(input).padStart(4)} in/${String(output).padStart(3)} out: profiled ${got.toFixed(3)} req/s, true ${want.toFixed(3)}, error ${(err * 100).toFixed(1)}%`);
          // 3%: the search's tolerance; the Poisson luck of 20,000 requests is well inside it.
          if (!(Math.abs(err) <= 0.03)) errors.push(`${gpu} ${input}x${output}: ${got} vs ${want} (${(err * 100).toFixed(1)}%)`);
        }
      }
    }
    expect(errors).toEqual([]);
  });

  it('records the 12000-token row, longer than both GPUs\' context, as cannot-serve with the reason, not as a measured 0', () => {
    for (const gpu of GPUS) {
      const p = profiles[gpu];
      expect(p.spec.maxThroughput[2]).toEqual([0, 0]);
      const why = JSON.parse(p.metadata.annotations![CANNOT_SERVE_ANNOTATION]!) as Record<string, string>;
      expect(Object.keys(why).sort()).toEqual(['12000x25', '12000x50']);
      expect(why['12000x50']).toMatch(/http_400: This model's maximum context length is 10000 tokens/);
      expect(p.spec.measurements!.filter((m) => m.input === 12000)).toEqual([]);
    }
  });

  it('a tighter SLO re-derived from the measurements stays conservative (never above the 120 ms capacity)', () => {
    for (const gpu of GPUS) {
      const p = profiles[gpu];
      const at100 = deriveMaxThroughput(p.spec.measurements!, p.spec.buckets, 100);
      p.spec.maxThroughput.forEach((row, i) => row.forEach((v, j) => expect(at100[i]![j]!).toBeLessThanOrEqual(v)));
    }
  });
});

describe('solving the paper\'s scenarios with profiled capacities', () => {
  it('gives, in every one of the 18 cases (3 workloads x 1-32 req/s), the same allocation as the true capacities or one within 5% of its cost', async () => {
    const profiled = Object.fromEntries(GPUS.map((g) => [g, profiles[g].spec.maxThroughput.slice(0, 2).map((r) => r.slice(0, 2))])) as Capacities;
    const outcomes = await compareScenarios(TRUE_CAPACITY, profiled);
    report.push(...outcomes.map(describeOutcome), `${outcomes.filter((o) => o.same).length}/${outcomes.length} identical allocations`);
    expect(outcomes).toHaveLength(18);
    expect(outcomes.filter((o) => o.miss).map(describeOutcome)).toEqual([]);
  });
});
