import { API_VERSION, LLMSERVICE_KIND, LLMServiceConditionTypes as C, isConditionTrue, parseDurationMs, parseLLMService, parseMoney, type LLMService } from '../api/index.js';
import type { SolveInput, SolveResult } from '../solver/index.js';
import { totalOf } from './allocation.js';
import { UNSCHEDULABLE_RETRY_MS, decideAvailability, describeCap, type PoolAvailability } from './availability.js';
import { APPLIED_HASH_ANNOTATION } from './constants.js';
import { buildDeployment } from './desired.js';
import type { EventSink } from './events.js';
import { apiMessageOf, httpStatusOf, isNamespaceTerminating } from './kube.js';
import type { Logger } from './logger.js';
import { forgetService, type Metrics } from './metrics.js';
import { noticesFor } from './notices.js';
import { Planner } from './planner.js';
import { SharedPools } from './shared-pools.js';
import { buildStatus, mergePatchOf, statusEqual } from './status.js';
import { planTransition, type DrainPolicy, type DrainState, type TransitionPlan } from './transition.js';
import type { ClusterView, ObservedDeployment } from './view.js';
import type { ReconcileResult } from './workqueue.js';
import type { ClusterWriter } from './writer.js';
import type { WorkloadSource } from './workload.js';
import { buildPoolService, buildRouterConfigMap, buildRouterDeployment, buildRouterService, routedSplit, routerConfig, type CoreManifest, type RouterPool } from './router.js';
import type { RouterDefaults } from './router-defaults.js';

// One level-triggered pass over one LLMService: read the snapshot, plan (planner.ts: workload, instance,
// memoised solve), plan the transition, apply Deployments, write status if it changed, emit events on
// transitions. Idempotent: running it twice on the same world makes no second write. Everything it talks to
// is injected.

export interface ReconcilerDeps {
  view: ClusterView;
  writer: ClusterWriter;
  events: EventSink;
  workload: WorkloadSource;
  solve: (input: SolveInput) => Promise<SolveResult>;
  log: Logger;
  now?: () => Date;
  metrics?: Metrics;
  /**
   * Operator-wide router defaults (--router-defaults file, --router-image on top; router-defaults.ts). With no
   * image here and no spec.router.image, no router objects are managed for the service (routing left to the user).
   */
  router?: RouterDefaults;
  /** Adds another service's key to the work queue (a co-sharer of a capped pool whose share changed). */
  enqueue?: (key: string) => void;
  /** How long a pool capped as unschedulable stays capped before it is tried again (availability.ts; default 30 min). */
  unschedulableRetryMs?: number;
}

/** A status we wrote that the cache has not caught up with yet (client-go's "mutation cache"). */
interface Written {
  fromRV: string;
  rv: string | undefined;
  status: unknown;
}

type Obj = Record<string, unknown>;

/** How often a service in a namespace being deleted is looked at again (no error, no backoff). */
export const NAMESPACE_TERMINATING_RECHECK_MS = 60_000;

export class Reconciler {
  private readonly planner: Planner;
  private readonly written = new Map<string, Written>();
  /** Applied-hash of each router object we applied, per service: an unchanged object is not re-applied. */
  private readonly routerApplied = new Map<string, Map<string, string>>();
  /** Per service, what the drain of surplus capacity remembers between passes (transition.ts). */
  private readonly drains = new Map<string, DrainState>();
  /** Per service, pools capped at their ready replicas because they cannot provision more (availability.ts). */
  private readonly availability = new Map<string, Record<string, PoolAvailability>>();
  private readonly now: () => Date;
  private readonly shared: SharedPools | undefined;

  constructor(private readonly deps: ReconcilerDeps) {
    this.now = deps.now ?? (() => new Date());
    this.shared = deps.view.services ? new SharedPools({ view: deps.view, solve: deps.solve, ...(deps.enqueue ? { enqueue: deps.enqueue } : {}) }) : undefined;
    this.planner = new Planner({ workload: deps.workload, solve: deps.solve, ...(deps.metrics ? { metrics: deps.metrics } : {}), ...(this.shared ? { shared: this.shared } : {}) });
  }

