import { GPUPoolSchema, type GPUPool, type GPUPoolInput } from './gpupool.js';
import { GPUProfileSchema, type GPUProfile, type GPUProfileInput } from './gpuprofile.js';
import type { LatencyModelInput } from './latency.js';
import { API_VERSION } from './meta.js';

/**
 * Built-in example data for `melangectl plan` on a machine with no cluster and no profiles of its own,
 * and the source of examples/gpupools.yaml and examples/gpuprofiles-llama2-7b.yaml.
 *
 * THE THROUGHPUT NUMBERS ARE ILLUSTRATIVE. They come from the small analytic model below, calibrated
 * only against the shape of the Mélange paper's findings (cheap GPUs win on short requests, big GPUs on
 * long ones, L4/A10G cannot hold 12k+ token prompts, A100 ≈ 5x A10G around 1k in / 500 out at 120 ms).
 * Measure real profiles with `melangectl profile` before trusting a plan. Prices are the paper's.
 */

/** The paper's 10 x 6 buckets (upper edges, tokens). */
export const PAPER_BUCKETS = {
  inputEdges: [25, 100, 250, 500, 1000, 2000, 4000, 8000, 12000, 16000],
  outputEdges: [25, 100, 250, 500, 1000, 2000],
};

export const ILLUSTRATIVE_ANNOTATION = 'melange.dev/illustrative';
export const CATALOG_MODEL = 'meta-llama/Llama-2-7b-hf';
export const CATALOG_TPOT_MILLIS = 120;

interface GpuSpec {
  pool: string;
  gpuType: string;
  /** The paper's $/GPU-hour. */
  price: string;
  gpusPerNode: number;
  productLabel: string;
  /** Memory bandwidth (GB/s): decode reads the weights and the KV cache every step. */
  bandwidthGBs: number;
  /** Effective prefill rate (tokens/s) for a 7B model. */
  prefillTokensPerSec: number;
  /** KV-cache capacity in tokens once the fp16 weights are loaded. */
  kvTokens: number;
  /** Longest prompt that fits at all. */
  maxInputTokens: number;
}

const GPUS: readonly GpuSpec[] = [
  { pool: 'l4', gpuType: 'L4', price: '0.70', gpusPerNode: 1, productLabel: 'NVIDIA-L4',
    bandwidthGBs: 300, prefillTokensPerSec: 4300, kvTokens: 20_000, maxInputTokens: 8000 },
  { pool: 'a10g', gpuType: 'A10G', price: '1.01', gpusPerNode: 1, productLabel: 'NVIDIA-A10G',
    bandwidthGBs: 600, prefillTokensPerSec: 4500, kvTokens: 20_000, maxInputTokens: 8000 },
  { pool: 'a100', gpuType: 'A100-80GB', price: '3.67', gpusPerNode: 8, productLabel: 'NVIDIA-A100-SXM4-80GB',
    bandwidthGBs: 2039, prefillTokensPerSec: 11_000, kvTokens: 124_000, maxInputTokens: 16_000 },
  { pool: 'h100', gpuType: 'H100-80GB', price: '7.516', gpusPerNode: 8, productLabel: 'NVIDIA-H100-80GB-HBM3',
    bandwidthGBs: 3350, prefillTokensPerSec: 30_000, kvTokens: 124_000, maxInputTokens: 16_000 },
];

const WEIGHTS_GB = 13.5; // Llama-2-7B in fp16
const KV_GB_PER_TOKEN = 0.0005; // 32 layers x 2 x 4096 x 2 bytes
const STEP_OVERHEAD_S = 0.008; // scheduler + kernel launches per decode step, independent of the GPU
const REQUEST_OVERHEAD_S = 0.015; // tokenisation, sampling, bookkeeping per request
const EFFICIENCY = 0.5; // measured servers reach roughly half of this idealised bound

/**
 * Max req/s one replica sustains for requests of `input`/`output` tokens while mean TPOT <= `tpotMillis`.
 * Decode step time grows with the batch's KV footprint; prefill and per-request overhead steal time
 * from decoding; the batch must also fit in the KV cache (Little's law). Solved by bisection.
 */
