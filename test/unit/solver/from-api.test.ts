/**
 * instanceFromService and the SLO a profile was measured at: the same SLO uses spec.maxThroughput as is; a profile
 * with raw measurements is re-derived for any other SLO (src/solver/capacity-from-measurements.ts); one without measurements is
 * accepted only if it was measured under a tighter SLO (conservative), never a looser one.
 */
import { describe, expect, it } from 'vitest';
import { parseGPUPool, parseGPUProfile, parseLLMService, type GPUProfile, type Measurement } from '../../../src/api/index.js';
import { deriveMaxThroughput } from '../../../src/solver/capacity-from-measurements.js';
import { instanceFromService, throughputAtSlo } from '../../../src/solver/from-api.js';

const BUCKETS = { inputEdges: [100, 1000], outputEdges: [100] };

function ok<T>(r: { ok: true; value: T } | { ok: false; errors: unknown }): T {
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
}

const pool = (name: string, gpuType: string) =>
  ok(parseGPUPool({ apiVersion: 'melange.dev/v1alpha1', kind: 'GPUPool', metadata: { name }, spec: { gpuType, costPerGPUHour: '1.00', gpusPerNode: 1 } }));

const profile = (tpot: number, maxThroughput: number[][], measurements?: Measurement[]): GPUProfile =>
  ok(parseGPUProfile({
    apiVersion: 'melange.dev/v1alpha1',
    kind: 'GPUProfile',
    metadata: { name: 'p' },
    spec: { model: 'm', gpuType: 'A10G', slo: { tpotMillis: tpot }, buckets: BUCKETS, maxThroughput, ...(measurements ? { measurements } : {}) },
  }));

const service = (tpot: number) =>
  ok(parseLLMService({
    apiVersion: 'melange.dev/v1alpha1',
    kind: 'LLMService',
    metadata: { name: 's' },
    spec: {
      model: 'm',
      slo: { tpotMillis: tpot },
      buckets: BUCKETS,
      gpus: [{ pool: 'a10g', profile: 'p' }],
      workload: { source: 'Static', static: { requestsPerSecond: 1, distribution: [[1], [1]] } },
      template: { spec: { containers: [{ name: 'vllm', image: 'vllm' }] } },
    },
  }));

// Bucket [0][0] (100 in / 100 out): TPOT 40 ms at 1 req/s, 60 at 2, 90 at 4, 200 at 8.
// Bucket [1][0] (1000 in / 100 out): cannot serve (no measurements, 0).
const points: Measurement[] = [
  { input: 100, output: 100, rate: 1, meanTpotMillis: 40, throughput: 1 },
  { input: 100, output: 100, rate: 2, meanTpotMillis: 60, throughput: 2 },
  { input: 100, output: 100, rate: 4, meanTpotMillis: 90, throughput: 4 },
  { input: 100, output: 100, rate: 8, meanTpotMillis: 200, throughput: 8 },
];
const measured = (tpot: number) => profile(tpot, deriveMaxThroughput(points, BUCKETS, tpot), points);

const build = (svcTpot: number, p: GPUProfile) => instanceFromService(service(svcTpot), { profiles: [p], pools: [pool('a10g', 'A10G')] });

describe('instanceFromService: profiles measured at another SLO', () => {
  it('same SLO: spec.maxThroughput as is, with or without measurements', () => {
    const r = build(90, profile(90, [[3.3], [0]], points));
    expect(r.ok && r.value.input.gpus[0]!.maxThroughput).toEqual([[3.3], [0]]);
  });

  it('no measurements: a tighter-profiled profile is used as is (conservative), a looser one is rejected as before', () => {
    const tight = build(120, profile(60, [[2], [0]]));
    expect(tight.ok && tight.value.input.gpus[0]!.maxThroughput).toEqual([[2], [0]]);
    const loose = build(60, profile(120, [[5], [0]]));
    expect(loose.ok).toBe(false);
    expect(!loose.ok && loose.errors).toEqual([
      { path: 'spec.gpus[0].profile', message: 'GPUProfile "p" was measured at 120 ms TPOT, looser than the SLO\'s 60 ms' },
    ]);
  });

  it('with measurements: a service with a LOOSER SLO gets the capacity derived for its SLO (more than profiled)', () => {
    const p = measured(60); // profiled at 60 ms: 2 req/s
    expect(p.spec.maxThroughput[0]![0]).toBe(2);
    const r = build(120, p);
    expect(r.ok).toBe(true);
    const got = r.ok ? r.value.input.gpus[0]!.maxThroughput : [];
    expect(got[0]![0]).toBeCloseTo(4 + (4 * 30) / 110, 2); // between 4 (90 ms) and 8 (200 ms), rounded down to 4 digits
    expect(got[0]![0]).toBeLessThanOrEqual(4 + (4 * 30) / 110);
    expect(got[1]![0]).toBe(0); // cannot serve stays cannot serve
  });

  it('with measurements: a LOOSER SLO never gets less than the profile\'s own maxThroughput (it holds under a tighter SLO)', () => {
    const p = profile(60, [[3], [0]], points); // 3 req/s at 60 ms, above what the points alone show at 70 ms
    expect(deriveMaxThroughput(points, BUCKETS, 70)[0]![0]).toBeLessThan(3);
    expect(throughputAtSlo(p.spec, 70)).toEqual([[3], [0]]);
  });

  it('with measurements: a service with a TIGHTER SLO gets the derived capacity, never above the profiled one', () => {
    const p = measured(120);
    const r = build(50, p);
    expect(r.ok).toBe(true);
    const got = r.ok ? r.value.input.gpus[0]!.maxThroughput : [];
    expect(got[0]![0]).toBeCloseTo(1.5, 10); // between 1 (40 ms) and 2 (60 ms)
    // A hand-lowered maxThroughput caps the derivation for tighter SLOs.
    const lowered = profile(120, [[1.2], [0]], points);
    expect(throughputAtSlo(lowered.spec, 50)).toEqual([[1.2], [0]]);
    // ... and an SLO no point meets gives 0 (cannot serve at that SLO).
    expect(throughputAtSlo(p.spec, 30)).toEqual([[0], [0]]);
  });

  it('with measurements but a bucket without any: kept if 0 or profiled under a tighter SLO, an error if it would overstate', () => {
    const p = profile(60, [[2], [0.5]], points); // [1][0] has a value but no points
    // looser service (120 ms): 0.5 was measured under the tighter 60 ms, so it is a safe lower bound
    const loose = throughputAtSlo(p.spec, 120) as number[][];
    expect(loose[1]![0]).toBe(0.5);
    expect(loose[0]![0]).toBeGreaterThan(4);
    // tighter service (40 ms): nothing to derive [1][0] from, and 0.5 may overstate it
    const r = build(40, p);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.errors[0]).toEqual({
      path: 'spec.gpus[0].profile',
      message: 'GPUProfile "p" was measured at 60 ms TPOT, looser than the SLO\'s 40 ms, and has no measurements to derive buckets [1][0] from',
    });
  });
});