  async reconcile(key: string, log: Logger = this.deps.log): Promise<ReconcileResult> {
    const slash = key.indexOf('/');
    const namespace = key.slice(0, slash);
    const name = key.slice(slash + 1);
    const raw = this.deps.view.service(namespace, name) as Obj | undefined;
    if (!raw) {
      this.planner.forget(key);
      this.shared?.forget(key);
      this.drains.delete(key);
      this.availability.delete(key);
      this.written.delete(key);
      this.routerApplied.delete(key);
      if (this.deps.metrics) forgetService(this.deps.metrics, namespace, name);
      log.debug('LLMService gone; nothing to do (its Deployments are garbage-collected)');
      return {};
    }
    const svc = this.parse(raw, log);
    if (!svc) return {};
    if (svc.metadata.deletionTimestamp) return {};
    try {
      return await this.reconcileLive(key, namespace, name, svc, log);
    } catch (err) {
      // The namespace is being deleted: the API server refuses every new object in it and the LLMService goes
      // next. Not a failure to log and retry with backoff (Kubernetes' own controllers skip it too); a slow,
      // quiet recheck in case the namespace's deletion is stuck and the service keeps running.
      if (!isNamespaceTerminating(err)) throw err;
      log.info({ err: apiMessageOf(err), recheckInMs: NAMESPACE_TERMINATING_RECHECK_MS }, 'namespace is being deleted; creating nothing more in it');
      return { requeueAfterMs: NAMESPACE_TERMINATING_RECHECK_MS };
    }
  }

  /** The pass over a live (parsed, not deleted) service. */
  private async reconcileLive(key: string, namespace: string, name: string, svc: LLMService, log: Logger): Promise<ReconcileResult> {
    // Our own last status write wins over a cache that has not seen it yet.
    const cachedRv = svc.metadata.resourceVersion ?? '';
    const w = this.written.get(key);
    let rv: string | undefined = cachedRv;
    let prev = svc.status;
    if (w && w.fromRV === cachedRv) {
      rv = w.rv;
      prev = w.status as typeof prev; // the API server's answer to our own patch
    } else this.written.delete(key);

    const now = this.now();
    const generation = svc.metadata.generation ?? 0;
    // Model-server Deployments only (they carry the pool label); the router's own Deployment is not a pool.
    const observed = this.deps.view.deployments(namespace, svc.metadata.uid ?? '').filter((o) => o.pool !== '');
    const current = prev?.allocation ? Object.fromEntries(prev.allocation.map((a) => [a.pool, a.replicas])) : undefined;
    const refs = { profiles: this.deps.view.profiles(namespace), pools: this.deps.view.pools() };
    // Pools that could not provision their replicas are capped at what is ready for this solve.
    const retryMs = this.deps.unschedulableRetryMs ?? UNSCHEDULABLE_RETRY_MS;
    const avail = decideAvailability(observed, this.availability.get(key) ?? {}, now.getTime(), {
      provisioningTimeoutMs: parseDurationMs(svc.spec.policy.provisioningTimeout),
      retryMs,
    });
    this.availability.set(key, avail.state);
    for (const c of avail.added) {
      log.warn({ pool: c.pool, ready: c.ready, wanted: c.wanted, by: c.by }, 'GPU pool cannot provision its replicas; capping it at its ready replicas');
      void this.deps.events.emit(this.refOf(svc), 'Warning', 'PoolUnschedulable', 'Plan',
        `GPU pool ${describeCap(c)}: ${c.by === 'deployment' ? 'ProgressDeadlineExceeded' : 'no progress within policy.provisioningTimeout'}; capping it at ${c.ready} replicas and moving the rest of the load to other GPU types`);
    }
    for (const { cap, why } of avail.lifted) {
      if (why === 'gone') continue;
      log.info({ pool: cap.pool, why }, 'lifting the cap of a GPU pool that could not provision');
      void this.deps.events.emit(this.refOf(svc), 'Normal', 'PoolCapLifted', 'Plan', `GPU pool ${cap.pool}: cap of ${cap.ready} replicas lifted (${why === 'retry' ? 'retry window passed; trying it again' : why === 'progressed' ? 'it has more ready replicas' : 'its Deployment template changed'})`);
    }
    const { outcome, metrics, nextSolveInMs } = await this.planner.plan(key, svc, refs, current, now, log, avail.caps);

    // Plan and apply. A held outcome never touches a Deployment (never scale anything because of bad input).
    let transition: TransitionPlan | undefined;
    let applyError: string | undefined;
    const after: ObservedDeployment[] = observed.map((o) => ({ ...o }));
    const drain = drainPolicyOf(svc);
    if (outcome.kind === 'allocated') {
      transition = planTransition(outcome.decision.replicas, observed, now.getTime(), drain, this.drains.get(key));
      applyError = await this.apply(svc, transition, observed, after, log);
      if (applyError) this.drains.delete(key);
      else this.drains.set(key, transition.state);
    } else if (current) {
      // Held: nothing is applied; the plan only reports where the Deployments stand.
      transition = planTransition(current, observed, now.getTime(), drain, this.drains.get(key));
    }

    const next = buildStatus(prev, {
      generation,
      now,
      metrics,
      outcome,
      observed: after,
      ...(transition ? { transition } : {}),
      ...(applyError ? { applyError } : {}),
      ...(avail.capped.length > 0 ? { unschedulable: avail.capped, retryMs } : {}),
    });
    const routerError = await this.applyRouter(key, svc, next, after, log);
    if (routerError) log.warn({ error: routerError }, 'router objects rejected by the API server');
    if (!statusEqual(prev, next)) {
      const res = await this.deps.writer.patchServiceStatus(namespace, name, rv, mergePatchOf(prev ?? {}, next));
      this.written.set(key, { fromRV: cachedRv, rv: res.resourceVersion, status: res.status ?? next });
      log.info({ ready: isConditionTrue(next.conditions, C.Ready), mix: next.mix, costPerHour: next.costPerHour, observedGeneration: generation }, 'status updated');
      // Not awaited: events are sent in the background (events.ts), the reconcile's writes are done.
      for (const n of noticesFor(prev, next)) void this.deps.events.emit(this.refOf(svc), n.type, n.reason, n.action, n.note);
    } else log.debug('status unchanged; no write');
    this.record(namespace, name, next);
    // Finishing a drain is time-based (window, step interval): come back for it even if nothing else changes.
    // So are the availability caps: a retry, or the operator's own provisioning deadline.
    const drainDue = outcome.kind === 'allocated' ? transition?.requeueAfterMs : undefined;
    return { requeueAfterMs: Math.min(nextSolveInMs, drainDue ?? Infinity, avail.requeueAfterMs ?? Infinity) };
  }