function illustrativeMaxThroughput(gpu: GpuSpec, input: number, output: number, tpotMillis: number): number {
  if (input > gpu.maxInputTokens) return 0;
  const slo = tpotMillis / 1000;
  const step = WEIGHTS_GB / gpu.bandwidthGBs + STEP_OVERHEAD_S;
  const perToken = KV_GB_PER_TOKEN / gpu.bandwidthGBs;
  const meanContext = input + output / 2;
  const busyPerRequest = input / gpu.prefillTokensPerSec + perToken * output * meanContext + REQUEST_OVERHEAD_S;
  if (step >= slo) return 0;
  const tpot = (rate: number) => step / (1 - rate * busyPerRequest);
  const fits = (rate: number) => {
    const t = tpot(rate);
    return t > 0 && t <= slo && rate * output * t * meanContext <= gpu.kvTokens;
  };
  let lo = 0;
  let hi = 1 / busyPerRequest;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return Number((lo * EFFICIENCY).toPrecision(3));
}

/**
 * One request alone on an idle replica (spec.latency, for the router's SLO guard), from the same constants:
 * the per-request overhead, the prefill and the per-step costs at the efficiency the throughput numbers use.
 * It predicts the emulator's engine (which shares these constants) within 1.5% at every bucket edge (a unit test checks it).
 */
function illustrativeLatency(gpu: GpuSpec): LatencyModelInput {
  const sig = (ms: number) => Number(ms.toPrecision(4));
  return {
    overheadMillis: sig((REQUEST_OVERHEAD_S / EFFICIENCY) * 1000),
    prefillMillisPerToken: sig(1000 / (gpu.prefillTokensPerSec * EFFICIENCY)),
    decodeStepMillis: sig((WEIGHTS_GB / gpu.bandwidthGBs + STEP_OVERHEAD_S) * 1000),
    decodeMillisPerContextToken: sig((KV_GB_PER_TOKEN / gpu.bandwidthGBs / EFFICIENCY) * 1000),
  };
}

const illustrativeMeta = (name: string) => ({
  name,
  labels: { 'app.kubernetes.io/part-of': 'melange' },
  annotations: { [ILLUSTRATIVE_ANNOTATION]: 'true' },
});

function poolOf(g: GpuSpec): GPUPoolInput {
  return {
    apiVersion: API_VERSION,
    kind: 'GPUPool',
    metadata: illustrativeMeta(g.pool),
    spec: {
      gpuType: g.gpuType,
      costPerGPUHour: g.price,
      gpusPerNode: g.gpusPerNode,
      resourceName: 'nvidia.com/gpu',
      nodeSelector: { 'nvidia.com/gpu.product': g.productLabel },
      tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
      minNodes: 0,
      provider: { type: 'None' },
    },
  };
}

function profileOf(g: GpuSpec): GPUProfileInput {
  return {
    apiVersion: API_VERSION,
    kind: 'GPUProfile',
    metadata: illustrativeMeta(`llama2-7b-${g.pool}`),
    spec: {
      model: CATALOG_MODEL,
      gpuType: g.gpuType,
      slo: { tpotMillis: CATALOG_TPOT_MILLIS },
      buckets: { inputEdges: [...PAPER_BUCKETS.inputEdges], outputEdges: [...PAPER_BUCKETS.outputEdges] },
      maxThroughput: PAPER_BUCKETS.inputEdges.map((i) =>
        PAPER_BUCKETS.outputEdges.map((o) => illustrativeMaxThroughput(g, i, o, CATALOG_TPOT_MILLIS)),
      ),
      latency: illustrativeLatency(g),
    },
  };
}

export interface Catalog {
  /** Always true: nothing in the built-in catalog was measured. */
  illustrative: true;
  note: string;
  /** Raw manifests as they appear in examples/ (defaults not applied). */
  manifests: { pools: GPUPoolInput[]; profiles: GPUProfileInput[] };
  /** The same objects parsed by the schemas (defaults applied). */
  pools: GPUPool[];
  profiles: GPUProfile[];
}

function build(): Catalog {
  const pools = GPUS.map(poolOf);
  const profiles = GPUS.map(profileOf);
  return {
    illustrative: true,
    note: 'Illustrative throughput from an analytic model, not measurements; prices from the Mélange paper.',
    manifests: { pools, profiles },
    pools: pools.map((p) => GPUPoolSchema.parse(p)),
    profiles: profiles.map((p) => GPUProfileSchema.parse(p)),
  };
}

let cached: Catalog | undefined;
/** Built on first use so importing the api layer stays cheap. Treat the result as read-only. */
export function builtinCatalog(): Catalog {
  cached ??= build();
  return cached;
}
