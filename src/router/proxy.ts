/**
 * The proxying of API requests: an inference request is read, checked, classified into its size bucket,
 * routed by the split to a pool and a backend of it (retried on connection failure), relayed back and
 * counted; /v1/models goes to the least-loaded backend of any pool.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';
import type { Logger } from 'pino';
import type { Backend } from './backends.js';
import { bucketIndex, bucketLabel } from './buckets.js';
import { classify, inspectRequest, upstreamBodyFor, type InferenceEndpoint } from './classify.js';
import { BodyTooLarge, errorBody, readBody, responseHeaders, sendJson } from './http.js';
import type { LiveConfig, Snapshot } from './live-config.js';
import { NO_POOL, type RouterMetrics } from './metrics.js';
import type { OutputLengthEstimator } from './output-estimate.js';
import { relay, type RelayHooks } from './relay.js';
import { planAttempt, shouldRetry } from './select.js';
import { guardPool } from './slo-guard.js';
import type { Usage } from './taps.js';
import type { UpstreamAttempt, UpstreamClient, UpstreamResult } from './upstream.js';
import { bucketKey, capacityWeights, type PoolPicker, type PoolWeights } from './weights.js';

export interface RoutingProxyOptions {
  live: LiveConfig;
  upstream: UpstreamClient;
  metrics: RouterMetrics;
  log: Logger;
  /** Monotonic milliseconds for latency measurements. */
  now: () => number;
  /** Wall-clock milliseconds for backend ejection. */
  wallClock: () => number;
  maxBodyBytes: number;
  /** The router is shutting down: responses then carry `Connection: close`. */
  draining: () => boolean;
}

export class RoutingProxy {
  private readonly live: LiveConfig;
  private readonly upstream: UpstreamClient;
  private readonly metrics: RouterMetrics;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly wall: () => number;
  private readonly maxBody: number;
  private readonly relayHooks: RelayHooks;
  private tie = 0;
  private readonly poolTies = new Map<string, number>();

  constructor(o: RoutingProxyOptions) {
    this.live = o.live;
    this.upstream = o.upstream;
    this.metrics = o.metrics;
    this.log = o.log;
    this.now = o.now;
    this.wall = o.wallClock;
    this.maxBody = o.maxBodyBytes;
    this.relayHooks = {
      now: () => this.now(),
      draining: o.draining,
      prefillDone: (backend, promptTokens) => this.live.backends.addPendingPrefill(backend, -promptTokens),
      release: (backend) => this.live.backends.addInflight(backend, -1),
      streamFailed: (backend, err) => {
        this.metrics.upstreamErrors.inc({ ...this.live.svcLabels(), pool: backend.pool, phase: 'stream' });
        this.log.warn({ backend: backend.label, pool: backend.pool, err: err.message }, 'response stream failed after it started');
      },
      count: (pool, code, estIn, estOut, usage, routed) => this.count(pool, code, estIn, estOut, usage, routed),
      observeLatency: (pool, tpotSeconds, ttftSeconds) => {
        const labels = { ...this.live.svcLabels(), pool };
        if (tpotSeconds !== undefined) this.metrics.tpot.observe(labels, tpotSeconds);
        if (ttftSeconds !== undefined) this.metrics.ttft.observe(labels, ttftSeconds);
      },
    };
  }

  /** Answers with an OpenAI-style error and counts the request as rejected for `reason`. */
  reject(res: ServerResponse, status: number, reason: string, message: string, param?: string): void {
    this.metrics.rejected.inc({ ...this.live.svcLabels(), reason });
    const type = status === 413 ? 'request_too_large' : status === 404 ? 'not_found' : status === 405 ? 'method_not_allowed' : 'invalid_request_error';
    sendJson(res, status, errorBody(message, type, status, param), status === 413 ? { connection: 'close' } : {});
  }

