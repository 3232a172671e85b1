/**
 * The SLO guard (pure): the solver splits traffic per size BUCKET, but inside a bucket requests differ a lot in
 * how much time per output token they need — a 3-token answer to a 900-token prompt carries the whole prefill
 * on 3 tokens. On a slow GPU such a request misses a mean-TPOT SLO even on an idle replica, and load only adds
 * to that. The guard keeps the split's pick unless the pool's latency model predicts that an idle replica
 * needs more than `threshold` of the SLO for this request; then the request goes to the pool where it is
 * predicted fastest — even when it is predicted to miss there too: that is its best chance, the model is an
 * estimate, and keeping it on the slow pool would miss for certain (at 40 ms, moving those too met 5 more of
 * 2,000 requests in the benchmark's simulated twin than moving only the ones predicted to make it).
 *
 * The guard moves few requests (the small-output corners of the buckets: ~6% at a 120 ms SLO in
 * docs/benchmarks.md), so the load on each pool stays close to what the solver planned.
 */
import { aloneTpotMillis, type LatencyModel } from '../api/latency.js';
import type { SloGuardConfig } from './config.js';

export interface GuardInput {
  /** The pool the split picked. */
  picked: string;
  /** The request's (estimated) prompt and output tokens. */
  input: number;
  output: number;
  /** Latency model per pool; pools without one are neither judged nor chosen. */
  models: ReadonlyMap<string, LatencyModel>;
  /** Pools that can take the request now (a ready, untried backend). */
  eligible: (pool: string) => boolean;
  guard: SloGuardConfig;
}

export interface GuardDecision {
  pool: string;
  /** Set when the guard moved the request: the pool the split had picked. */
  redirectedFrom?: string;
}

export function guardPool(g: GuardInput): GuardDecision {
  const keep: GuardDecision = { pool: g.picked };
  const own = g.models.get(g.picked);
  if (!own || g.models.size < 2) return keep;
  const predicted = aloneTpotMillis(own, g.input, g.output);
  if (predicted <= g.guard.threshold * g.guard.tpotMillis) return keep;
  let best: string | undefined;
  let bestTpot = predicted;
  // Sorted names: the choice between equally fast pools does not depend on config order.
  for (const pool of [...g.models.keys()].sort()) {
    if (pool === g.picked || !g.eligible(pool)) continue;
    const t = aloneTpotMillis(g.models.get(pool)!, g.input, g.output);
    if (t < bestTpot) {
      best = pool;
      bestTpot = t;
    }
  }
  if (best === undefined) return keep;
  return { pool: best, redirectedFrom: g.picked };
}

/** The latency models of a configuration's pools, by pool name. */
export function poolLatencyModels(pools: readonly { name: string; latency?: LatencyModel | undefined }[]): Map<string, LatencyModel> {
  const out = new Map<string, LatencyModel>();
  for (const p of pools) if (p.latency) out.set(p.name, p.latency);
  return out;
}
