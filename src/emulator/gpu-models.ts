/**
 * The emulator's performance model: one small set of constants per GPU type, serving a 7B model in fp16.
 *
 * These are the SAME constants and the same analytic shape as the illustrative catalog in
 * src/api/catalog.ts (which keeps a private copy: the api layer must not import the emulator). A unit test
 * (test/unit/emulator/capacity.test.ts) checks that `analyticMaxThroughput` below reproduces every catalog
 * number exactly, so the two cannot drift silently, and that the *simulated* emulator's capacity stays close to
 * the catalog. See docs/emulator.md for the model and its limits. Nothing here was measured on a GPU.
 *
 * Engine cost of one scheduler iteration (see engine.ts), in emulated seconds:
 *
 *   step = baseStepS                                   (read the weights once + fixed per-step overhead)
 *        + perContextTokenS · Σ context of decoding requests   (read their KV cache)
 *        + prefillPerTokenS · Σ prompt tokens prefilled this step
 *        + requestOverheadS · requests scheduled for the first time
 *
 * with baseStepS = weightsGB / bandwidth + stepOverheadS, perContextTokenS = kvGBPerToken / bandwidth
 * divided by the efficiency, prefillPerTokenS = 1 / (prefillTokensPerSec · efficiency) and
 * requestOverheadS = requestOverheadS / efficiency; KV budget = kvTokens · efficiency.
 */

export type GpuType = 'L4' | 'A10G' | 'A100-80GB' | 'H100-80GB';
export const GPU_TYPES: readonly GpuType[] = ['L4', 'A10G', 'A100-80GB', 'H100-80GB'];

/** GPU-independent constants (Llama-2-7B, fp16). Identical to src/api/catalog.ts. */
export const MODEL_CONSTANTS = {
  /** Weights read once per decode step (GB). */
  weightsGB: 13.5,
  /** KV cache per token: 32 layers x 2 (K,V) x 4096 x 2 bytes (GB). */
  kvGBPerToken: 0.0005,
  /** Scheduler + kernel launches per engine step, independent of the GPU (s). */
  stepOverheadS: 0.008,
  /** Tokenisation, sampling setup, bookkeeping per request (s). */
  requestOverheadS: 0.015,
  /**
   * Real servers reach roughly half of the idealised bound. The catalog multiplies its capacities by this;
   * the emulator divides every per-request cost by it and multiplies the KV budget by it, which scales the
   * same analytic capacity by exactly this factor while leaving the unloaded step time untouched.
   */
  efficiency: 0.5,
} as const;

export interface GpuModel {
  gpuType: GpuType;
  /** The paper's $/GPU-hour (decimal string, like the API). */
  price: string;
  /** Memory bandwidth (GB/s): decode reads the weights and the KV cache every step. */
  bandwidthGBs: number;
  /** Effective prefill rate (tokens/s) for a 7B model, before the efficiency factor. */
  prefillTokensPerSec: number;
  /** KV-cache capacity in tokens once the fp16 weights are loaded, before the efficiency factor. */
  kvTokens: number;
  /** Longest prompt that fits at all (the catalog's limit). */
  maxInputTokens: number;
  /**
   * Longest request (prompt + max_tokens) accepted, like vLLM's max_model_len; longer ones get a 400.
   * = maxInputTokens + 2000 (the longest output bucket), never more than the usable KV budget.
   */
  maxModelLen: number;
}

export const GPU_MODELS: Readonly<Record<GpuType, GpuModel>> = {
  L4: { gpuType: 'L4', price: '0.70', bandwidthGBs: 300, prefillTokensPerSec: 4300, kvTokens: 20_000, maxInputTokens: 8000, maxModelLen: 10_000 },
  A10G: { gpuType: 'A10G', price: '1.01', bandwidthGBs: 600, prefillTokensPerSec: 4500, kvTokens: 20_000, maxInputTokens: 8000, maxModelLen: 10_000 },
  'A100-80GB': { gpuType: 'A100-80GB', price: '3.67', bandwidthGBs: 2039, prefillTokensPerSec: 11_000, kvTokens: 124_000, maxInputTokens: 16_000, maxModelLen: 18_000 },
  'H100-80GB': { gpuType: 'H100-80GB', price: '7.516', bandwidthGBs: 3350, prefillTokensPerSec: 30_000, kvTokens: 124_000, maxInputTokens: 16_000, maxModelLen: 18_000 },
};

