/**
 * Small, self-contained melange.dev objects for operator tests that need a service but not the examples:
 * one GPU type, one bucket, throughput 1 req/s per replica. Names carry a suffix because GPUPools are
 * cluster-scoped and test files share the cluster.
 */
type Obj = Record<string, unknown>;

export interface TinySet {
  pool: Obj;
  profile: Obj;
  service: Obj;
  poolName: string;
  profileName: string;
  product: string;
}

/** A pool, a profile and a service planning ceil(rate × 1.1) replicas of that pool. */
export function tinyService(name: string, suffix: string, requestsPerSecond = 2): TinySet {
  const poolName = `tiny-${suffix}`.slice(0, 63);
  const profileName = `tiny-${suffix}`;
  const product = `TINY-GPU-${suffix}`;
  const buckets = { inputEdges: [1000], outputEdges: [500] };
  return {
    poolName,
    profileName,
    product,
    pool: {
      apiVersion: 'melange.dev/v1alpha1',
      kind: 'GPUPool',
      metadata: { name: poolName },
      spec: {
        gpuType: 'TINY',
        costPerGPUHour: '1.00',
        gpusPerNode: 1,
        nodeSelector: { 'nvidia.com/gpu.product': product },
        tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
      },
    },
    profile: {
      apiVersion: 'melange.dev/v1alpha1',
      kind: 'GPUProfile',
      metadata: { name: profileName },
      spec: { model: 'tiny-model', gpuType: 'TINY', slo: { tpotMillis: 100 }, buckets, maxThroughput: [[1]] },
    },
    service: {
      apiVersion: 'melange.dev/v1alpha1',
      kind: 'LLMService',
      metadata: { name },
      spec: {
        model: 'tiny-model',
        slo: { tpotMillis: 100 },
        buckets,
        gpus: [{ pool: poolName, profile: profileName }],
        workload: { source: 'Static', static: { requestsPerSecond, distribution: [[1]] } },
        template: { spec: { containers: [{ name: 'server', image: 'registry.invalid/model-server:1' }] } },
      },
    },
  };
}

/** Replicas the tiny service plans at `rate` req/s (default 10% headroom, 1 req/s per replica). */
export const tinyReplicas = (rate: number) => Math.ceil(rate * 1.1 - 1e-9);
