import { createHash } from 'node:crypto';
import type { GPUPool, LLMService } from '../api/index.js';
import { sharePool, type JointService, type ShareResult } from '../pools/joint.js';
import { instanceFromService, type ServiceInstance, type WorkloadOverride } from '../solver/from-api.js';
import type { SolveInput, SolveResult } from '../solver/index.js';
import { canonicalJson } from './desired.js';
import type { ClusterView } from './view.js';

// Services that share a capped GPUPool (spec.maxNodes set) are planned together: one pure decision per pool
// over the snapshot of every sharer (spec from the informer cache, workload from each sharer's own last
// estimate), memoised by a hash of its inputs, so the N reconciles of N sharers compute it once and each
// applies its own share (a replica cap on the pool). When a decision changes someone else's share, that
// sharer is enqueued. A sharer that cannot be re-planned right now (its workload or references fail, so its
// Deployments are left as they are) is not moved: the GPUs its allocation holds on the pool are reserved.
//
// Exact for one shared capped pool per service. A service on several shared capped pools gets each pool's
// share from that pool's decision alone: every cap is respected, but the total may not be the cheapest.

export type Share =
  /** No shared capped pool: plan alone (a pool's own maxNodes still caps the solve). */
  | { kind: 'alone' }
  /** Replica caps on the shared pools, to apply to this service's own solve. */
  | { kind: 'capped'; caps: Record<string, number> }
  | { kind: 'exhausted'; message: string }
  | { kind: 'failed'; reason: 'Timeout' | 'SolverError'; message: string };

export interface SharedPoolsDeps {
  view: ClusterView;
  solve: (input: SolveInput) => Promise<SolveResult>;
  /** Re-enqueue another sharer whose share changed. */
  enqueue?: (key: string) => void;
}

interface Decision {
  hash: string;
  result: Promise<ShareResult>;
  members: string[];
  /** Per member: its share as a comparable string, once the result is in. */
  shares?: Map<string, string>;
}

const keyOf = (s: LLMService) => `${s.metadata.namespace ?? 'default'}/${s.metadata.name}`;
export const capGPUsOf = (p: GPUPool): number | undefined => (p.spec.maxNodes === undefined ? undefined : p.spec.maxNodes * p.spec.gpusPerNode);

export class SharedPools {
  /** Each service's last workload as its planner saw it; 'held' when it could not be planned. */
  private readonly workloads = new Map<string, WorkloadOverride | 'held'>();
  private readonly decisions = new Map<string, Decision>();
  private computed = 0;

  constructor(private readonly deps: SharedPoolsDeps) {}

  /** Decisions computed so far (not served from the memo). */
  get computations(): number {
    return this.computed;
  }

  note(key: string, workload: WorkloadOverride | 'held'): void {
    this.workloads.set(key, workload);
  }

  /** A service is gone: forget it and let its co-sharers take the room it leaves. */
  forget(key: string): void {
    this.workloads.delete(key);
    for (const [pool, d] of this.decisions) {
      if (!d.members.includes(key)) continue;
      this.decisions.delete(pool);
      for (const m of d.members) if (m !== key) this.deps.enqueue?.(m);
    }
  }

  async shareFor(key: string, svc: LLMService, own: ServiceInstance): Promise<Share> {
    if (!this.deps.view.services) return { kind: 'alone' };
    const pools = new Map(this.deps.view.pools().map((p) => [p.metadata.name, p]));
    const mine = new Set(svc.spec.gpus.map((g) => g.pool));
    // Decisions this service was part of but no longer is (it dropped the pool): the others get the room.
    for (const [pool, d] of this.decisions) if (!mine.has(pool) && d.members.includes(key)) this.forgetPool(pool, key);
    // Listing every cached service is O(services) per reconcile, O(services²) per interval: only a service on a
    // capped pool needs the snapshot (bench/controller: 1,000 uncapped services).
    const capped = svc.spec.gpus.some((g) => {
      const p = pools.get(g.pool);
      return p !== undefined && capGPUsOf(p) !== undefined;
    });
    if (!capped) return { kind: 'alone' };
    const live = this.deps.view.services().filter((s) => !s.metadata.deletionTimestamp && keyOf(s) !== key);
    const caps: Record<string, number> = {};

    for (const g of svc.spec.gpus) {
      const pool = pools.get(g.pool);
      const capGPUs = pool ? capGPUsOf(pool) : undefined;
      if (!pool || capGPUs === undefined) continue;
      const others = live.filter((s) => s.spec.gpus.some((o) => o.pool === g.pool));
      if (others.length === 0) continue;
      const input = this.snapshot(g.pool, capGPUs, { key, svc, own }, others);
      const result = await this.decide(g.pool, input, key);
      if (!result.ok) return { kind: 'failed', reason: result.reason, message: `joint solve of GPUPool ${g.pool}: ${result.message}` };
      const mineShare = result.admitted.find((c) => c.id === key);
      if (!mineShare) return { kind: 'exhausted', message: exhaustedMessage(pool, capGPUs, input, result, key) };
      caps[g.pool] = mineShare.cap;
    }
    return Object.keys(caps).length === 0 ? { kind: 'alone' } : { kind: 'capped', caps };
  }