  /** Decisions over shared capped pools computed so far (tests: N sharers, one computation). */
  get jointComputations(): number {
    return this.shared?.computations ?? 0;
  }

  private parse(raw: Obj, log: Logger): LLMService | undefined {
    const r = parseLLMService(raw, { strict: false });
    if (r.ok) return r.value;
    // A status we cannot read (older operator, hand edits) is rebuilt from scratch rather than blocking.
    const { status: _s, ...rest } = raw;
    const bare = parseLLMService(rest, { strict: false });
    if (bare.ok) {
      log.warn({ errors: r.errors }, 'ignoring an unreadable status; it will be rewritten');
      return bare.value;
    }
    log.error({ errors: bare.errors }, 'LLMService does not match the schema; skipping it');
    return undefined;
  }

  /** Applies the planned replicas; returns a user-facing error if the API server rejected a Deployment. */
  private async apply(svc: LLMService, plan: TransitionPlan, observed: readonly ObservedDeployment[], after: ObservedDeployment[], log: Logger): Promise<string | undefined> {
    const pools = this.deps.view.pools();
    const errors: string[] = [];
    for (const [poolName, replicas] of Object.entries(plan.replicas)) {
      const existing = observed.find((o) => o.pool === poolName);
      if (!existing && replicas === 0) continue; // only types with replicas, or previously created
      const option = svc.spec.gpus.find((g) => g.pool === poolName);
      const pool = pools.find((p) => p.metadata.name === poolName);
      if (!option || !pool) {
        // A pool dropped from spec.gpus: its Deployment only scales (to 0 once the new capacity is ready).
        if (existing && existing.replicas !== replicas) {
          await this.deps.writer.scaleDeployment(svc.metadata.namespace ?? 'default', existing.name, replicas);
          log.info({ deployment: existing.name, replicas }, 'scaled Deployment of a pool no longer in spec.gpus');
        }
        continue;
      }
      const desired = buildDeployment({ service: svc, pool, gpusPerReplica: option.gpusPerReplica, replicas });
      if (existing && existing.appliedHash === desired.metadata.annotations[APPLIED_HASH_ANNOTATION] && existing.replicas === replicas) continue;
      try {
        await this.deps.writer.applyDeployment(desired);
      } catch (err) {
        const code = httpStatusOf(err);
        // 400/422: the template itself is invalid; retrying will not help until the spec changes.
        if (code === 400 || code === 422) {
          errors.push(`Deployment ${desired.metadata.name}: ${apiMessageOf(err)}`);
          continue;
        }
        throw err;
      }
      log.info({ deployment: desired.metadata.name, replicas, from: existing?.replicas ?? null }, existing ? 'applied Deployment' : 'created Deployment');
      const i = after.findIndex((o) => o.pool === poolName);
      const updated = { ...(existing ?? { name: desired.metadata.name, pool: poolName, readyReplicas: 0, observed: false }), exists: true, replicas };
      if (i >= 0) after[i] = updated;
      else after.push(updated);
    }
    return errors.length > 0 ? errors.join('; ') : undefined;
  }

