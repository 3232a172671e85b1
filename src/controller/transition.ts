// Make before break: how many replicas each pool's Deployment gets right now, given the target allocation
// and what the Deployments report. Pure. While any pool of the target lacks ready capacity, no pool is
// scaled below its current size (old GPU types keep serving until the new ones are ready); once every
// target pool is ready, the surplus is removed. A pool that never becomes ready (no nodes of that type)
// therefore holds the old capacity indefinitely, which the status reports.

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

export interface TransitionPlan {
  /** Replicas to apply per pool: every pool of the target plus every pool with a Deployment. */
  replicas: Record<string, number>;
  /** Pools kept above their target because new capacity is not ready yet. */
  holding: Array<{ pool: string; replicas: number; target: number }>;
  /** Target pools whose ready replicas are below target. */
  waitingFor: Shortfall[];
  /** Nothing pending once `replicas` is applied: every target pool is ready and no pool is held above target. */
  complete: boolean;
}

export function planTransition(target: Readonly<Record<string, number>>, observed: readonly PoolObservation[]): TransitionPlan {
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
  const replicas: Record<string, number> = {};
  const holding: TransitionPlan['holding'] = [];
  for (const p of pools) {
    if (waitingFor.length === 0 || current(p) <= want(p)) replicas[p] = want(p);
    else {
      replicas[p] = current(p);
      holding.push({ pool: p, replicas: current(p), target: want(p) });
    }
  }
  return { replicas, holding, waitingFor, complete: waitingFor.length === 0 && holding.length === 0 };
}