const ALIASES: Record<string, GpuType> = {
  l4: 'L4',
  a10g: 'A10G',
  a10: 'A10G',
  a100: 'A100-80GB',
  'a100-80gb': 'A100-80GB',
  'a100-80g': 'A100-80GB',
  h100: 'H100-80GB',
  'h100-80gb': 'H100-80GB',
  'h100-80g': 'H100-80GB',
};

/** 'a100', 'A100-80GB', 'h100' ... → the canonical GpuType, or undefined. */
export function resolveGpuType(name: string): GpuType | undefined {
  return ALIASES[name.trim().toLowerCase()];
}

/** What the engine needs: the cost model with the efficiency folded in (emulated seconds, tokens). */
export interface EnginePerf {
  gpuType: string;
  baseStepS: number;
  perContextTokenS: number;
  prefillPerTokenS: number;
  requestOverheadS: number;
  /** Usable KV-cache budget (tokens). */
  kvCapacityTokens: number;
  /** Longest prompt + max_tokens accepted. */
  maxModelLen: number;
}

export function enginePerf(gpu: GpuModel | GpuType): EnginePerf {
  const g = typeof gpu === 'string' ? GPU_MODELS[gpu] : gpu;
  const c = MODEL_CONSTANTS;
  const kvCapacityTokens = Math.floor(g.kvTokens * c.efficiency);
  return {
    gpuType: g.gpuType,
    baseStepS: c.weightsGB / g.bandwidthGBs + c.stepOverheadS,
    perContextTokenS: c.kvGBPerToken / g.bandwidthGBs / c.efficiency,
    prefillPerTokenS: 1 / (g.prefillTokensPerSec * c.efficiency),
    requestOverheadS: c.requestOverheadS / c.efficiency,
    kvCapacityTokens,
    maxModelLen: Math.min(g.maxModelLen, kvCapacityTokens),
  };
}

/**
 * The catalog's closed-form capacity (req/s one instance sustains at mean TPOT <= tpotMillis), the
 * mean-field limit of the emulator's engine: TPOT = baseStep / (1 - rate·busy), and the KV cache must hold
 * rate · latency · meanContext tokens (Little's law). Identical arithmetic to src/api/catalog.ts, including
 * its rounding to 3 significant digits. 0 = this GPU cannot serve the size at this SLO.
 */
export function analyticMaxThroughput(gpu: GpuModel | GpuType, input: number, output: number, tpotMillis: number): number {
  const g = typeof gpu === 'string' ? GPU_MODELS[gpu] : gpu;
  const c = MODEL_CONSTANTS;
  if (input > g.maxInputTokens) return 0;
  const slo = tpotMillis / 1000;
  const step = c.weightsGB / g.bandwidthGBs + c.stepOverheadS;
  const perToken = c.kvGBPerToken / g.bandwidthGBs;
  const meanContext = input + output / 2;
  const busyPerRequest = input / g.prefillTokensPerSec + perToken * output * meanContext + c.requestOverheadS;
  if (step >= slo) return 0;
  const tpot = (rate: number) => step / (1 - rate * busyPerRequest);
  const fits = (rate: number) => {
    const t = tpot(rate);
    return t > 0 && t <= slo && rate * output * t * meanContext <= g.kvTokens;
  };
  let lo = 0;
  let hi = 1 / busyPerRequest;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return Number((lo * c.efficiency).toPrecision(3));
}
