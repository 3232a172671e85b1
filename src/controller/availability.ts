import { toKubeTime } from '../api/index.js';
import type { ObservedDeployment } from './view.js';

// Availability in the solve: a pool whose pods stay unschedulable (or never become ready) can only deliver
// what is ready, so the next solve caps it there and the solver moves the rest of the load to other GPU types.
// The operator watches no Pods and no Nodes: the signal is the model-server Deployment it already watches.
//
// A pool becomes *unschedulable* when its Deployment (observed by the Deployment controller) has fewer ready
// replicas than it asks for and either
//   (a) reports Progressing=False, reason ProgressDeadlineExceeded (the operator sets progressDeadlineSeconds
//       from spec.policy.provisioningTimeout), or
//   (b) has made no progress (no new ready replica, same template) for provisioningTimeout as seen by the
//       operator: the Deployment controller only applies its deadline to rollouts, never to a scale-up of a
//       Deployment that already completed, so a pool scaled up from 0 or from N needs the operator's own clock.
//       It applies only where the Deployment controller does not time (Progressing reason
//       NewReplicaSetAvailable, no condition, or a ProgressDeadlineExceeded that already made a cap).
// Its cap is its ready replicas at that moment. The cap is lifted when
//   - the pool delivers more: readyReplicas above the cap (nodes came back, pods got scheduled),
//   - its Deployment's template changed (a new rollout, e.g. the GPUPool's nodeSelector/tolerations fixed), or
//   - the retry window (UNSCHEDULABLE_RETRY_MS, 30 min) has passed since the cap was set, so a pool that got
//     nodes back without anyone noticing is tried again; the same Deployment condition does not cap it twice,
//     the operator's own deadline (b) catches it if it is still stuck.
// Pure: observations, previous state and the clock in; caps, state and what changed out.

/** Time after which a cap is lifted to try the pool again. */
export const UNSCHEDULABLE_RETRY_MS = 30 * 60_000;

export const PROGRESS_DEADLINE_EXCEEDED = 'ProgressDeadlineExceeded';
/** The Progressing reason of a completed rollout: the Deployment controller no longer times a scale-up then. */
const NEW_RS_AVAILABLE = 'NewReplicaSetAvailable';

export interface PoolCap {
  pool: string;
  /** Deployment name (for messages). */
  deployment: string;
  /** The cap: its ready replicas when it was found stuck. */
  ready: number;
  /** The replicas it asked for then. */
  wanted: number;
  /** Epoch ms when the cap was set. */
  since: number;
  /** The Deployment's applied hash then (a new template lifts the cap). */
  hash?: string;
  /** What made it: the Deployment's own deadline, or the operator's (a scale-up the Deployment controller does not time). */
  by: 'deployment' | 'operator';
}

export interface PoolAvailability {
  cap?: PoolCap;
  /** Since when the pool has been short of ready replicas without progress (epoch ms), and at what level. */
  short?: { since: number; ready: number; hash?: string };
  /** The Progressing condition a cap was already made from: it never caps twice (after a retry it is stale). */
  stamp?: string;
}

export type AvailabilityState = Readonly<Record<string, PoolAvailability>>;

export interface AvailabilityDecision {
  /** Replica caps for the solve, per pool. */
  caps: Record<string, number>;
  /** Every active cap (sorted by pool). */
  capped: PoolCap[];
  /** Caps set in this pass. */
  added: PoolCap[];
  /** Caps lifted in this pass, and why. */
  lifted: Array<{ cap: PoolCap; why: 'progressed' | 'template-changed' | 'retry' | 'gone' }>;
  state: Record<string, PoolAvailability>;
  /** Come back then: a cap's retry is due, or the operator's own deadline for a short pool. */
  requeueAfterMs?: number;
}

export interface AvailabilityPolicy {
  /** spec.policy.provisioningTimeout in ms. */
  provisioningTimeoutMs: number;
  retryMs?: number;
}

const stampOf = (o: ObservedDeployment): string | undefined =>
  o.progressing && o.progressing.status === 'False' && o.progressing.reason === PROGRESS_DEADLINE_EXCEEDED ? `${o.progressing.reason}@${o.progressing.since ?? ''}` : undefined;

