import { parseMoney, type FieldError, type GPUPool, type GPUProfile, type LLMService } from '../api/index.js';
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
    if (p.slo.tpotMillis > spec.slo.tpotMillis) {
      // Throughput measured under a looser SLO overstates what a replica can do under ours.
      errors.push({ path: `${path}.profile`, message:
        `GPUProfile "${g.profile}" was measured at ${p.slo.tpotMillis} ms TPOT, looser than the SLO's ${spec.slo.tpotMillis} ms` });
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
      maxThroughput: p.maxThroughput.map((row) => [...row]),
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