  /** POST /v1/completions or /v1/chat/completions. */
  async inference(req: IncomingMessage, res: ServerResponse, endpoint: InferenceEndpoint, rawUrl: string): Promise<void> {
    const t0 = this.now();
    let body: Buffer;
    try {
      body = await readBody(req, this.maxBody);
    } catch (err) {
      if (err instanceof BodyTooLarge) return this.reject(res, 413, 'too_large', `request body exceeds ${this.maxBody} bytes`);
      res.destroy();
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch (err) {
      return this.reject(res, 400, 'invalid_json', `request body is not valid JSON: ${(err as Error).message}`);
    }
    const insp = inspectRequest(endpoint, parsed);
    if (!insp.ok) return this.reject(res, 400, 'invalid_request', insp.message, insp.param);
    const request = insp.value;

    const snap = this.live.snapshot as Snapshot;
    const estimator = this.live.estimator as OutputLengthEstimator;
    const cls = classify(request, snap.config.buckets, (i) => estimator.estimate(i));
    const resolved = snap.table[cls.input]?.[cls.output] ?? capacityWeights(this.live.backends.readyCounts());
    const rewritten = upstreamBodyFor(request);
    const upstreamBody = rewritten ? Buffer.from(JSON.stringify(rewritten)) : body;
    const stripUsage = rewritten !== undefined;
    const routing = snap.config.routing;
    const key = bucketKey(cls.input, cls.output);

    const tried = new Set<string>();
    let attempts = 0;
    let previousPool: string | undefined;
    let lastError: Error | undefined;
    let clientGone = false;
    // Until relay() takes over (it has its own close handling), a client that leaves ends the retry loop.
    const onClientClose = () => {
      if (!res.writableFinished) clientGone = true;
    };
    res.on('close', onClientClose);
    try {
      for (;;) {
        if (clientGone) {
          this.count(previousPool, 499, cls.inputTokens, cls.outputTokens, undefined);
          return;
        }
        const plan = planAttempt({
          weights: resolved.weights,
          backends: this.live.backends.byPool(),
          tried,
          previousPool,
          attempts,
          maxAttempts: routing.maxAttempts,
          now: this.wall(),
          tieBreak: (pool) => this.nextTie(pool),
          pickPool: (w, eligible) => this.pickPool(snap, key, cls, w, eligible),
        });
        if (plan.kind === 'give-up') {
          this.log.warn({ reason: plan.reason, attempts, input: cls.input, output: cls.output }, 'no backend available');
          return this.unavailable(res, cls,
            plan.reason === 'no-backend'
              ? `no ready backend for this request's size bucket (input <= ${bucketLabel(snap.config.buckets.inputEdges, cls.input)}, output <= ${bucketLabel(snap.config.buckets.outputEdges, cls.output)} tokens; pools with weight: ${[...resolved.weights.keys()].join(', ') || 'none'})`
              : `no backend could be reached after ${attempts} attempt(s)${lastError ? `: ${lastError.message}` : ''}`);
        }
        if (attempts > 0) this.metrics.retries.inc({ ...this.live.svcLabels(), pool: previousPool ?? plan.pool });
        attempts++;
        tried.add(plan.backend.id);
        previousPool = plan.pool;
        const backend = plan.backend;
        const r = await this.attempt(cls.inputTokens, { backend, rawUrl, method: 'POST', req, body: upstreamBody, res, connectTimeoutMs: routing.connectTimeoutMs });
        if (r.kind === 'response') {
          relay(r.upRes, res, backend, { t0, stripUsage, cls }, this.relayHooks);
          return;
        }
        if (r.kind === 'client-gone') {
          this.count(backend.pool, 499, cls.inputTokens, cls.outputTokens, undefined);
          return;
        }
        lastError = r.error;
        backend.ejectedUntil = this.wall() + routing.ejectMs;
        this.metrics.upstreamErrors.inc({ ...this.live.svcLabels(), pool: backend.pool, phase: 'connect' });
        this.log.warn({ backend: backend.label, pool: backend.pool, attempt: attempts, err: r.error.message }, 'backend connection failed');
        if (!shouldRetry({ phase: 'before-response', clientBytesSent: res.headersSent, clientGone, attempts, maxAttempts: routing.maxAttempts })) {
          if (clientGone) {
            this.count(backend.pool, 499, cls.inputTokens, cls.outputTokens, undefined);
            return;
          }
          return this.unavailable(res, cls, `no backend could be reached after ${attempts} attempt(s): ${r.error.message}`);
        }
      }
    } finally {
      res.off('close', onClientClose);
    }
  }

  /** GET /v1/models: the least-loaded backend of any pool, the next one on connection failure. */
  async models(req: IncomingMessage, res: ServerResponse, rawUrl: string): Promise<void> {
    const snap = this.live.snapshot as Snapshot;
    const tried = new Set<string>();
    const all = this.live.backends.all();
    let lastError: Error | undefined;
    for (let attempt = 0; attempt < snap.config.routing.maxAttempts; attempt++) {
      const now = this.wall();
      const open = all.filter((b) => !tried.has(b.id));
      const healthy = open.filter((b) => b.ejectedUntil <= now);
      const candidates = healthy.length > 0 ? healthy : open;
      if (candidates.length === 0) break;
      const min = Math.min(...candidates.map((b) => b.inflight));
      const ties = candidates.filter((b) => b.inflight === min);
      const backend = ties[this.tie++ % ties.length] as Backend;
      tried.add(backend.id);
      const r = await this.upstream.send({ backend, rawUrl, method: 'GET', req, body: undefined, res, connectTimeoutMs: snap.config.routing.connectTimeoutMs });
      if (r.kind === 'client-gone') return;
      if (r.kind === 'response') {
        res.writeHead(r.upRes.statusCode ?? 502, { ...responseHeaders(r.upRes.headers, false), 'x-melange-pool': backend.pool });
        pipeline(r.upRes, res, () => undefined);
        return;
      }
      lastError = r.error;
      backend.ejectedUntil = now + snap.config.routing.ejectMs;
    }
    sendJson(
      res,
      503,
      errorBody(all.length === 0 ? 'no ready backend' : `no backend could be reached${lastError ? `: ${lastError.message}` : ''}`, 'service_unavailable', 503),
      { 'retry-after': '1' },
    );
  }

  /** The split's weighted pick for the bucket, then the SLO guard (slo-guard.ts) when routing.sloGuard is set. */
  private pickPool(snap: Snapshot, key: string, cls: { inputTokens: number; outputTokens: number }, w: PoolWeights, eligible: (pool: string) => boolean): string | undefined {
    const picked = (this.live.picker as PoolPicker).pick(key, w, eligible);
    const guard = snap.config.routing.sloGuard;
    if (picked === undefined || !guard) return picked;
    const d = guardPool({ picked, input: cls.inputTokens, output: cls.outputTokens, models: snap.models, eligible, guard });
    if (d.redirectedFrom !== undefined) this.metrics.sloGuardRedirects.inc({ ...this.live.svcLabels(), from_pool: d.redirectedFrom, to_pool: d.pool });
    return d.pool;
  }

  /** Per-pool rotating counter, so equally loaded backends of a pool take turns. */
  private nextTie(pool: string): number {
    const t = this.poolTies.get(pool) ?? 0;
    this.poolTies.set(pool, (t + 1) % 1_000_000_007);
    return t;
  }

  /**
   * One upstream attempt, holding the backend's in-flight slot and the request's pending prompt tokens (which
   * backend choice, select.ts leastLoaded, and the gauges read) while it is open. They are given back here when
   * no response came — a failure, a client that left, or a throw, which would otherwise leave the backend
   * looking busy for the life of the process — and by relay() (hooks prefillDone and release) when one did.
   */
  private async attempt(promptTokens: number, a: UpstreamAttempt): Promise<UpstreamResult> {
    const backends = this.live.backends;
    backends.addInflight(a.backend, +1);
    backends.addPendingPrefill(a.backend, promptTokens);
    let r: UpstreamResult | undefined;
    try {
      r = await this.upstream.send(a);
      return r;
    } finally {
      if (r?.kind !== 'response') {
        backends.addInflight(a.backend, -1);
        backends.addPendingPrefill(a.backend, -promptTokens);
      }
    }
  }

  /** 503 with Retry-After: no backend took the request; counted under pool "none". */
  private unavailable(res: ServerResponse, cls: { inputTokens: number; outputTokens: number }, message: string): void {
    this.count(undefined, 503, cls.inputTokens, cls.outputTokens, undefined);
    sendJson(res, 503, errorBody(message, 'service_unavailable', 503), { 'retry-after': '1' });
  }

  /** Counts a finished request by the buckets of its actual usage (or the estimate when there is none). */
  private count(
    pool: string | undefined,
    code: number,
    estIn: number,
    estOut: number,
    usage: Usage | undefined,
    routed?: { input: number; output: number },
  ): void {
    const snap = this.live.snapshot as Snapshot;
    const { inputEdges, outputEdges } = snap.config.buckets;
    const inTok = usage?.promptTokens ?? estIn;
    const outTok = usage?.completionTokens ?? estOut;
    const inIdx = bucketIndex(inputEdges, inTok);
    const outIdx = bucketIndex(outputEdges, outTok);
    const labels = this.live.svcLabels();
    this.metrics.requests.inc({
      ...labels,
      input_le: bucketLabel(inputEdges, inIdx),
      output_le: bucketLabel(outputEdges, outIdx),
      pool: pool ?? NO_POOL,
      code: String(code),
    });
    if (!usage) this.metrics.usageEstimated.inc(labels);
    else if (code >= 200 && code < 300) {
      this.live.estimator?.observe(inIdx, usage.completionTokens);
      if (routed && routed.input !== inIdx) this.metrics.bucketMismatch.inc({ ...labels, dimension: 'input' });
      if (routed && routed.output !== outIdx) this.metrics.bucketMismatch.inc({ ...labels, dimension: 'output' });
    }
  }
}