export function decideAvailability(observed: readonly ObservedDeployment[], prev: AvailabilityState, now: number, policy: AvailabilityPolicy): AvailabilityDecision {
  const retryMs = policy.retryMs ?? UNSCHEDULABLE_RETRY_MS;
  const timeout = policy.provisioningTimeoutMs;
  const state: Record<string, PoolAvailability> = {};
  const added: PoolCap[] = [];
  const lifted: AvailabilityDecision['lifted'] = [];
  let due = Infinity;
  const byPool = new Map(observed.filter((o) => o.exists && o.pool !== '').map((o) => [o.pool, o]));

  for (const [pool, p] of Object.entries(prev)) if (p.cap && !byPool.has(pool)) lifted.push({ cap: p.cap, why: 'gone' });

  for (const [pool, o] of byPool) {
    const p = prev[pool] ?? {};
    const next: PoolAvailability = { ...(p.stamp !== undefined ? { stamp: p.stamp } : {}) };
    // A status the Deployment controller has not caught up with says nothing yet.
    if (!o.observed) {
      state[pool] = { ...p };
      if (p.cap) due = Math.min(due, p.cap.since + retryMs - now);
      continue;
    }
    const ready = o.readyReplicas;
    let cap = p.cap;
    if (cap) {
      const why = ready > cap.ready ? 'progressed' : cap.hash !== o.appliedHash ? 'template-changed' : now >= cap.since + retryMs ? 'retry' : undefined;
      if (why) {
        lifted.push({ cap, why });
        cap = undefined;
      }
    }
    // The operator's clock: short since when, without progress (a new ready replica or template restarts it).
    const shortNow = ready < o.replicas;
    let short = p.short;
    if (!shortNow || !short || ready > short.ready || short.hash !== o.appliedHash) short = shortNow ? { since: now, ready, ...(o.appliedHash ? { hash: o.appliedHash } : {}) } : undefined;
    // A lifted cap starts the operator's clock over: the retry gets a full provisioningTimeout.
    if (p.cap && !cap && shortNow) short = { since: now, ready, ...(o.appliedHash ? { hash: o.appliedHash } : {}) };
    if (!cap && shortNow) {
      const stamp = stampOf(o);
      // While a rollout is in progress the Deployment controller keeps the deadline itself (no race with it).
      const kcmTimes = o.progressing?.status === 'True' && o.progressing.reason !== NEW_RS_AVAILABLE;
      const by = stamp !== undefined && stamp !== p.stamp ? 'deployment' : !kcmTimes && short && now >= short.since + timeout ? 'operator' : undefined;
      if (by) {
        cap = { pool, deployment: o.name, ready, wanted: o.replicas, since: now, ...(o.appliedHash ? { hash: o.appliedHash } : {}), by };
        added.push(cap);
        if (stamp !== undefined) next.stamp = stamp;
      }
    }
    if (cap) {
      next.cap = cap;
      due = Math.min(due, cap.since + retryMs - now);
    } else if (short) {
      next.short = short;
      due = Math.min(due, short.since + timeout - now);
    }
    if (Object.keys(next).length > 0) state[pool] = next;
  }
  const capped = Object.values(state)
    .flatMap((p) => (p.cap ? [p.cap] : []))
    .sort((a, b) => a.pool.localeCompare(b.pool));
  const caps = Object.fromEntries(capped.map((c) => [c.pool, c.ready]));
  return { caps, capped, added, lifted, state, ...(Number.isFinite(due) ? { requeueAfterMs: Math.max(1000, due) } : {}) };
}

/** "pa (Deployment chat-pa) 0/3 ready since 2026-…Z" for messages and events. */
export function describeCap(c: PoolCap): string {
  return `${c.pool} (Deployment ${c.deployment}) ${c.ready}/${c.wanted} ready since ${toKubeTime(new Date(c.since))}`;
}

/** The status message about every active cap. */
export function unschedulableMessage(capped: readonly PoolCap[], retryMs = UNSCHEDULABLE_RETRY_MS): string {
  const list = capped.map((c) => `${describeCap(c)}, capped at ${c.ready} until it progresses or ${toKubeTime(new Date(c.since + retryMs))}`).join('; ');
  return `GPU pools cannot provision their replicas (pods unschedulable or not ready within policy.provisioningTimeout): ${list}; the rest of the load is planned on the other GPU types`;
}
