/**
 * Where the controller gets the workload to plan for: `WorkloadSource.observe(service, now)`.
 *
 * - StaticWorkloadSource: spec.workload.static, normalised.
 * - PrometheusWorkloadSource: the router's per-bucket request counter first; if no router series exist at
 *   all, vLLM's own token histograms under an independence assumption (sizeAware: false). The query I/O is
 *   here; every decision is made by the pure functions in estimate.ts.
 * - SpecWorkloadSource: picks one of the two by spec.workload.source.
 *
 * Observations never throw. A failure (`ok: false`) means: keep the last allocation, set
 * MetricsAvailable=False (see `metricsAvailableCondition`) and retry with back-off (backoff.ts).
 */
import type { ConditionUpdate } from '../api/conditions.js';
import type { LLMService } from '../api/llmservice.js';
import { LLMServiceConditionTypes } from '../api/llmservice.js';
import { parseDurationMs } from '../api/meta.js';
import {
  DEFAULT_MAX_UNKNOWN_FRACTION,
  DEFAULT_MIN_REQUESTS_FOR_DISTRIBUTION,
  DEFAULT_STALE_AFTER_MS,
  estimateFromRouter,
  estimateFromVllm,
  normalizeMatrix,
  type EstimateConfig,
  type EstimateResult,
} from './estimate.js';
import {
  DEFAULT_QUERY_TIMEOUT_MS,
  PrometheusClient,
  PrometheusError,
  type PrometheusClientOptions,
  type PrometheusQuerier,
  type Sample,
} from './prometheus-client.js';
import { PromQLBuildError, selector, type LabelMatcherSpec, type PromQL } from './promql.js';
import { SecretRefError } from './secrets.js';
import { ROUTER_REQUESTS_METRIC, routerQueries, VLLM_PROMPT_TOKENS, vllmQueries } from './queries.js';

export type WorkloadSourceKind = 'static' | 'router' | 'vllm-histograms';

export type WorkloadFailureReason =
  /** No series at all (neither router nor vLLM), or too few samples to compute a rate. */
  | 'NoData'
  /** Series existed but the newest sample is older than the staleness bound, or they vanished. */
  | 'Stale'
  /** Prometheus unreachable, timed out, answered an error or garbage. */
  | 'QueryFailed'
  /** Answers arrived but cannot be trusted: NaN/Inf/negative, bucket labels that are not the service's edges… */
  | 'InvalidData'
  /** No URL, bad URL/token/CA, static workload missing or mis-shaped, bad label matcher configuration. */
  | 'InvalidConfig';

export interface WorkloadDetails {
  windowMeanRate: number;
  recentRate: number | undefined;
  requestsInWindow: number;
  lastSampleAgeMs: number;
  unknownRate: number;
}

export interface WorkloadSample {
  ok: true;
  /** Total request rate to plan for (req/s), before headroom (the solver adds policy.headroomPercent). */
  requestsPerSecond: number;
  /** [input range][output range] fractions summing to 1 (all zeros when requestsPerSecond is 0). */
  distribution: number[][];
  /** The averaging window (spec.workload.prometheus.window); absent for a static workload. */
  window?: string;
  source: WorkloadSourceKind;
  /**
   * True when the distribution is a joint input × output distribution (measured by the router, or declared).
   * False for the vLLM fallback, whose joint is assumed (independent marginals); status should say so.
   */
  sizeAware: boolean;
  warnings: string[];
  details?: WorkloadDetails;
}

export interface WorkloadFailure {
  ok: false;
  reason: WorkloadFailureReason;
  message: string;
  /** The source that failed, when one was reached. */
  source?: WorkloadSourceKind;
}

export type WorkloadObservation = WorkloadSample | WorkloadFailure;

export interface WorkloadSource {
  observe(service: LLMService, now: Date): Promise<WorkloadObservation>;
}

/** What `instanceFromService(service, refs, override)` (src/solver/from-api.ts) takes. */
export function toWorkloadOverride(o: WorkloadSample): { requestsPerSecond: number; distribution: number[][] } {
  return { requestsPerSecond: o.requestsPerSecond, distribution: o.distribution.map((row) => [...row]) };
}

