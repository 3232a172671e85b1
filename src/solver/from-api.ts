import { parseMoney, type FieldError, type GPUPool, type GPUProfile, type LLMService } from '../api/index.js';
import { deriveMatrix } from './capacity-from-measurements.js';
import type { GpuOption, SolveInput } from './types.js';

// Turns an LLMService and the GPUProfiles/GPUPools it names into a solver instance. Shared by
// `melangectl plan` and the controller so both plan exactly the same problem. Every problem with the
// references comes back as a field error naming the LLMService field, never as a bad solve.

export interface ResolvedGpu {
  /** The GPUPool name; also the solver's GPU id. */
  pool: string;
  gpuType: string;
  gpusPerReplica: number;
  costPerReplicaHour: number;
}

export interface ServiceInstance {
  input: SolveInput;
  gpus: ResolvedGpu[];
}

export interface WorkloadOverride {
  /** Total req/s; replaces spec.workload.static.requestsPerSecond (e.g. a measured rate). */
  requestsPerSecond?: number;
  /** Relative weights per [input][output] bucket; replaces the static distribution. */
  distribution?: number[][];
}

const sameEdges = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

export function instanceFromService(
  service: LLMService,
  refs: { profiles: readonly GPUProfile[]; pools: readonly GPUPool[] },
  workload: WorkloadOverride = {},
): { ok: true; value: ServiceInstance } | { ok: false; errors: FieldError[] } {
  const spec = service.spec;
  const errors: FieldError[] = [];
  const options: GpuOption[] = [];
  const resolved: ResolvedGpu[] = [];

  spec.gpus.forEach((g, i) => {
    const path = `spec.gpus[${i}]`;
    const pool = refs.pools.find((p) => p.metadata.name === g.pool);
    const profile = refs.profiles.find((p) => p.metadata.name === g.profile);
    if (!pool) errors.push({ path: `${path}.pool`, message: `GPUPool "${g.pool}" not found` });
    if (!profile) errors.push({ path: `${path}.profile`, message: `GPUProfile "${g.profile}" not found` });
    if (!pool || !profile) return;
    const p = profile.spec;
    if (!sameEdges(p.buckets.inputEdges, spec.buckets.inputEdges) || !sameEdges(p.buckets.outputEdges, spec.buckets.outputEdges)) {
      errors.push({ path: `${path}.profile`, message: `GPUProfile "${g.profile}" uses different bucket edges than spec.buckets` });
      return;
    }
    const throughput = throughputAtSlo(p, spec.slo.tpotMillis);
    if (typeof throughput === 'string') {
      errors.push({ path: `${path}.profile`, message: `GPUProfile "${g.profile}" ${throughput}` });
      return;
    }
    if (p.gpuType !== pool.spec.gpuType) {
      errors.push({ path: `${path}.profile`, message:
        `GPUProfile "${g.profile}" measured ${p.gpuType}, but GPUPool "${g.pool}" has ${pool.spec.gpuType}` });
      return;
    }
    const costPerReplicaHour = parseMoney(pool.spec.costPerGPUHour) * g.gpusPerReplica;
    const poolCap = pool.spec.maxNodes === undefined
      ? undefined
      : Math.floor((pool.spec.maxNodes * pool.spec.gpusPerNode) / g.gpusPerReplica);
    const caps = [g.maxReplicas, poolCap].filter((c): c is number => c !== undefined);
    options.push({
      id: g.pool,
      costPerHour: costPerReplicaHour,
      maxThroughput: throughput,
      minReplicas: g.minReplicas,
      ...(caps.length > 0 ? { maxReplicas: Math.min(...caps) } : {}),
    });
    resolved.push({ pool: g.pool, gpuType: pool.spec.gpuType, gpusPerReplica: g.gpusPerReplica, costPerReplicaHour });
  });

  const rate = workload.requestsPerSecond ?? spec.workload.static?.requestsPerSecond;
  const distribution = workload.distribution ?? spec.workload.static?.distribution;
  if (rate === undefined) {
    errors.push({ path: 'spec.workload.static.requestsPerSecond', message: 'no request rate: give a static workload or a measured rate' });
  }
  if (distribution === undefined) {
    errors.push({ path: 'spec.workload.static.distribution', message: 'no size distribution: give a static workload or a measured one' });
  }
  if (errors.length > 0 || rate === undefined || distribution === undefined) return { ok: false, errors };

  const policy = spec.policy;
  return {
    ok: true,
    value: {
      gpus: resolved,
      input: {
        buckets: { inputEdges: [...spec.buckets.inputEdges], outputEdges: [...spec.buckets.outputEdges] },
        workload: { totalRate: rate, fractions: distribution.map((row) => [...row]) },
        gpus: options,
        mode: policy.mode,
        sliceFactor: policy.sliceFactor,
        headroomPercent: policy.headroomPercent,
        ...(policy.changePenaltyPerReplica ? { changePenaltyPerReplica: parseMoney(policy.changePenaltyPerReplica) } : {}),
      },
    },
  };
}

/**
 * A profile's max throughput per bucket under the service's SLO (or why it cannot say).
 *   - Same SLO: spec.maxThroughput as is.
 *   - Raw points in spec.measurements: derived for the service's SLO by the profiler's conservative rule
 *     (src/solver/capacity-from-measurements.ts; tighter or looser both fine), never above spec.maxThroughput when the service's
 *     SLO is the tighter one, never below it when the service's SLO is the looser one. A bucket without points keeps its spec.maxThroughput if that is 0 (cannot serve) or
 *     was measured under a tighter SLO; otherwise it is an error.
 *   - No measurements: a profile measured under a tighter SLO is conservative and used as is; one measured under
 *     a looser SLO overstates what a replica can do under ours: error.
 */
export function throughputAtSlo(p: GPUProfile['spec'], sloTpotMillis: number): number[][] | string {
  const stored = p.maxThroughput.map((row) => [...row]);
  if (p.slo.tpotMillis === sloTpotMillis) return stored;
  const looser = `was measured at ${p.slo.tpotMillis} ms TPOT, looser than the SLO's ${sloTpotMillis} ms`;
  if (!p.measurements || p.measurements.length === 0) return p.slo.tpotMillis > sloTpotMillis ? looser : stored;
  const derived = deriveMatrix(p.measurements, p.buckets, sloTpotMillis);
  const missing: string[] = [];
  const out = stored.map((row, i) => row.map((v, j) => {
    const cell = derived[i]?.[j];
    // The stored value holds at the profile's SLO: a cap for a tighter SLO, a floor for a looser one.
    if (cell && cell.points > 0) return sloTpotMillis < p.slo.tpotMillis ? Math.min(v, cell.rate) : Math.max(v, cell.rate);
    if (v === 0 || p.slo.tpotMillis < sloTpotMillis) return v;
    missing.push(`[${i}][${j}]`);
    return 0;
  }));
  if (missing.length > 0) return `${looser}, and has no measurements to derive buckets ${missing.join(', ')} from`;
  return out;
}
