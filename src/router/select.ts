/**
 * Backend choice and retry policy (pure): which pool and backend an attempt goes to, and whether a failed
 * attempt may be retried.
 */
import type { PoolWeights } from './weights.js';

export interface BackendView {
  /** Unique id (the backend's base URL). */
  readonly id: string;
  readonly pool: string;
  /** Requests this router currently has open on the backend. */
  readonly inflight: number;
  /** Prompt tokens of those requests whose first output token has not come back yet (their prefill is pending). */
  readonly pendingPrefillTokens: number;
  /** Epoch-ms until which the backend is avoided after a connection failure (0: healthy). */
  readonly ejectedUntil: number;
}

/**
 * The least-loaded backend among `backends` not in `exclude`: the fewest prompt tokens still awaiting their
 * prefill, then the fewest requests in flight. Prefill first because a new request starts only after the
 * prompts queued ahead of it: vLLM schedules running requests before waiting ones, so a 5-token answer that
 * lands behind a 10,000-token prompt waits the whole prefill (~0.7 s on the emulator's H100) and misses a
 * 40 ms mean-TPOT SLO by far, whereas one more request decoding alongside slows each step only a little. In the SLO
 * benchmark's simulated twin this rule met the SLO for more requests than fewest-in-flight alone in 10 of 12
 * runs (seeds 1-6 x 120 and 40 ms) and as many in the other two (docs/benchmarks.md).
 *
 * Backends ejected after a recent connection failure are used only when no other one is left. Ties are
 * broken by `tieBreak` (a rotating counter), so equally loaded backends take turns.
 */
export function leastLoaded<B extends BackendView>(
  backends: readonly B[],
  opts: { now: number; exclude?: ReadonlySet<string>; tieBreak?: number },
): B | undefined {
  const open = backends.filter((b) => !opts.exclude?.has(b.id));
  if (open.length === 0) return undefined;
  const healthy = open.filter((b) => b.ejectedUntil <= opts.now);
  const pool = healthy.length > 0 ? healthy : open;
  let minPrefill = Infinity;
  let minInflight = Infinity;
  for (const b of pool) {
    if (b.pendingPrefillTokens < minPrefill || (b.pendingPrefillTokens === minPrefill && b.inflight < minInflight)) {
      minPrefill = b.pendingPrefillTokens;
      minInflight = b.inflight;
    }
  }
  const ties = pool.filter((b) => b.pendingPrefillTokens === minPrefill && b.inflight === minInflight);
  const t = Math.abs(Math.trunc(opts.tieBreak ?? 0));
  return ties[t % ties.length];
}

export interface AttemptInput<B extends BackendView> {
  /** The bucket's pool weights (positive shares only). */
  weights: PoolWeights;
  /** Ready backends per pool. */
  backends: ReadonlyMap<string, readonly B[]>;
  /** Backend ids already tried for this request. */
  tried: ReadonlySet<string>;
  /** Pool of the previous attempt (undefined on the first attempt). */
  previousPool?: string | undefined;
  /** Attempts made so far. */
  attempts: number;
  maxAttempts: number;
  now: number;
  /** Rotating tie-break counter per pool (see leastLoaded). */
  tieBreak?: (pool: string) => number;
  /** The weighted pick (smooth WRR or random) for the first attempt. */
  pickPool: (weights: PoolWeights, eligible: (pool: string) => boolean) => string | undefined;
}

export type AttemptPlan<B> =
  | { kind: 'try'; pool: string; backend: B }
  | { kind: 'give-up'; reason: 'no-backend' | 'attempts-exhausted' | 'all-failed' };

/**
 * Where the next attempt goes.
 *  - First attempt: a pool by the weighted pick among the bucket's pools that have a ready backend
 *    (preferring pools with a non-ejected one), then its least-loaded backend.
 *  - Retry: another untried backend of the same pool first; then the pool with the largest weight for the
 *    bucket (ties by name) that still has an untried backend. Pools without weight for the bucket are never
 *    used — the split is what the solver bought capacity for.
 */
export function planAttempt<B extends BackendView>(input: AttemptInput<B>): AttemptPlan<B> {
  const { weights, backends, tried, now } = input;
  if (input.attempts >= input.maxAttempts) return { kind: 'give-up', reason: 'attempts-exhausted' };
  const untried = (pool: string) => (backends.get(pool) ?? []).filter((b) => !tried.has(b.id));
  const pickIn = (pool: string): AttemptPlan<B> | undefined => {
    const backend = leastLoaded(untried(pool), { now, tieBreak: input.tieBreak?.(pool) ?? 0 });
    return backend ? { kind: 'try', pool, backend } : undefined;
  };

  if (input.attempts === 0 || input.previousPool === undefined) {
    const healthy = (pool: string) => untried(pool).some((b) => b.ejectedUntil <= now);
    const any = (pool: string) => untried(pool).length > 0;
    const hasHealthy = [...weights.keys()].some((p) => (weights.get(p) ?? 0) > 0 && healthy(p));
    const pool = input.pickPool(weights, hasHealthy ? healthy : any);
    const plan = pool === undefined ? undefined : pickIn(pool);
    return plan ?? { kind: 'give-up', reason: input.attempts === 0 ? 'no-backend' : 'all-failed' };
  }

  const same = pickIn(input.previousPool);
  if (same) return same;
  const others = [...weights.entries()]
    .filter(([p, w]) => w > 0 && p !== input.previousPool && untried(p).length > 0)
    .sort(([a, wa], [b, wb]) => wb - wa || (a < b ? -1 : a > b ? 1 : 0));
  for (const [pool] of others) {
    const plan = pickIn(pool);
    if (plan) return plan;
  }
  return { kind: 'give-up', reason: 'all-failed' };
}

/** Where a proxied attempt failed. */
export type FailurePhase =
  /** Before the backend's response headers arrived (connect refused/timeout, reset, hang-up). */
  | 'before-response'
  /** After the response started (headers or body already forwarded). */
  | 'after-response';

/**
 * Retry iff the failure happened before the backend answered AND nothing has been sent to the client yet
 * AND attempts remain. Once a byte went to the client, a retry could duplicate or splice output: never.
 * A client that went away is never retried either.
 */
export function shouldRetry(f: { phase: FailurePhase; clientBytesSent: boolean; clientGone: boolean; attempts: number; maxAttempts: number }): boolean {
  return f.phase === 'before-response' && !f.clientBytesSent && !f.clientGone && f.attempts < f.maxAttempts;
}
