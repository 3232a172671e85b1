/**
 * Retry back-off for failed workload observations (pure; the controller owns the state and the clock).
 *
 * After a failure the controller keeps the last allocation, sets MetricsAvailable=False and retries after
 * `nextRetryDelayMs(consecutiveFailures)`: initial × multiplier^(failures-1), capped, optionally jittered with
 * a random number the caller passes in (so tests and replays are deterministic). A success resets it.
 */

export interface BackoffPolicy {
  /** Delay after the first failure. */
  initialMs: number;
  /** Upper bound of the delay. */
  maxMs: number;
  multiplier: number;
  /** 0…1: the delay is drawn from [d·(1-jitter), d]; 0 = deterministic. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 5_000, maxMs: 300_000, multiplier: 2, jitter: 0 };

/**
 * Delay before the next attempt after `consecutiveFailures` failures in a row (0 → 0: no back-off).
 * `random` ∈ [0, 1) is only used when the policy has jitter.
 */
export function nextRetryDelayMs(consecutiveFailures: number, policy: BackoffPolicy = DEFAULT_BACKOFF, random = 1): number {
  if (!Number.isFinite(consecutiveFailures) || consecutiveFailures <= 0) return 0;
  const initial = Math.max(0, policy.initialMs);
  const max = Math.max(initial, policy.maxMs);
  const mult = Math.max(1, policy.multiplier);
  // Exponent capped so the power never overflows; the cap on the delay applies long before.
  const exp = Math.min(consecutiveFailures - 1, 64);
  const base = Math.min(max, initial * mult ** exp);
  const jitter = Math.min(1, Math.max(0, policy.jitter));
  const r = Math.min(1, Math.max(0, random));
  return Math.round(base * (1 - jitter * (1 - r)));
}

export interface BackoffState {
  consecutiveFailures: number;
  /** When the last observation failed / succeeded (ISO). */
  lastFailureAt?: string;
  lastSuccessAt?: string;
  /** Reason of the last failure (e.g. 'QueryFailed'). */
  lastReason?: string;
  /** Earliest time to observe again after a failure (ISO); undefined after a success (use the solve interval). */
  retryAt?: string;
}

export const INITIAL_BACKOFF_STATE: BackoffState = { consecutiveFailures: 0 };

/** The state after an observation at `now`. */
export function recordObservation(
  state: BackoffState,
  outcome: { ok: true } | { ok: false; reason: string },
  now: Date,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  random = 1,
): BackoffState {
  if (outcome.ok) {
    const next: BackoffState = { consecutiveFailures: 0, lastSuccessAt: now.toISOString() };
    if (state.lastFailureAt !== undefined) next.lastFailureAt = state.lastFailureAt;
    return next;
  }
  const failures = state.consecutiveFailures + 1;
  const next: BackoffState = {
    consecutiveFailures: failures,
    lastFailureAt: now.toISOString(),
    lastReason: outcome.reason,
    retryAt: new Date(now.getTime() + nextRetryDelayMs(failures, policy, random)).toISOString(),
  };
  if (state.lastSuccessAt !== undefined) next.lastSuccessAt = state.lastSuccessAt;
  return next;
}

/** Whether an observation may run at `now` (always true unless a failure scheduled a later retry). */
export function mayObserve(state: BackoffState, now: Date): boolean {
  return state.retryAt === undefined || now.getTime() >= Date.parse(state.retryAt);
}
