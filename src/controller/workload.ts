import { parseDurationMs, type LLMService } from '../api/index.js';
import type { WorkloadOverride } from '../solver/from-api.js';
import { INITIAL_BACKOFF_STATE, mayObserve, recordObservation, type BackoffPolicy, type BackoffState } from '../workload/backoff.js';
import { metricsAvailableCondition, toWorkloadOverride, type WorkloadObservation } from '../workload/source.js';

// Where the request rate and size distribution come from. The reconciler only sees this interface; the
// Static source reads the spec, and the Prometheus source (P4) plugs in through `WorkloadSources` without
// touching the reconciler. A failing measured source falls back to spec.workload.static when the spec has
// one (the examples document it as "used until Prometheus has data") and says so in MetricsAvailable.

export type WorkloadSourceName = 'Static' | 'Prometheus';

export interface MetricsConditionUpdate {
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

export type WorkloadEstimate =
  | {
      ok: true;
      /** Passed to instanceFromService: the measured (or static) rate and distribution. */
      override: WorkloadOverride;
      source: WorkloadSourceName;
      requestsPerSecond: number;
      window?: string;
      metrics: MetricsConditionUpdate;
      /** True when a measured source failed and the static workload stands in. */
      fallback: boolean;
    }
  | { ok: false; reason: string; message: string; metrics: MetricsConditionUpdate; /** Back-off: observe again no sooner than this. */ retryInMs?: number };

export interface WorkloadSource {
  estimate(service: LLMService, signal?: AbortSignal): Promise<WorkloadEstimate>;
}

/** spec.workload.static, verbatim. */
export class StaticWorkloadSource implements WorkloadSource {
  async estimate(service: LLMService): Promise<WorkloadEstimate> {
    const s = service.spec.workload.static;
    if (!s) {
      const message = 'spec.workload.static is missing: no request rate or size distribution to plan for';
      return { ok: false, reason: 'NoWorkload', message, metrics: { status: 'False', reason: 'NoWorkload', message } };
    }
    return {
      ok: true,
      override: { requestsPerSecond: s.requestsPerSecond, distribution: s.distribution },
      source: 'Static',
      requestsPerSecond: s.requestsPerSecond,
      metrics: { status: 'True', reason: 'StaticWorkload', message: `planning for the static workload in the spec: ${s.requestsPerSecond} req/s` },
      fallback: false,
    };
  }
}

/** Dispatches on spec.workload.source; a missing or failing measured source falls back to Static. */
export class WorkloadSources implements WorkloadSource {
  private readonly fallback = new StaticWorkloadSource();

  constructor(private readonly sources: Partial<Record<WorkloadSourceName, WorkloadSource>> = {}) {}

  async estimate(service: LLMService, signal?: AbortSignal): Promise<WorkloadEstimate> {
    const name = service.spec.workload.source;
    if (name === 'Static') return (this.sources.Static ?? this.fallback).estimate(service, signal);
    const source = this.sources[name];
    const measured: WorkloadEstimate = source
      ? await source.estimate(service, signal)
      : {
          ok: false,
          reason: 'SourceNotAvailable',
          message: `workload source ${name} is not available in this operator build`,
          metrics: { status: 'False', reason: 'SourceNotAvailable', message: `workload source ${name} is not available in this operator build` },
        };
    if (measured.ok) return measured;
    const stat = await this.fallback.estimate(service);
    if (!stat.ok) return measured;
    const message = `${measured.metrics.message}; planning with spec.workload.static (${stat.requestsPerSecond} req/s) instead`;
    return { ...stat, fallback: true, metrics: { status: 'False', reason: measured.metrics.reason, message } };
  }
}

// ---------------------------------------------------------------------------------------------
// The measured source (P4): src/workload's observation-based sources behind this seam.

/** An observation source from src/workload (`SpecWorkloadSource`, `PrometheusWorkloadSource`, or a fake). */
export interface WorkloadObserver {
  observe(service: LLMService, now: Date): Promise<WorkloadObservation>;
}

export interface ObservedWorkloadOptions {
  now?: () => Date;
  /** Back-off after failed observations; default: the service's solveInterval, doubling, capped at 5 min. */
  backoff?: (service: LLMService) => BackoffPolicy;
}

/**
 * Adapts a src/workload observer to the controller's WorkloadSource: the MetricsAvailable condition from the
 * observation (`metricsAvailableCondition`), "not size-aware" when vLLM's histograms stand in for the router,
 * and per-service back-off: after a failure the next observation waits `nextRetryDelayMs(failures)`; until
 * then the last failure is returned again (a watch event does not hammer Prometheus). A failure is never a
 * reason to scale: the planner holds the last allocation (planner.ts).
 */
export class ObservedWorkloadSource implements WorkloadSource {
  private readonly state = new Map<string, { backoff: BackoffState; lastFailure?: WorkloadEstimate & { ok: false } }>();
  private readonly now: () => Date;