const SUCCESS_REASON: Record<WorkloadSourceKind, string> = {
  static: 'StaticWorkload',
  router: 'RouterMetrics',
  'vllm-histograms': 'VllmHistograms',
};

/** The MetricsAvailable condition for an observation (reasons: RouterMetrics, VllmHistograms, StaticWorkload, or the failure reason). */
export function metricsAvailableCondition(o: WorkloadObservation, observedGeneration?: number): ConditionUpdate {
  const gen = observedGeneration === undefined ? {} : { observedGeneration };
  if (!o.ok) return { type: LLMServiceConditionTypes.MetricsAvailable, status: 'False', reason: o.reason, message: o.message, ...gen };
  const rate = `${Number(o.requestsPerSecond.toPrecision(4))} req/s`;
  const what =
    o.source === 'static'
      ? `static workload: ${rate}`
      : `${rate} over ${o.window ?? '?'} from ${o.source === 'router' ? 'the router' : 'vLLM histograms (not size-aware)'}`;
  const message = o.warnings.length > 0 ? `${what}; ${o.warnings.join('; ')}` : what;
  return { type: LLMServiceConditionTypes.MetricsAvailable, status: 'True', reason: SUCCESS_REASON[o.source], message, ...gen };
}

// ---------------------------------------------------------------------------------------------
// Static

export class StaticWorkloadSource implements WorkloadSource {
  async observe(service: LLMService): Promise<WorkloadObservation> {
    return staticObservation(service);
  }
}

export function staticObservation(service: LLMService): WorkloadObservation {
  const s = service.spec.workload.static;
  if (!s) return { ok: false, reason: 'InvalidConfig', message: 'spec.workload.static is not set', source: 'static' };
  const { inputEdges, outputEdges } = service.spec.buckets;
  const shapeOk = s.distribution.length === inputEdges.length && s.distribution.every((row) => row.length === outputEdges.length);
  if (!shapeOk) {
    return {
      ok: false,
      reason: 'InvalidConfig',
      message: `spec.workload.static.distribution must be ${inputEdges.length} × ${outputEdges.length} (spec.buckets)`,
      source: 'static',
    };
  }
  if (!Number.isFinite(s.requestsPerSecond) || s.requestsPerSecond < 0 || s.distribution.some((r) => r.some((w) => !Number.isFinite(w) || w < 0))) {
    return { ok: false, reason: 'InvalidConfig', message: 'spec.workload.static has a negative or non-finite number', source: 'static' };
  }
  const distribution = normalizeMatrix(s.distribution);
  if (s.requestsPerSecond > 0 && distribution.every((r) => r.every((w) => w === 0))) {
    return { ok: false, reason: 'InvalidConfig', message: 'spec.workload.static.distribution has no positive weight', source: 'static' };
  }
  return { ok: true, requestsPerSecond: s.requestsPerSecond, distribution, source: 'static', sizeAware: true, warnings: [] };
}

// ---------------------------------------------------------------------------------------------
// Prometheus

export interface PrometheusCredentials {
  bearerToken?: string;
  caPem?: string;
}

export interface PrometheusWorkloadSourceOptions {
  /** The operator's --prometheus-url, used when spec.workload.prometheus.url is unset. */
  defaultUrl?: string;
  /**
   * Resolves spec.workload.prometheus.{bearerTokenSecretRef, caSecretRef} to strings (the controller passes a
   * function built on secrets.ts `prometheusCredentials`). Errors become InvalidConfig.
   */
  credentials?: (service: LLMService) => Promise<PrometheusCredentials>;
  /** Client factory (tests); default `new PrometheusClient(opts)`. */
  createClient?: (opts: PrometheusClientOptions) => PrometheusQuerier;
  /** Injected fetch for the default client. */
  fetch?: typeof fetch;
  /** Per-query deadline; default 10 s. */
  timeoutMs?: number;
  /** Window of the recent rate (ms or "1m"); default 1 minute, never longer than the main window. */
  shortWindow?: number | string;
  /** Default 120 s. */
  staleAfterMs?: number;
  /** Default 0.1. */
  maxUnknownFraction?: number;
  /** Default 100. */
  minRequestsForDistribution?: number;
  /** Selector of the router series; default namespace="<metadata.namespace>", service="<metadata.name>". */
  routerMatchers?: (service: LLMService) => LabelMatcherSpec[];
  /** Selector of the vLLM series (the service's model-server pods); default model_name="<spec.model>". */
  vllmMatchers?: (service: LLMService) => LabelMatcherSpec[];
  /** Process-wide shutdown: aborts queries in flight. */
  signal?: AbortSignal;
}

