/**
 * The router's Prometheus metrics, in a private registry. This is a contract: the workload estimator
 * (src/workload) queries these names and labels; see docs/router.md before changing anything here.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export const METRIC = {
  requests: 'melange_router_requests_total',
  usageEstimated: 'melange_router_usage_estimated_total',
  ttft: 'melange_router_ttft_seconds',
  tpot: 'melange_router_tpot_seconds',
  inflight: 'melange_router_inflight',
  pendingPrefill: 'melange_router_pending_prefill_tokens',
  retries: 'melange_router_retries_total',
  upstreamErrors: 'melange_router_upstream_errors_total',
  rejected: 'melange_router_rejected_total',
  configReloads: 'melange_router_config_reloads_total',
  bucketMismatch: 'melange_router_bucket_mismatch_total',
  backends: 'melange_router_backends',
  splitWeight: 'melange_router_split_weight',
  sloGuardRedirects: 'melange_router_slo_guard_redirects_total',
} as const;

/** Pool label of requests no backend took (503). */
export const NO_POOL = 'none';

/** TTFT buckets (s). */
export const TTFT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60];
/** Mean-TPOT buckets (s); they include the paper's SLOs (40 ms and 120 ms) as edges. */
export const TPOT_BUCKETS = [0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.3, 0.5, 1, 2];

export interface ServiceLabels {
  namespace: string;
  service: string;
}

/** One backend's load, as the per-backend gauges show it. */
export interface BackendLoadSample {
  labels: { namespace: string; service: string; pool: string; backend: string };
  inflight: number;
  pendingPrefillTokens: number;
}

type BackendGauge = Gauge<'namespace' | 'service' | 'pool' | 'backend'>;

export class RouterMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: METRIC.requests,
    help: 'Completed requests by the (input, output) bucket of their actual usage tokens (upper edges), the pool that served them and the HTTP status.',
    labelNames: ['namespace', 'service', 'input_le', 'output_le', 'pool', 'code'] as const,
    registers: [this.registry],
  });
  readonly usageEstimated = new Counter({
    name: METRIC.usageEstimated,
    help: 'Requests counted with estimated instead of actual usage tokens (the backend reported no usage).',
    labelNames: ['namespace', 'service'] as const,
    registers: [this.registry],
  });
  readonly ttft = new Histogram({
    name: METRIC.ttft,
    help: 'Time to first token of streamed requests (s), from request arrival to the first event.',
    labelNames: ['namespace', 'service', 'pool'] as const,
    buckets: TTFT_BUCKETS,
    registers: [this.registry],
  });
  readonly tpot = new Histogram({
    name: METRIC.tpot,
    help: 'Mean time per output token (s): request latency / completion tokens, prefill included (the paper\'s SLO metric).',
    labelNames: ['namespace', 'service', 'pool'] as const,
    buckets: TPOT_BUCKETS,
    registers: [this.registry],
  });
  /**
   * The per-backend gauges are read from the backends' own counts when scraped (setBackendLoadReader), not
   * updated per request: prom-client hashes the label set on every set(), ~4 µs, several times per request
   * on the router's hot path.
   */
  readonly inflight: BackendGauge = new Gauge({
    name: METRIC.inflight,
    help: 'Requests in flight per backend.',
    labelNames: ['namespace', 'service', 'pool', 'backend'] as const,
    registers: [this.registry],
    collect: (): void => this.collectLoad(this.inflight, (s) => s.inflight),
  });
  readonly pendingPrefill: BackendGauge = new Gauge({
    name: METRIC.pendingPrefill,
    help: 'Prompt tokens of the requests in flight per backend whose first output token has not come back yet (for a non-streamed response: until it ends). The router sends a request to the backend of its pool with the fewest.',
    labelNames: ['namespace', 'service', 'pool', 'backend'] as const,
    registers: [this.registry],
    collect: (): void => this.collectLoad(this.pendingPrefill, (s) => s.pendingPrefillTokens),
  });
  readonly retries = new Counter({
    name: METRIC.retries,
    help: 'Attempts retried on another backend after a connection failure, by the pool of the failed backend.',
    labelNames: ['namespace', 'service', 'pool'] as const,
    registers: [this.registry],
  });
  readonly upstreamErrors = new Counter({
    name: METRIC.upstreamErrors,
    help: 'Backend failures: phase="connect" before a response (retried if possible), phase="stream" after it started.',
    labelNames: ['namespace', 'service', 'pool', 'phase'] as const,
    registers: [this.registry],
  });
  readonly rejected = new Counter({
    name: METRIC.rejected,
    help: 'Requests rejected by the router itself before routing (reason: invalid_json, invalid_request, too_large, not_found, method).',
    labelNames: ['namespace', 'service', 'reason'] as const,
    registers: [this.registry],
  });
  readonly bucketMismatch = new Counter({
    name: METRIC.bucketMismatch,
    help: 'Requests whose routed (estimated) bucket differs from the bucket of their actual usage, by dimension (input or output): the live error of the size estimators.',
    labelNames: ['namespace', 'service', 'dimension'] as const,
    registers: [this.registry],
  });
  readonly sloGuardRedirects = new Counter({
    name: METRIC.sloGuardRedirects,
    help: 'Requests the SLO guard sent to another pool than the split picked (from_pool), because even an idle replica there was predicted to need more than routing.sloGuard.threshold of the SLO.',
    labelNames: ['namespace', 'service', 'from_pool', 'to_pool'] as const,
    registers: [this.registry],
  });
  readonly configReloads = new Counter({
    name: METRIC.configReloads,
    help: 'Configuration loads by result: success, or error (the previous configuration stays in force).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly backends = new Gauge({
    name: METRIC.backends,
    help: 'Ready backends per pool.',
    labelNames: ['namespace', 'service', 'pool'] as const,
    registers: [this.registry],
    // --workers: every worker discovers the same backends; a sum would count each one N times.
    aggregator: 'first',
  });
  readonly splitWeight = new Gauge({
    name: METRIC.splitWeight,
    help: 'The configured (solved) share of a bucket routed to a pool, normalised per bucket.',
    labelNames: ['namespace', 'service', 'input_le', 'output_le', 'pool'] as const,
    registers: [this.registry],
    // --workers: the same configuration in every worker (counters and in-flight are summed).
    aggregator: 'first',
  });

  private readLoad: (() => Iterable<BackendLoadSample>) | undefined;

  /** Where the per-backend gauges read their values when scraped. */
  setBackendLoadReader(read: () => Iterable<BackendLoadSample>): void {
    this.readLoad = read;
  }

  private collectLoad(gauge: BackendGauge, value: (s: BackendLoadSample) => number): void {
    if (!this.readLoad) return;
    gauge.reset();
    // inc, not set: two backends may share a label set (same host:port under different paths).
    for (const s of this.readLoad()) gauge.inc(s.labels, value(s));
  }

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    this.configReloads.inc({ result: 'success' }, 0);
    this.configReloads.inc({ result: 'error' }, 0);
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'melange_router_' });
  }
}