  /** The pure decision's input: every sharer's solver instance (or reservation), sorted by key. */
  private snapshot(pool: string, capGPUs: number, self: { key: string; svc: LLMService; own: ServiceInstance }, others: readonly LLMService[]): SnapshotInput {
    const services: JointService[] = [];
    const reserved: Array<{ id: string; gpus: number }> = [];
    const gprOf = (s: LLMService) => s.spec.gpus.find((g) => g.pool === pool)?.gpusPerReplica ?? 1;
    services.push({ id: self.key, input: self.own.input, gpusPerReplica: gprOf(self.svc), priority: self.svc.spec.priority });
    for (const s of others) {
      const key = keyOf(s);
      const w = this.workloads.get(key);
      const inst = w === 'held' ? undefined : instanceFromService(s, { profiles: this.deps.view.profiles(s.metadata.namespace ?? 'default'), pools: this.deps.view.pools() }, w ?? {});
      if (inst?.ok) services.push({ id: key, input: inst.value.input, gpusPerReplica: gprOf(s), priority: s.spec.priority });
      else {
        const held = s.status?.allocation?.find((a) => a.pool === pool)?.replicas ?? 0;
        if (held > 0) reserved.push({ id: key, gpus: held * gprOf(s) });
      }
    }
    services.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { pool, capGPUs, services, reserved };
  }

  private async decide(pool: string, input: SnapshotInput, self: string): Promise<ShareResult> {
    const hash = createHash('sha256').update(canonicalJson(input)).digest('hex');
    const prev = this.decisions.get(pool);
    if (prev?.hash === hash) return prev.result;
    const reservedGPUs = input.reserved.reduce((a, r) => a + r.gpus, 0);
    const members = [...input.services.map((s) => s.id), ...input.reserved.map((r) => r.id)];
    const d: Decision = { hash, members, result: sharePool(pool, input.capGPUs, input.services, this.deps.solve, reservedGPUs) };
    this.decisions.set(pool, d);
    this.computed++;
    let result: ShareResult;
    try {
      result = await d.result;
    } catch (err) {
      if (this.decisions.get(pool) === d) this.decisions.delete(pool); // never serve a crash from the memo
      throw err;
    }
    if (!result.ok) {
      // Transient: decide again on the next reconcile rather than serving a failure from the memo.
      if (this.decisions.get(pool) === d) this.decisions.delete(pool);
      return result;
    }
    d.shares = sharesOf(result, members);
    // Someone else's share moved: let it apply its new share now rather than at its next interval.
    for (const m of members) if (m !== self && prev?.shares?.get(m) !== d.shares.get(m)) this.deps.enqueue?.(m);
    return result;
  }

  private forgetPool(pool: string, leaving: string): void {
    const d = this.decisions.get(pool);
    if (!d) return;
    this.decisions.delete(pool);
    for (const m of d.members) if (m !== leaving) this.deps.enqueue?.(m);
  }
}

interface SnapshotInput {
  pool: string;
  capGPUs: number;
  services: JointService[];
  reserved: Array<{ id: string; gpus: number }>;
}

function sharesOf(r: Extract<ShareResult, { ok: true }>, members: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of members) {
    const a = r.admitted.find((c) => c.id === m);
    out.set(m, a ? `cap:${a.cap}` : r.exhausted.some((e) => e.id === m) ? 'exhausted' : 'reserved');
  }
  return out;
}

function exhaustedMessage(pool: GPUPool, capGPUs: number, input: SnapshotInput, r: Extract<ShareResult, { ok: true }>, self: string): string {
  const prio = new Map(input.services.map((s) => [s.id, s.priority ?? 0]));
  const need = (n: number | undefined) => (n === undefined ? 'more than the whole pool' : `≥ ${n}`);
  const mine = r.needs.find((n) => n.id === self);
  const reservedGPUs = input.reserved.reduce((a, x) => a + x.gpus, 0);
  const servedGPUs = r.admitted.reduce((a, c) => a + (r.needs.find((n) => n.id === c.id)?.needGPUs ?? 0), 0);
  const left = Math.max(0, capGPUs - reservedGPUs - servedGPUs);
  const parts = [
    `GPUPool ${pool.metadata.name} is capped at ${capGPUs} GPUs (maxNodes ${pool.spec.maxNodes} × ${pool.spec.gpusPerNode}) and cannot carry every service sharing it`,
    `needs: ${r.needs.map((n) => `${n.id} (priority ${prio.get(n.id) ?? 0}) ${need(n.needGPUs)}`).join(', ')}`,
  ];
  if (input.reserved.length > 0) parts.push(`${reservedGPUs} held by services that cannot be re-planned now (${input.reserved.map((x) => x.id).join(', ')})`);
  parts.push(
    `served first by priority: ${r.admitted.map((c) => c.id).join(', ') || 'none'}; ${self} needs ${need(mine?.needGPUs)} GPUs of ${pool.metadata.name} and ${left} ${left === 1 ? 'is' : 'are'} left`,
  );
  return parts.join('; ');
}
