import { parseDurationMs, type LLMService } from '../api/index.js';
import type { WorkloadOverride } from '../solver/from-api.js';
import { INITIAL_BACKOFF_STATE, mayObserve, recordObservation, type BackoffPolicy, type BackoffState } from '../workload/backoff.js';
import { PROMETHEUS_CREDENTIALS_OPT_IN, prometheusCredentials, type SecretReader } from '../workload/secrets.js';
import { DEFAULT_WINDOW, metricsAvailableCondition, toWorkloadOverride, type PrometheusCredentials, type WorkloadObservation } from '../workload/source.js';

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
 * then the last failure is returned again (a watch event does not hammer Prometheus), unless spec.workload
 * changed since (a corrected URL or Secret reference is tried at once). A failure is never a reason to
 * scale: the planner holds the last allocation (planner.ts).
 *
 * Recovery after a gap in the data (a failure streak with QueryFailed, Stale or NoData: Prometheus or the scrape
 * was down, or the series are new, so the TSDB has a hole): the first good answers are not planned on until one
 * `spec.workload.prometheus.window` has passed since the first of them. Until then the rate window can start inside the hole, and `rate()` only
 * extrapolates a little past the first sample, so it under-counts (measured: 0.97 req/s for a steady 3 req/s
 * right after a Prometheus restart) and the plan would scale down on missing data. Meanwhile MetricsAvailable
 * stays False (NoData, saying until when) and the allocation is held.
 */
export class ObservedWorkloadSource implements WorkloadSource {
  private readonly state = new Map<
    string,
    {
      backoff: BackoffState;
      lastFailure?: WorkloadEstimate & { ok: false };
      workload?: string;
      /** The failure streak included a gap reason (or interrupted a hold): the first such reason. */
      gap?: string;
      /** Hold good answers until (ms). */
      warmUntil?: number;
    }
  >();
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
    const workload = JSON.stringify(service.spec.workload);
    const prev = this.state.get(key);
    const st = prev && prev.workload === workload ? prev : { backoff: INITIAL_BACKOFF_STATE };
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
      const gap = st.gap ?? (GAP_REASONS.has(o.reason) || st.warmUntil !== undefined ? o.reason : undefined);
      this.state.set(key, { backoff, lastFailure: failure, workload, ...(gap !== undefined ? { gap } : {}) });
      return failure;
    }
    if (o.source !== 'static') {
      const warmUntil = st.warmUntil ?? (st.gap !== undefined ? now.getTime() + windowMsOf(service) : undefined);
      if (warmUntil !== undefined && now.getTime() < warmUntil) {
        this.state.set(key, { backoff, workload, warmUntil, ...(st.gap !== undefined ? { gap: st.gap } : {}) });
        const retryInMs = warmUntil - now.getTime();
        const message =
          `Prometheus answers again (${fmtRate(o.requestsPerSecond)} req/s over ${o.window ?? '?'}), but that window may still span ` +
          `the gap in the data (after ${st.gap ?? 'the failure'}) and under-count; keeping the last allocation until ` +
          `${new Date(warmUntil).toISOString()} (in ${Math.ceil(retryInMs / 1000)}s), when the window holds only new samples`;
        return { ok: false, reason: 'NoData', message, metrics: { status: 'False', reason: 'NoData', message }, retryInMs };
      }
    }
    this.state.set(key, { backoff, workload });
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

/** Failures after which Prometheus' TSDB may have a hole (see ObservedWorkloadSource). */
const GAP_REASONS = new Set(['QueryFailed', 'Stale', 'NoData']);

function windowMsOf(service: LLMService): number {
  try {
    return parseDurationMs(service.spec.workload.prometheus?.window ?? DEFAULT_WINDOW);
  } catch {
    return parseDurationMs(DEFAULT_WINDOW);
  }
}

const fmtRate = (r: number) => String(Number(r.toPrecision(4)));

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
 * A `credentials` callback for an operator build without `secrets: get` (embedders that strip that rule): a
 * service that references a Secret gets MetricsAvailable=False InvalidConfig rather than unauthenticated
 * queries. The CLI operator uses `SecretCredentials`.
 */
export async function unresolvedCredentials(service: LLMService): Promise<Record<string, never>> {
  const p = service.spec.workload.prometheus;
  if (p?.bearerTokenSecretRef || p?.caSecretRef) {
    throw new Error('bearerTokenSecretRef/caSecretRef are not supported by this operator build yet (it has no RBAC to read Secrets); use a Prometheus reachable without them');
  }
  return {};
}

export interface SecretCredentialsOptions {
  /**
   * Resolved credentials are reused for this long (default 10 s; 0 = read on every observation), so a burst of
   * reconciles (watch events) costs one GET per Secret. Only successes are cached: a fixed Secret (created,
   * labelled, key added) is used on the next observation; a rotated token or a removed opt-in label takes
   * effect within this time.
   */
  ttlMs?: number;
  /** Clock (ms), injectable for tests. */
  now?: () => number;
}

export const DEFAULT_SECRET_CREDENTIALS_TTL_MS = 10_000;

/**
 * The operator's `credentials` callback for PrometheusWorkloadSource: resolves spec.workload.prometheus
 * `bearerTokenSecretRef` / `caSecretRef` by GETting the Secret in the LLMService's namespace (never list or
 * watch: RBAC `secrets: get` only), and uses it only if it carries `melange.dev/prometheus-credentials: "true"`
 * (src/workload/secrets.ts explains why). Errors name the spec field and become MetricsAvailable=False
 * InvalidConfig; the value never appears in a message.
 */
export class SecretCredentials {
  private readonly cache = new Map<string, { at: number; creds: PrometheusCredentials }>();
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(
    private readonly core: SecretReader,
    options: SecretCredentialsOptions = {},
  ) {
    this.ttlMs = Math.max(0, options.ttlMs ?? DEFAULT_SECRET_CREDENTIALS_TTL_MS);
    this.now = options.now ?? Date.now;
  }

  /** The callback (bound): `new PrometheusWorkloadSource({ credentials: secrets.resolve })`. */
  readonly resolve = async (service: LLMService): Promise<PrometheusCredentials> => {
    const p = service.spec.workload.prometheus;
    if (!p?.bearerTokenSecretRef && !p?.caSecretRef) return {};
    const key = `${keyOfService(service)}|${JSON.stringify([p.bearerTokenSecretRef ?? null, p.caSecretRef ?? null])}`;
    const t = this.now();
    for (const [k, e] of this.cache) if (t - e.at >= this.ttlMs) this.cache.delete(k); // bounded by live services
    const hit = this.cache.get(key);
    if (hit) return { ...hit.creds };
    const creds = await prometheusCredentials(this.core, service, { requireLabel: PROMETHEUS_CREDENTIALS_OPT_IN });
    if (this.ttlMs > 0) this.cache.set(key, { at: t, creds });
    return { ...creds };
  };
}
