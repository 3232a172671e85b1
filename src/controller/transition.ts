// Make before break, then a bounded drain: how many replicas each pool's Deployment gets right now, given the
// target allocation, what the Deployments report, the clock and what the previous pass remembered. Pure.
//
// 1. While any pool of the target lacks ready capacity, no pool is scaled below its current size (old GPU
//    types keep serving until the new ones are ready). A pool that never becomes ready therefore holds the old
//    capacity indefinitely, which the status reports.
// 2. Once every target pool is ready, surplus waits out the stabilization window: new capacity that is ready
//    for a moment (a crash-looping model server passes one readiness probe) must stay ready before anything it
//    replaces goes. Any shortfall in between restarts the window.
// 3. Then surplus is removed in steps of at most maxStep replicas per pool, one step per stepInterval, and only
//    when the Deployment controller has seen the previous step (so the next step is decided on the result).
// Surplus is only ever what lies above the target, and only while every target pool has its ready replicas:
// the ready capacity therefore never drops below the target's, which carries the demand.

export interface PoolObservation {
  pool: string;
  /** A Deployment for this pool exists. */
  exists: boolean;
  /** Its spec.replicas. */
  replicas: number;
  readyReplicas: number;
  /** The Deployment controller has observed the latest spec (status.observedGeneration ≥ generation). */
  observed: boolean;
}

export interface Shortfall {
  pool: string;
  ready: number;
  want: number;
}

export interface DrainPolicy {
  stabilizationMs: number;
  /** Most replicas removed from one pool per step. */
  maxStep: number;
  /** Least time between two steps. */
  stepIntervalMs: number;
}

/** What one pass hands to the next (kept in memory: a restart only makes the drain start over, later). */
export interface DrainState {
  /** Epoch ms since when every target pool has been ready with surplus left. */
  readySince?: number;
  /** Epoch ms of the last step that removed replicas. */
  lastStepAt?: number;
}

export interface TransitionPlan {
  /** Replicas to apply per pool: every pool of the target plus every pool with a Deployment. */
  replicas: Record<string, number>;
  /** Pools kept above their target: new capacity not ready yet, stabilizing, or draining step by step. */
  holding: Array<{ pool: string; replicas: number; target: number }>;
  /** Target pools whose ready replicas are below target. */
  waitingFor: Shortfall[];
  /** Nothing pending once `replicas` is applied: every target pool is ready and no pool is held above target. */
  complete: boolean;
  /** Why surplus is still held although the target is ready: the window, or the paced drain. */
  draining?: { phase: 'stabilizing'; until: number } | { phase: 'stepping'; maxStep: number };
  state: DrainState;
  /** Come back then to continue the drain (undefined: nothing time-based pending). */
  requeueAfterMs?: number;
}

/** No window and unbounded steps: surplus goes as soon as the target is ready (the behaviour before P5). */
export const IMMEDIATE: DrainPolicy = { stabilizationMs: 0, maxStep: Number.MAX_SAFE_INTEGER, stepIntervalMs: 0 };

/** A settled Deployment whose step did not go through yet is polled this often (its events usually come first). */
const SETTLE_POLL_MS = 2_000;

export function planTransition(
  target: Readonly<Record<string, number>>,
  observed: readonly PoolObservation[],
  now = 0,
  policy: DrainPolicy = IMMEDIATE,
  prev: DrainState = {},
): TransitionPlan {
  const byPool = new Map(observed.map((o) => [o.pool, o]));
  const pools = [...new Set([...Object.keys(target), ...observed.filter((o) => o.exists).map((o) => o.pool)])];
  const want = (p: string) => Math.max(0, target[p] ?? 0);
  const current = (p: string) => (byPool.get(p)?.exists ? (byPool.get(p)?.replicas ?? 0) : 0);
  // Ready counts only once the Deployment controller has seen the latest spec: a stale status may still
  // describe the previous template.
  const ready = (p: string) => {
    const o = byPool.get(p);
    return o?.exists && o.observed ? o.readyReplicas : 0;
  };

  const waitingFor = pools.filter((p) => want(p) > 0 && ready(p) < want(p)).map((p) => ({ pool: p, ready: ready(p), want: want(p) }));
  const surplus = pools.filter((p) => current(p) > want(p));
  const replicas: Record<string, number> = {};
  for (const p of pools) replicas[p] = Math.max(current(p), want(p));
  const holdAll = () => surplus.map((p) => ({ pool: p, replicas: current(p), target: want(p) }));

  if (surplus.length === 0) return { replicas, holding: [], waitingFor, complete: waitingFor.length === 0, state: {} };
  if (waitingFor.length > 0) return { replicas, holding: holdAll(), waitingFor, complete: false, state: {} };

  const readySince = prev.readySince ?? now;
  const until = readySince + policy.stabilizationMs;
  if (now < until) {
    const state = { readySince, ...(prev.lastStepAt !== undefined ? { lastStepAt: prev.lastStepAt } : {}) };
    return { replicas, holding: holdAll(), waitingFor, complete: false, draining: { phase: 'stabilizing', until }, state, requeueAfterMs: until - now };
  }
  const nextStepAt = prev.lastStepAt === undefined ? now : prev.lastStepAt + policy.stepIntervalMs;
  if (now < nextStepAt) {
    const state = { readySince, lastStepAt: prev.lastStepAt! };
    return { replicas, holding: holdAll(), waitingFor, complete: false, draining: { phase: 'stepping', maxStep: policy.maxStep }, state, requeueAfterMs: nextStepAt - now };
  }
  // One step: each surplus pool whose previous change was observed moves at most maxStep toward its target.
  const step = Math.max(1, policy.maxStep);
  let stepped = false;
  const holding: TransitionPlan['holding'] = [];
  for (const p of surplus) {
    const o = byPool.get(p);
    const next = o?.observed === false ? current(p) : Math.max(want(p), current(p) - step);
    if (next < current(p)) stepped = true;
    replicas[p] = next;
    if (next > want(p)) holding.push({ pool: p, replicas: next, target: want(p) });
  }
  const lastStepAt = stepped ? now : prev.lastStepAt;
  const state = { readySince, ...(lastStepAt !== undefined ? { lastStepAt } : {}) };
  if (holding.length === 0) return { replicas, holding, waitingFor, complete: true, state: {} };
  const requeueAfterMs = stepped ? Math.max(policy.stepIntervalMs, 1) : SETTLE_POLL_MS;
  return { replicas, holding, waitingFor, complete: false, draining: { phase: 'stepping', maxStep: step }, state, requeueAfterMs };
}
