// Parsed API objects for the controller unit tests (built through the real zod schemas, defaults applied).
import { parseGPUPool, parseGPUProfile, parseLLMService, type GPUPool, type GPUProfile, type LLMService } from '../../../src/api/index.js';

type Obj = Record<string, unknown>;

export const BUCKETS = { inputEdges: [100, 1000], outputEdges: [100, 500] };

export function pool(name: string, gpuType: string, cost: string, extra: Obj = {}): GPUPool {
  const r = parseGPUPool({
    apiVersion: 'melange.dev/v1alpha1',
    kind: 'GPUPool',
    metadata: { name, uid: `uid-pool-${name}`, resourceVersion: '1' },
    spec: {
      gpuType,
      costPerGPUHour: cost,
      gpusPerNode: 8,
      nodeSelector: { 'nvidia.com/gpu.product': `NVIDIA-${gpuType}` },
      tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
      ...extra,
    },
  });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
}

export function profile(name: string, gpuType: string, maxThroughput: number[][], tpot = 100): GPUProfile {
  const r = parseGPUProfile({
    apiVersion: 'melange.dev/v1alpha1',
    kind: 'GPUProfile',
    metadata: { name, namespace: 'ml', uid: `uid-prof-${name}`, resourceVersion: '1' },
    spec: { model: 'm', gpuType, slo: { tpotMillis: tpot }, buckets: BUCKETS, maxThroughput },
  });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
}

/** Two GPU types: "small" (cheap, cannot serve long prompts) and "big". */
export const POOLS = [pool('small', 'A10G', '1.00'), pool('big', 'A100', '4.00')];
export const PROFILES = [
  profile('m-small', 'A10G', [
    [4, 2],
    [0, 0],
  ]),
  profile('m-big', 'A100', [
    [20, 10],
    [8, 4],
  ]),
];

export function service(over: { spec?: Obj; metadata?: Obj; status?: Obj } = {}): LLMService {
  const r = parseLLMService({
    apiVersion: 'melange.dev/v1alpha1',
    kind: 'LLMService',
    metadata: { name: 'chat', namespace: 'ml', uid: 'uid-chat', generation: 1, resourceVersion: '10', ...over.metadata },
    spec: {
      model: 'm',
      slo: { tpotMillis: 100 },
      buckets: BUCKETS,
      gpus: [
        { pool: 'small', profile: 'm-small' },
        { pool: 'big', profile: 'm-big' },
      ],
      workload: { source: 'Static', static: { requestsPerSecond: 10, distribution: [[8, 1], [1, 0]] } },
      template: {
        metadata: { labels: { team: 'ml' }, annotations: { note: 'x' } },
        spec: { containers: [{ name: 'vllm', image: 'vllm:1', args: ['--port', '8000'] }, { name: 'sidecar', image: 's:1' }], priorityClassName: 'high' },
      },
      ...over.spec,
    },
    ...(over.status ? { status: over.status } : {}),
  });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
}