export const DEFAULT_WINDOW = '5m';
export const DEFAULT_SHORT_WINDOW_MS = 60_000;

export const defaultRouterMatchers = (service: LLMService): LabelMatcherSpec[] => [
  { name: 'namespace', value: service.metadata.namespace ?? 'default' },
  { name: 'service', value: service.metadata.name },
];

export const defaultVllmMatchers = (service: LLMService): LabelMatcherSpec[] => [{ name: 'model_name', value: service.spec.model }];

class QueryFailure extends Error {}

export class PrometheusWorkloadSource implements WorkloadSource {
  constructor(private readonly options: PrometheusWorkloadSourceOptions = {}) {}

  async observe(service: LLMService, now: Date): Promise<WorkloadObservation> {
    const o = this.options;
    const spec = service.spec.workload.prometheus;
    const window = spec?.window ?? DEFAULT_WINDOW;
    const invalid = (message: string): WorkloadFailure => ({ ok: false, reason: 'InvalidConfig', message });

    let windowMs: number;
    let shortMs: number;
    try {
      windowMs = parseDurationMs(window);
      const short = o.shortWindow ?? DEFAULT_SHORT_WINDOW_MS;
      shortMs = Math.min(windowMs, typeof short === 'number' ? short : parseDurationMs(short));
    } catch (err) {
      return invalid(`window: ${errorMessage(err)}`);
    }
    const url = spec?.url ?? o.defaultUrl;
    if (!url) return invalid('no Prometheus URL: set spec.workload.prometheus.url or the operator\'s --prometheus-url');

    let creds: PrometheusCredentials = {};
    if (o.credentials) {
      try {
        creds = await o.credentials(service);
      } catch (err) {
        // An API server that cannot answer right now (5xx, network) is transient, like a failing query;
        // a missing/unlabelled/forbidden Secret is the user's configuration.
        if (err instanceof SecretRefError && err.kind === 'ApiError') return { ok: false, reason: 'QueryFailed', message: `Prometheus credentials: ${err.message}` };
        return invalid(`Prometheus credentials: ${errorMessage(err)}`);
      }
    }
    let client: PrometheusQuerier;
    try {
      const opts: PrometheusClientOptions = { url, timeoutMs: o.timeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS, ...creds };
      if (o.fetch) opts.fetch = o.fetch;
      client = o.createClient ? o.createClient(opts) : new PrometheusClient(opts);
    } catch (err) {
      return invalid(`Prometheus client: ${errorMessage(err)}`);
    }

    const cfg: EstimateConfig = {
      inputEdges: service.spec.buckets.inputEdges,
      outputEdges: service.spec.buckets.outputEdges,
      windowMs,
      now,
      staleAfterMs: o.staleAfterMs ?? DEFAULT_STALE_AFTER_MS,
      maxUnknownFraction: o.maxUnknownFraction ?? DEFAULT_MAX_UNKNOWN_FRACTION,
      minRequestsForDistribution: o.minRequestsForDistribution ?? DEFAULT_MIN_REQUESTS_FOR_DISTRIBUTION,
    };
    const promWarnings: string[] = [];
    const ok = (e: EstimateResult & { ok: true }, source: WorkloadSourceKind, extra: string[] = []): WorkloadSample => ({
      ok: true,
      requestsPerSecond: e.requestsPerSecond,
      distribution: e.distribution,
      window,
      source,
      sizeAware: source !== 'vllm-histograms',
      warnings: [...extra, ...e.warnings, ...promWarnings.map((w) => `Prometheus: ${w}`)],
      details: {
        windowMeanRate: e.windowMeanRate,
        recentRate: e.recentRate,
        requestsInWindow: e.requestsInWindow,
        lastSampleAgeMs: e.lastSampleAgeMs,
        unknownRate: e.unknownRate,
      },
    });

    try {
      let routerNote: string[] = [];
      let routerSel = '';
      if (service.spec.router.enabled) {
        const matchers = (o.routerMatchers ?? defaultRouterMatchers)(service);
        routerSel = selector(ROUTER_REQUESTS_METRIC, matchers).text;
        const est = estimateFromRouter(await this.runAll(client, routerQueries(matchers, windowMs, shortMs), now, promWarnings), cfg);
        if (est.ok) return ok(est, 'router');
        // Only a router that has never reported in the window hands over to vLLM: one that stopped
        // mid-window is Stale (its traffic is not reaching vLLM either, so vLLM's falling rates would lie).
        if (!est.seriesAbsent) return { ok: false, reason: est.reason, message: est.message, source: 'router' };
        routerNote = [`no router series ${routerSel}; falling back to vLLM histograms`];
      }
      const matchers = (o.vllmMatchers ?? defaultVllmMatchers)(service);
      const est = estimateFromVllm(await this.runAll(client, vllmQueries(matchers, windowMs, shortMs), now, promWarnings), cfg);
      if (est.ok) return ok(est, 'vllm-histograms', routerNote);
      if (est.seriesAbsent) {
        const vsel = selector(`${VLLM_PROMPT_TOKENS}_count`, matchers).text;
        const where = routerSel ? `neither router series ${routerSel} nor vLLM series ${vsel}` : `no vLLM series ${vsel} (router disabled)`;
        return { ok: false, reason: 'NoData', message: `no workload data at ${url}: ${where} in the last ${window}` };
      }
      return { ok: false, reason: est.reason, message: est.message, source: 'vllm-histograms' };
    } catch (err) {
      if (err instanceof QueryFailure) return { ok: false, reason: 'QueryFailed', message: err.message };
      if (err instanceof PromQLBuildError) return invalid(`label matchers: ${err.message}`);
      return { ok: false, reason: 'QueryFailed', message: `unexpected error: ${errorMessage(err)}` };
    }
  }