  /**
   * spec.router.enabled: the router's ConfigMap (split restricted to pools with ready replicas), one headless
   * Service per pool, the router Deployment and the Service `<svc>`. Needs a writer with applyCore.
   */
  private async applyRouter(key: string, svc: LLMService, status: NonNullable<LLMService['status']>, after: readonly ObservedDeployment[], log: Logger): Promise<string | undefined> {
    const apply = this.deps.writer.applyCore?.bind(this.deps.writer);
    const image = svc.spec.router.image ?? this.deps.router?.image;
    if (!apply || !svc.spec.router.enabled || !image || !status.split) return undefined;
    const poolsById = new Map(this.deps.view.pools().map((p) => [p.metadata.name, p]));
    const profilesByName = new Map(this.deps.view.profiles(svc.metadata.namespace ?? 'default').map((p) => [p.metadata.name, p]));
    const pools: RouterPool[] = svc.spec.gpus.flatMap((g) => {
      const p = poolsById.get(g.pool);
      if (!p) return [];
      // The GPU type's latency model for the router's SLO guard. No profile, no model in it, or a profile of
      // another GPU type (the planner reports that one): the pool has no model, which the guard just skips.
      const prof = profilesByName.get(g.profile)?.spec;
      const model = prof?.gpuType === p.spec.gpuType ? prof.latency : undefined;
      return [{ name: g.pool, gpuType: p.spec.gpuType, ...(model ? { latency: model } : {}) }];
    });
    if (pools.length === 0) return undefined;
    const ready = Object.fromEntries(after.filter((o) => o.exists !== false).map((o) => [o.pool, o.readyReplicas]));
    const config = routerConfig(svc, pools, routedSplit(status.split, ready));
    const objects: Array<CoreManifest | ReturnType<typeof buildRouterDeployment>> = [
      buildRouterConfigMap(svc, config),
      ...pools.map((p) => buildPoolService(svc, p)),
      buildRouterService(svc),
      buildRouterDeployment(svc, this.deps.router),
    ];
    const seen = this.routerApplied.get(key) ?? new Map<string, string>();
    this.routerApplied.set(key, seen);
    const errors: string[] = [];
    for (const o of objects) {
      const id = `${o.kind}/${o.metadata.name}`;
      const hash = o.metadata.annotations[APPLIED_HASH_ANNOTATION] ?? '';
      if (seen.get(id) === hash) continue;
      try {
        if (o.kind === 'Deployment') await this.deps.writer.applyDeployment(o);
        else await apply(o);
      } catch (err) {
        const code = httpStatusOf(err);
        if (code === 400 || code === 422) {
          errors.push(`${id}: ${apiMessageOf(err)}`);
          continue;
        }
        throw err;
      }
      seen.set(id, hash);
      log.info({ object: id }, 'applied router object');
    }
    return errors.length > 0 ? errors.join('; ') : undefined;
  }

  private refOf(svc: LLMService) {
    return {
      apiVersion: API_VERSION,
      kind: LLMSERVICE_KIND,
      name: svc.metadata.name,
      namespace: svc.metadata.namespace ?? 'default',
      ...(svc.metadata.uid ? { uid: svc.metadata.uid } : {}),
    };
  }

  private record(namespace: string, name: string, s: NonNullable<LLMService['status']>): void {
    const m = this.deps.metrics;
    if (!m) return;
    const labels = { namespace, name };
    if (s.costPerHour !== undefined) m.cost.set(labels, parseMoney(s.costPerHour));
    if (s.savingsPercent !== undefined) m.savings.set(labels, Number(s.savingsPercent));
    if (s.allocation) m.replicas.set(labels, totalOf(Object.fromEntries(s.allocation.map((a) => [a.pool, a.replicas]))));
    m.ready.set(labels, isConditionTrue(s.conditions, C.Ready) ? 1 : 0);
  }
}

function drainPolicyOf(svc: LLMService): DrainPolicy {
  const d = svc.spec.policy.scaleDown;
  return { stabilizationMs: parseDurationMs(d.stabilization), maxStep: d.maxStep, stepIntervalMs: parseDurationMs(d.stepInterval) };
}