  constructor(
    private readonly observer: WorkloadObserver,
    private readonly options: ObservedWorkloadOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
  }

  forget(service: LLMService): void {
    this.state.delete(keyOfService(service));
  }

  async estimate(service: LLMService): Promise<WorkloadEstimate> {
    const key = keyOfService(service);
    const now = this.now();
    const st = this.state.get(key) ?? { backoff: INITIAL_BACKOFF_STATE };
    if (st.lastFailure && !mayObserve(st.backoff, now)) {
      return { ...st.lastFailure, retryInMs: Math.max(0, Date.parse(st.backoff.retryAt ?? now.toISOString()) - now.getTime()) };
    }
    const o = await this.observer.observe(service, now);
    const policy = this.options.backoff?.(service) ?? defaultBackoffFor(service);
    const backoff = recordObservation(st.backoff, o, now, policy);
    if (!o.ok) {
      const retryInMs = Math.max(0, Date.parse(backoff.retryAt ?? now.toISOString()) - now.getTime());
      const cond = metricsAvailableCondition(o);
      const message = `${o.message}; keeping the last allocation, retry ${backoff.consecutiveFailures > 1 ? `#${backoff.consecutiveFailures} ` : ''}in ${Math.round(retryInMs / 1000)}s`;
      const failure: WorkloadEstimate & { ok: false } = { ok: false, reason: o.reason, message, metrics: { status: 'False', reason: cond.reason, message }, retryInMs };
      this.state.set(key, { backoff, lastFailure: failure });
      return failure;
    }
    this.state.set(key, { backoff });
    const cond = metricsAvailableCondition(o);
    let message = cond.message;
    if (!o.sizeAware && !/not size-aware/.test(message)) message = `${message} (not size-aware: sizes assumed independent)`;
    if (!o.sizeAware && !service.spec.router.enabled) message = `${message}; no router: input and output sizes assumed independent`;
    return {
      ok: true,
      override: toWorkloadOverride(o),
      source: o.source === 'static' ? 'Static' : 'Prometheus',
      requestsPerSecond: o.requestsPerSecond,
      ...(o.window ? { window: o.window } : {}),
      metrics: { status: 'True', reason: cond.reason, message },
      fallback: false,
    };
  }
}

const keyOfService = (s: LLMService) => `${s.metadata.namespace ?? 'default'}/${s.metadata.name}`;

/** initial = solveInterval, ×2 per failure, capped at max(5 min, solveInterval). */
export function defaultBackoffFor(service: LLMService): BackoffPolicy {
  let interval = 60_000;
  try {
    interval = parseDurationMs(service.spec.policy.solveInterval);
  } catch {
    /* schema-validated; keep the default */
  }
  return { initialMs: interval, maxMs: Math.max(300_000, interval), multiplier: 2, jitter: 0 };
}

/**
 * The operator's `credentials` callback for PrometheusWorkloadSource until Secret references are wired
 * (src/workload/secrets.ts `prometheusCredentials` does the reading; it needs `secrets: get`). A service that
 * references a Secret gets MetricsAvailable=False InvalidConfig rather than unauthenticated queries.
 */
export async function unresolvedCredentials(service: LLMService): Promise<Record<string, never>> {
  const p = service.spec.workload.prometheus;
  if (p?.bearerTokenSecretRef || p?.caSecretRef) {
    throw new Error('bearerTokenSecretRef/caSecretRef are not supported by this operator build yet (it has no RBAC to read Secrets); use a Prometheus reachable without them');
  }
  return {};
}