  /** Runs the queries in parallel at `now`; the first failure aborts the others. */
  private async runAll<K extends string>(
    client: PrometheusQuerier,
    queries: Readonly<Record<K, PromQL>>,
    now: Date,
    warnings: string[],
  ): Promise<Record<K, Sample[]>> {
    const ac = new AbortController();
    const outer = this.options.signal;
    const onAbort = () => ac.abort();
    if (outer?.aborted) ac.abort();
    else outer?.addEventListener('abort', onAbort, { once: true });
    try {
      const entries = Object.entries(queries) as [K, PromQL][];
      const results = await Promise.all(
        entries.map(async ([, q]) => {
          try {
            const opts = { time: now, signal: ac.signal, ...(this.options.timeoutMs === undefined ? {} : { timeoutMs: this.options.timeoutMs }) };
            return await client.queryVector(q.text, opts);
          } catch (err) {
            ac.abort();
            const detail = err instanceof PrometheusError ? `${err.kind}: ${err.message}` : errorMessage(err);
            throw new QueryFailure(`query ${q.text} failed: ${detail}`);
          }
        }),
      );
      for (const r of results) for (const w of r.warnings) if (!warnings.includes(w)) warnings.push(w);
      const out = {} as Record<K, Sample[]>;
      entries.forEach(([k], i) => {
        out[k] = results[i]?.samples ?? [];
      });
      return out;
    } finally {
      outer?.removeEventListener('abort', onAbort);
    }
  }
}

/** Dispatches on spec.workload.source: Static → StaticWorkloadSource, Prometheus → PrometheusWorkloadSource. */
export class SpecWorkloadSource implements WorkloadSource {
  constructor(
    private readonly prometheus: WorkloadSource,
    private readonly fixed: WorkloadSource = new StaticWorkloadSource(),
  ) {}

  observe(service: LLMService, now: Date): Promise<WorkloadObservation> {
    return service.spec.workload.source === 'Prometheus' ? this.prometheus.observe(service, now) : this.fixed.observe(service, now);
  }
}

const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));
