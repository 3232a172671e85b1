/**
 * The PromQL the workload source runs (pure). All values are escaped through promql.ts.
 *
 * Only raw counters/buckets are aggregated in PromQL; every ratio is taken client-side, so Prometheus never
 * produces a 0/0 NaN for us and "no traffic" (rates of 0) stays distinguishable from "no series" (empty).
 */
import { duration, promql, selector, type LabelMatcherSpec, type PromQL } from './promql.js';

export const ROUTER_REQUESTS_METRIC = 'melange_router_requests_total';
export const VLLM_PROMPT_TOKENS = 'vllm:request_prompt_tokens';
export const VLLM_GENERATION_TOKENS = 'vllm:request_generation_tokens';
export const VLLM_SUCCESS_TOTAL = 'vllm:request_success_total';

export interface RouterQueries {
  bucketRates: PromQL;
  recentRate: PromQL;
  lastSeen: PromQL;
}

/**
 * bucketRates: sum by (input_le, output_le) (rate(melange_router_requests_total{…}[window]))
 * recentRate:  sum(rate(melange_router_requests_total{…}[shortWindow]))
 * lastSeen:    max(timestamp(melange_router_requests_total{…}))
 * The pool and code labels are summed away: the workload is what clients ask for, whatever served it.
 */
export function routerQueries(
  matchers: readonly LabelMatcherSpec[],
  windowMs: number,
  shortWindowMs: number,
  metric = ROUTER_REQUESTS_METRIC,
): RouterQueries {
  const sel = selector(metric, matchers);
  return {
    bucketRates: promql`sum by (input_le, output_le) (rate(${sel}[${duration(windowMs)}]))`,
    recentRate: promql`sum(rate(${sel}[${duration(shortWindowMs)}]))`,
    lastSeen: promql`max(timestamp(${sel}))`,
  };
}

export interface VllmQueries {
  promptBuckets: PromQL;
  generationBuckets: PromQL;
  successRate: PromQL;
  recentSuccessRate: PromQL;
  lastSeen: PromQL;
}

/**
 * promptBuckets:     sum by (le) (rate(vllm:request_prompt_tokens_bucket{…}[window]))
 * generationBuckets: sum by (le) (rate(vllm:request_generation_tokens_bucket{…}[window]))
 * successRate:       sum(rate(vllm:request_success_total{…}[window]))
 * recentSuccessRate: sum(rate(vllm:request_success_total{…}[shortWindow]))
 * lastSeen:          max(timestamp(vllm:request_prompt_tokens_count{…}))
 */
export function vllmQueries(matchers: readonly LabelMatcherSpec[], windowMs: number, shortWindowMs: number): VllmQueries {
  const w = duration(windowMs);
  const sw = duration(shortWindowMs);
  const prompt = selector(`${VLLM_PROMPT_TOKENS}_bucket`, matchers);
  const gen = selector(`${VLLM_GENERATION_TOKENS}_bucket`, matchers);
  const success = selector(VLLM_SUCCESS_TOTAL, matchers);
  return {
    promptBuckets: promql`sum by (le) (rate(${prompt}[${w}]))`,
    generationBuckets: promql`sum by (le) (rate(${gen}[${w}]))`,
    successRate: promql`sum(rate(${success}[${w}]))`,
    recentSuccessRate: promql`sum(rate(${success}[${sw}]))`,
    lastSeen: promql`max(timestamp(${selector(`${VLLM_PROMPT_TOKENS}_count`, matchers)}))`,
  };
}
