/**
 * The size-aware router: an OpenAI-compatible reverse proxy that classifies each request into an
 * (input, output) size bucket, picks a GPU pool by the solved split for that bucket, then the least-loaded
 * ready backend of that pool, and streams the answer back. See docs/router.md.
 */
import { readFile } from 'node:fs/promises';
import http, { type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream';
import { KubeConfig } from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { LatencyModel } from '../api/latency.js';
import { Backend, BackendRegistry } from './backends.js';
import { bucketIndex, bucketLabel } from './buckets.js';
import { classify, inspectRequest, upstreamBodyFor, type InferenceEndpoint } from './classify.js';
import { diffConfig, parseConfigText, validateConfig, type ConfigDiff, type ConfigResult, type PoolConfig, type RouterConfig } from './config.js';
import { ConfigFileWatcher } from './config-watch.js';
import { makeSourceFactory, type BackendSource, type SourceFactory } from './discovery.js';
import { DnsSource, type DnsSourceOptions } from './dns.js';
import { EndpointSliceSource } from './endpointslices.js';
import { NO_POOL, RouterMetrics } from './metrics.js';
import { OutputLengthEstimator } from './output-estimate.js';
import { planAttempt, shouldRetry } from './select.js';
import { guardPool, poolLatencyModels } from './slo-guard.js';
import { JsonScanner, SseScanner, type Usage } from './taps.js';
import {
  bucketKey,
  capacityWeights,
  normaliseWeights,
  RandomPicker,
  resolveSplitTable,
  SmoothPicker,
  type PoolPicker,
  type PoolWeights,
  type ResolvedWeights,
} from './weights.js';

export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
export const DEFAULT_SHUTDOWN_GRACE_MS = 30_000;
/** Non-streamed response bodies up to this size are also parsed for `usage`. */
const MAX_USAGE_COPY_BYTES = 8 * 1024 * 1024;
/** An over-limit request body is drained (so the client can read the 413) up to this many bytes. */
const MAX_DISCARD_BYTES = 64 * 1024 * 1024;

export interface StartRouterOptions {
  /** Config file (JSON or YAML), watched and hot-reloaded. Exactly one of configFile and config. */
  configFile?: string;
  /** In-memory config (embedding, tests); change it later with handle.applyConfig(). */
  config?: unknown;
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Default 0 (a free port). */
  port?: number;
  /** Serve /metrics on its own port (then not on the main one); default: on the main port. */
  metricsPort?: number;
  metricsHost?: string;
  maxBodyBytes?: number;
  shutdownGraceMs?: number;
  logger?: Logger;
  /** Uniform [0, 1) draws for routing.strategy=random; default Math.random. */
  rng?: () => number;
  /** Monotonic milliseconds for latency measurements; default performance.now. */
  now?: () => number;
  /** Wall-clock milliseconds for backend ejection; default Date.now. */
  wallClock?: () => number;
  /** How pools get their backends; default: static lists, DNS (see `dns`), EndpointSlices via `kubeConfig`. */
  sourceFactory?: SourceFactory;
  /**
   * Resolver settings of DNS discovery (`pools[].dns`); default: the system's servers, search list and
   * ndots from /etc/resolv.conf. Tests point `servers` at a local DNS server.
   */
  dns?: Pick<DnsSourceOptions, 'servers' | 'search' | 'ndots' | 'resolvConfPath' | 'timeoutMs' | 'tries'>;
  /** KubeConfig for EndpointSlice discovery, loaded lazily; default KubeConfig.loadFromDefault(). */
  kubeConfig?: () => KubeConfig;
  /** How long a (re)load waits for new backend sources to sync before going on without them; default 10000. */
  discoveryStartTimeoutMs?: number;
  /** Fallback poll interval of the config file watcher (ms); default 2000. */
  configPollMs?: number;
  /** Add prom-client's process metrics (prefix melange_router_). */
  defaultMetrics?: boolean;
}

export interface RouterHandle {
  /** http://host:port of the proxy. */
  readonly url: string;
  /** http://host:port/metrics. */
  readonly metricsUrl: string;
  readonly registry: Registry;
  /** The configuration in force. */
  config(): RouterConfig;
  /** Counts of successful and failed configuration loads since start. */
  reloads(): { success: number; error: number };
  /** Validates and applies a new configuration (as a file reload would). */
  applyConfig(raw: unknown): Promise<ConfigResult>;
  /** Re-reads the config file now (no-op without configFile). */
  reload(): Promise<void>;
  /** Current backends per pool with in-flight counts. */
  backends(): Record<string, { url: string; inflight: number }[]>;
  /** Config loaded, every pool's source synced, not shutting down. */
  ready(): boolean;
  /** Stops accepting, lets in-flight requests finish up to the grace period, then closes everything. */
  close(opts?: { graceMs?: number }): Promise<void>;
}

export class RouterConfigError extends Error {
  constructor(readonly lines: string[]) {
    super(`invalid router configuration:\n  ${lines.join('\n  ')}`);
  }
}

interface Snapshot {
  config: RouterConfig;
  table: (ResolvedWeights | undefined)[][];
  /** Pools' latency models, for routing.sloGuard. */
  models: Map<string, LatencyModel>;
}

interface PoolSource {
  key: string;
  source: BackendSource;
}

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
]);

function connectionTokens(h: IncomingHttpHeaders): Set<string> {
  const c = h.connection;
  return new Set((Array.isArray(c) ? c.join(',') : c ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean));
}

function requestHeaders(h: IncomingHttpHeaders, bodyLength: number | undefined, remote: string | undefined): OutgoingHttpHeaders {
  const drop = connectionTokens(h);
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || HOP_BY_HOP.has(k) || drop.has(k) || k === 'host' || k === 'content-length' || k === 'expect' || k === 'accept-encoding') continue;
    out[k] = v;
  }
  // The taps read the body: no compression between router and backend.
  out['accept-encoding'] = 'identity';
  if (bodyLength !== undefined) out['content-length'] = bodyLength;
  if (remote) {
    const prior = h['x-forwarded-for'];
    out['x-forwarded-for'] = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${remote}` : remote;
  }
  return out;
}

function responseHeaders(h: IncomingHttpHeaders, dropLength: boolean): OutgoingHttpHeaders {
  const drop = connectionTokens(h);
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || HOP_BY_HOP.has(k) || drop.has(k) || (dropLength && k === 'content-length')) continue;
    out[k] = v;
  }
  return out;
}

function sendJson(res: ServerResponse, status: number, body: unknown, extra: OutgoingHttpHeaders = {}): void {
  if (res.headersSent || res.destroyed) {
    if (!res.writableEnded) res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...extra });
  res.end(text);
}

/** OpenAI-style error body. */
function errorBody(message: string, type: string, code: number, param?: string) {
  return { error: { message, type, param: param ?? null, code } };
}

class BodyTooLarge extends Error {}
class ClientGone extends Error {}

/** Reads a request body up to `max` bytes; an over-limit body is drained (bounded) then rejected. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    let size = 0;
    let over = Number.isFinite(declared) && declared > max;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (!over && size > max) {
        over = true;
        chunks.length = 0;
      }
      if (!over) chunks.push(c);
      else if (size > MAX_DISCARD_BYTES) {
        req.pause();
        reject(new BodyTooLarge());
      }
    });
    req.on('end', () => (over ? reject(new BodyTooLarge()) : resolve(Buffer.concat(chunks, size))));
    req.on('error', (err) => reject(err));
    req.on('aborted', () => reject(new ClientGone()));
  });
}

type UpstreamResult =
  | { kind: 'response'; upReq: http.ClientRequest; upRes: IncomingMessage }
  | { kind: 'failed'; error: Error; reusedSocket: boolean }
  | { kind: 'client-gone' };

class Router {
  private readonly log: Logger;
  private readonly metrics: RouterMetrics;
  private readonly now: () => number;
  private readonly wall: () => number;
  private readonly rng: () => number;
  private readonly maxBody: number;
  private readonly registryOfBackends = new BackendRegistry();
  private readonly sources = new Map<string, PoolSource>();
  private readonly sourceFactory: SourceFactory;
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024, scheduling: 'lifo' });
  private readonly httpsAgent = new https.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024, scheduling: 'lifo' });
  private snapshot: Snapshot | undefined;
  private estimator: OutputLengthEstimator | undefined;
  private picker: PoolPicker | undefined;
  private watcher: ConfigFileWatcher | undefined;
  private server: http.Server | undefined;
  private metricsServer: http.Server | undefined;
  private applying: Promise<unknown> = Promise.resolve();
  private tie = 0;
  private readonly poolTies = new Map<string, number>();
  private active = 0;
  private idleWaiters: (() => void)[] = [];
  private draining = false;
  private closing: Promise<void> | undefined;
  private kubeConfig: KubeConfig | undefined;
  private reloadCounts = { success: 0, error: 0 };
  url = '';
  metricsUrl = '';

  constructor(private readonly o: StartRouterOptions) {
    this.log = o.logger ?? pino({ name: 'melange-router' });
    this.metrics = new RouterMetrics({ defaultMetrics: o.defaultMetrics ?? false });
    this.now = o.now ?? (() => performance.now());
    this.wall = o.wallClock ?? (() => Date.now());
    this.rng = o.rng ?? Math.random;
    this.maxBody = o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.sourceFactory =
      o.sourceFactory ??
      makeSourceFactory({
        discovery: (pool) =>
          new EndpointSliceSource({
            kubeConfig: this.getKubeConfig(),
            namespace: pool.discovery.namespace,
            service: pool.discovery.service,
            port: pool.discovery.port,
            logger: this.log,
          }),
        dns: (pool) => new DnsSource({ ...o.dns, name: pool.dns.name, port: pool.dns.port, refreshMs: pool.dns.refreshMs, logger: this.log }),
      });
  }

  private getKubeConfig(): KubeConfig {
    if (!this.kubeConfig) {
      if (this.o.kubeConfig) this.kubeConfig = this.o.kubeConfig();
      else {
        const kc = new KubeConfig();
        kc.loadFromDefault();
        this.kubeConfig = kc;
      }
    }
    return this.kubeConfig;
  }

  // ---------------------------------------------------------------------------------------------
  // configuration

  async start(): Promise<void> {
    if ((this.o.configFile === undefined) === (this.o.config === undefined)) throw new Error('startRouter: pass exactly one of configFile and config');
    let initial: ConfigResult;
    let text: string | undefined;
    if (this.o.configFile !== undefined) {
      try {
        text = await readFile(this.o.configFile, 'utf8');
      } catch (err) {
        throw new RouterConfigError([`${this.o.configFile}: ${(err as Error).message}`]);
      }
      initial = parseConfigText(text);
      if (!initial.ok) throw new RouterConfigError(initial.errors.map((e) => `${this.o.configFile}: ${e}`));
    } else {
      initial = validateConfig(this.o.config);
      if (!initial.ok) throw new RouterConfigError(initial.errors);
    }
    await this.apply(initial.config, 'initial');
    if (this.o.configFile !== undefined) {
      const file = this.o.configFile;
      this.watcher = new ConfigFileWatcher(file, {
        onChange: (t) => void this.applyText(t, file),
        onReadError: (err) => {
          this.countReload('error');
          this.log.error({ file, err: err.message }, 'cannot read the router configuration; keeping the current one');
        },
        pollMs: this.o.configPollMs ?? 2000,
      });
      if (text !== undefined) this.watcher.seed(text);
      this.watcher.start();
    }
    await this.listen();
  }

  private countReload(result: 'success' | 'error'): void {
    this.reloadCounts[result]++;
    this.metrics.configReloads.inc({ result });
  }

  private applyText(text: string, file: string): Promise<ConfigResult> {
    const r = parseConfigText(text);
    if (!r.ok) {
      this.countReload('error');
      this.log.error({ file, errors: r.errors }, 'invalid router configuration; keeping the current one');
      return Promise.resolve(r);
    }
    return this.apply(r.config, file).then(() => r);
  }

  applyRaw(raw: unknown): Promise<ConfigResult> {
    const r = validateConfig(raw);
    if (!r.ok) {
      this.countReload('error');
      this.log.error({ errors: r.errors }, 'invalid router configuration; keeping the current one');
      return Promise.resolve(r);
    }
    return this.apply(r.config, 'api').then(() => r);
  }

  /** Applies a valid configuration; serialised so that reloads never interleave. */
  private apply(config: RouterConfig, origin: string): Promise<void> {
    const run = this.applying.then(() => this.applyNow(config, origin));
    this.applying = run.catch(() => undefined);
    return run;
  }

  private async applyNow(config: RouterConfig, origin: string): Promise<void> {
    const prev = this.snapshot?.config;
    const diff: ConfigDiff | undefined = prev ? diffConfig(prev, config) : undefined;
    const nIn = config.buckets.inputEdges.length;
    const nOut = config.buckets.outputEdges.length;
    const routing = config.routing;

    if (!this.picker || !prev || prev.routing.strategy !== routing.strategy) {
      this.picker = routing.strategy === 'random' ? new RandomPicker(this.rng) : new SmoothPicker();
    } else if (diff && (diff.inputEdgesChanged || diff.outputEdgesChanged)) this.picker.reset();
    else if (diff) this.picker.reset(diff.splitChanged);

    this.estimator = this.estimator
      ? this.estimator.resized(nIn, routing.defaultOutputTokens, routing.outputMeanWindow, !diff?.inputEdgesChanged)
      : new OutputLengthEstimator(nIn, routing.defaultOutputTokens, routing.outputMeanWindow);

    this.snapshot = { config, table: resolveSplitTable(config.split, nIn, nOut), models: poolLatencyModels(config.pools) };
    if (diff?.serviceChanged) {
      this.metrics.inflight.reset();
      this.metrics.backends.reset();
    }
    this.publishSplit(config);

    // Backend sources: stop removed pools, (re)start new or changed ones.
    const wanted = new Map(config.pools.map((p) => [p.name, p]));
    for (const [name, ps] of [...this.sources]) {
      const p = wanted.get(name);
      if (!p || sourceKey(p) !== ps.key) {
        this.sources.delete(name);
        await ps.source.stop().catch(() => undefined);
        if (!p) this.onPoolBackends(name, undefined);
      }
    }
    const starts: Promise<void>[] = [];
    for (const p of config.pools) {
      if (this.sources.has(p.name)) continue;
      const source = this.sourceFactory(p);
      const ps: PoolSource = { key: sourceKey(p), source };
      this.sources.set(p.name, ps);
      starts.push(
        source.start((urls) => {
          if (this.sources.get(p.name) === ps) this.onPoolBackends(p.name, urls);
        }),
      );
    }
    // A source that cannot sync (API server unreachable) keeps retrying in the background; the router
    // serves what it has meanwhile and /readyz says not ready.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(starts),
      new Promise<void>((r) => {
        timer = setTimeout(r, this.o.discoveryStartTimeoutMs ?? 10_000);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    if (diff?.serviceChanged) {
      // Gauges were reset above: publish them again under the new service labels.
      const labels = this.svcLabels();
      for (const [pool, bs] of this.registryOfBackends.byPool()) {
        this.metrics.backends.set({ ...labels, pool }, bs.length);
        for (const b of bs) this.metrics.inflight.set({ ...labels, pool, backend: b.label }, b.inflight);
      }
    }
    this.countReload('success');
    this.log.info(
      {
        origin,
        service: `${config.service.namespace}/${config.service.name}`,
        pools: config.pools.map((p) => p.name),
        splitEntries: config.split.length,
        ...(diff ? { changed: summariseDiff(diff) } : {}),
      },
      diff ? 'router configuration reloaded' : 'router configuration loaded',
    );
  }

  private publishSplit(config: RouterConfig): void {
    const g = this.metrics.splitWeight;
    g.reset();
    const { namespace, name: service } = config.service;
    for (const s of config.split) {
      const w = normaliseWeights(s.weights);
      const input_le = config.buckets.inputEdges[s.input];
      const output_le = config.buckets.outputEdges[s.output];
      if (input_le === undefined || output_le === undefined) continue;
      for (const [pool, share] of w) g.set({ namespace, service, input_le: String(input_le), output_le: String(output_le), pool }, share);
    }
  }

  private svcLabels() {
    const c = this.snapshot?.config.service;
    return { namespace: c?.namespace ?? '', service: c?.name ?? '' };
  }

  private onPoolBackends(pool: string, urls: string[] | undefined): void {
    const removed = urls === undefined ? this.registryOfBackends.removePool(pool) : this.registryOfBackends.setPool(pool, urls);
    const labels = this.svcLabels();
    for (const b of removed) if (b.inflight === 0) this.metrics.inflight.remove({ ...labels, pool: b.pool, backend: b.label });
    if (urls === undefined) this.metrics.backends.remove({ ...labels, pool });
    else {
      this.metrics.backends.set({ ...labels, pool }, urls.length);
      for (const b of this.registryOfBackends.byPool().get(pool) ?? []) this.metrics.inflight.set({ ...labels, pool, backend: b.label }, b.inflight);
    }
    this.log.info({ pool, backends: urls?.length ?? 0, removed: removed.length }, 'backends updated');
  }

  ready(): boolean {
    return this.snapshot !== undefined && !this.draining && [...this.sources.values()].every((s) => s.source.synced);
  }

  // ---------------------------------------------------------------------------------------------
  // HTTP

  private async listen(): Promise<void> {
    const host = this.o.host ?? '127.0.0.1';
    const server = http.createServer((req, res) => this.onRequest(req, res));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.url = `http://${fmtHost(host)}:${(server.address() as AddressInfo).port}`;
    this.metricsUrl = `${this.url}/metrics`;
    if (this.o.metricsPort !== undefined) {
      const mhost = this.o.metricsHost ?? host;
      const ms = http.createServer((req, res) => {
        const path = (req.url ?? '/').split('?')[0];
        if (path === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) void this.serveMetrics(res);
        else if (path === '/healthz') sendJson(res, 200, { status: 'ok' });
        else sendJson(res, 404, errorBody(`no route for ${path}`, 'not_found', 404));
      });
      this.metricsServer = ms;
      await new Promise<void>((resolve, reject) => {
        ms.once('error', reject);
        ms.listen(this.o.metricsPort, mhost, () => {
          ms.off('error', reject);
          resolve();
        });
      });
      this.metricsUrl = `http://${fmtHost(mhost)}:${(ms.address() as AddressInfo).port}/metrics`;
    }
  }

  private async serveMetrics(res: ServerResponse): Promise<void> {
    try {
      const text = await this.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType, 'content-length': Buffer.byteLength(text) });
      res.end(text);
    } catch (err) {
      sendJson(res, 500, errorBody(`metrics: ${(err as Error).message}`, 'internal_error', 500));
    }
  }

  private reject(res: ServerResponse, status: number, reason: string, message: string, param?: string): void {
    this.metrics.rejected.inc({ ...this.svcLabels(), reason });
    const type = status === 413 ? 'request_too_large' : status === 404 ? 'not_found' : status === 405 ? 'method_not_allowed' : 'invalid_request_error';
    sendJson(res, status, errorBody(message, type, status, param), status === 413 ? { connection: 'close' } : {});
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
    if (this.draining) res.setHeader('connection', 'close');
    const method = req.method ?? 'GET';
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (path === '/readyz') {
      const ready = this.ready();
      const pools = Object.fromEntries(this.registryOfBackends.readyCounts());
      return sendJson(res, ready ? 200 : 503, { ready, draining: this.draining, pools });
    }
    if (path === '/metrics' && this.o.metricsPort === undefined) {
      if (method !== 'GET' && method !== 'HEAD') return this.reject(res, 405, 'method', 'use GET for /metrics');
      void this.serveMetrics(res);
      return;
    }
    let endpoint: InferenceEndpoint | undefined;
    if (path === '/v1/completions') endpoint = 'completions';
    else if (path === '/v1/chat/completions') endpoint = 'chat';
    else if (path === '/v1/models') {
      if (method !== 'GET') return this.reject(res, 405, 'method', 'use GET for /v1/models');
      this.track(res);
      void this.proxyModels(req, res, rawUrl);
      return;
    }
    if (!endpoint) return this.reject(res, 404, 'not_found', `no route for ${path}`);
    if (method !== 'POST') return this.reject(res, 405, 'method', `use POST for ${path}`);
    this.track(res);
    this.inference(req, res, endpoint, rawUrl).catch((err: unknown) => {
      this.log.error({ err: (err as Error)?.stack ?? String(err) }, 'router error');
      if (!res.headersSent) sendJson(res, 500, errorBody('internal router error', 'internal_error', 500));
      else res.destroy();
    });
  }

  /** Counts a proxied request as active until its response closes (for graceful shutdown). */
  private track(res: ServerResponse): void {
    this.active++;
    res.once('close', () => {
      this.active--;
      if (this.active === 0) {
        const w = this.idleWaiters;
        this.idleWaiters = [];
        for (const f of w) f();
      }
    });
  }

  private async inference(req: IncomingMessage, res: ServerResponse, endpoint: InferenceEndpoint, rawUrl: string): Promise<void> {
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

    const snap = this.snapshot as Snapshot;
    const estimator = this.estimator as OutputLengthEstimator;
    const cls = classify(request, snap.config.buckets, (i) => estimator.estimate(i));
    const resolved = snap.table[cls.input]?.[cls.output] ?? capacityWeights(this.registryOfBackends.readyCounts());
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
    res.once('close', () => {
      if (!res.writableFinished) clientGone = true;
    });
    for (;;) {
      if (clientGone) {
        this.count(previousPool, 499, cls.inputTokens, cls.outputTokens, undefined);
        return;
      }
      const plan = planAttempt({
        weights: resolved.weights,
        backends: this.registryOfBackends.byPool(),
        tried,
        previousPool,
        attempts,
        maxAttempts: routing.maxAttempts,
        now: this.wall(),
        tieBreak: (pool) => this.nextTie(pool),
        pickPool: (w, eligible) => this.pickPool(snap, key, cls, w, eligible),
      });
      if (plan.kind === 'give-up') {
        const message =
          plan.reason === 'no-backend'
            ? `no ready backend for this request's size bucket (input <= ${bucketLabel(snap.config.buckets.inputEdges, cls.input)}, output <= ${bucketLabel(snap.config.buckets.outputEdges, cls.output)} tokens; pools with weight: ${[...resolved.weights.keys()].join(', ') || 'none'})`
            : `no backend could be reached after ${attempts} attempt(s)${lastError ? `: ${lastError.message}` : ''}`;
        this.count(undefined, 503, cls.inputTokens, cls.outputTokens, undefined);
        this.log.warn({ reason: plan.reason, attempts, input: cls.input, output: cls.output }, 'no backend available');
        return sendJson(res, 503, errorBody(message, 'service_unavailable', 503), { 'retry-after': '1' });
      }
      if (attempts > 0) this.metrics.retries.inc({ ...this.svcLabels(), pool: previousPool ?? plan.pool });
      attempts++;
      tried.add(plan.backend.id);
      previousPool = plan.pool;
      const backend = plan.backend;
      this.inflight(backend, +1);
      const r = await this.sendUpstream(backend, rawUrl, 'POST', req, upstreamBody, res, routing.connectTimeoutMs);
      if (r.kind === 'response') {
        this.relay(r.upRes, res, backend, { t0, stripUsage, cls });
        return;
      }
      this.inflight(backend, -1);
      if (r.kind === 'client-gone') {
        this.count(backend.pool, 499, cls.inputTokens, cls.outputTokens, undefined);
        return;
      }
      lastError = r.error;
      backend.ejectedUntil = this.wall() + routing.ejectMs;
      this.metrics.upstreamErrors.inc({ ...this.svcLabels(), pool: backend.pool, phase: 'connect' });
      this.log.warn({ backend: backend.label, pool: backend.pool, attempt: attempts, err: r.error.message }, 'backend connection failed');
      if (!shouldRetry({ phase: 'before-response', clientBytesSent: res.headersSent, clientGone, attempts, maxAttempts: routing.maxAttempts })) {
        if (clientGone) {
          this.count(backend.pool, 499, cls.inputTokens, cls.outputTokens, undefined);
          return;
        }
        this.count(undefined, 503, cls.inputTokens, cls.outputTokens, undefined);
        return sendJson(res, 503, errorBody(`no backend could be reached after ${attempts} attempt(s): ${r.error.message}`, 'service_unavailable', 503), { 'retry-after': '1' });
      }
    }
  }

  /** The split's weighted pick for the bucket, then the SLO guard (slo-guard.ts) when routing.sloGuard is set. */
  private pickPool(snap: Snapshot, key: string, cls: { inputTokens: number; outputTokens: number }, w: PoolWeights, eligible: (pool: string) => boolean): string | undefined {
    const picked = (this.picker as PoolPicker).pick(key, w, eligible);
    const guard = snap.config.routing.sloGuard;
    if (picked === undefined || !guard) return picked;
    const d = guardPool({ picked, input: cls.inputTokens, output: cls.outputTokens, models: snap.models, eligible, guard });
    if (d.redirectedFrom !== undefined) this.metrics.sloGuardRedirects.inc({ ...this.svcLabels(), from_pool: d.redirectedFrom, to_pool: d.pool });
    return d.pool;
  }

  /** Per-pool rotating counter, so equally loaded backends of a pool take turns. */
  private nextTie(pool: string): number {
    const t = this.poolTies.get(pool) ?? 0;
    this.poolTies.set(pool, (t + 1) % 1_000_000_007);
    return t;
  }

  private inflight(b: Backend, delta: number): void {
    b.inflight += delta;
    const labels = { ...this.svcLabels(), pool: b.pool, backend: b.label };
    if (!b.listed && b.inflight === 0) this.metrics.inflight.remove(labels);
    else this.metrics.inflight.set(labels, b.inflight);
  }

  /**
   * One attempt on one backend. A kept-alive socket the backend closed while idle fails with ECONNRESET as
   * soon as it is reused (a race inherent to HTTP keep-alive): that is resent on a fresh connection to the
   * same backend, not counted as a failed attempt (Node's documented `reusedSocket` pattern).
   */
  private async sendUpstream(
    backend: Backend,
    rawUrl: string,
    method: string,
    req: IncomingMessage,
    body: Buffer | undefined,
    res: ServerResponse,
    connectTimeoutMs: number,
  ): Promise<UpstreamResult> {
    for (let stale = 0; ; stale++) {
      const r = await this.sendOnce(backend, rawUrl, method, req, body, res, connectTimeoutMs);
      if (r.kind === 'failed' && r.reusedSocket && (r.error as NodeJS.ErrnoException).code === 'ECONNRESET' && stale < 2 && !res.destroyed) {
        this.log.debug({ backend: backend.label }, 'kept-alive connection was closed by the backend; resending on a new one');
        continue;
      }
      return r;
    }
  }

  private sendOnce(
    backend: Backend,
    rawUrl: string,
    method: string,
    req: IncomingMessage,
    body: Buffer | undefined,
    res: ServerResponse,
    connectTimeoutMs: number,
  ): Promise<UpstreamResult> {
    return new Promise((resolve) => {
      let settled = false;
      const settle = (r: UpstreamResult) => {
        if (settled) return;
        settled = true;
        res.off('close', onClientClose);
        clearTimeout(timer);
        resolve(r);
      };
      const u = backend.url;
      const isHttps = u.protocol === 'https:';
      const basePath = u.pathname.replace(/\/+$/, '');
      const headers = requestHeaders(req.headers, body?.length, req.socket.remoteAddress);
      // The body was validated as JSON; some servers insist on the content type.
      if (body !== undefined) headers['content-type'] = 'application/json';
      const upReq = (isHttps ? https : http).request({
        protocol: u.protocol,
        hostname: u.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: u.port || (isHttps ? 443 : 80),
        method,
        path: `${basePath}${rawUrl}`,
        headers,
        agent: isHttps ? this.httpsAgent : this.httpAgent,
      });
      let timer: NodeJS.Timeout | undefined;
      upReq.on('socket', (sock) => {
        if (!sock.connecting) return;
        timer = setTimeout(() => upReq.destroy(new Error(`connect timeout after ${connectTimeoutMs} ms`)), connectTimeoutMs);
        sock.once('connect', () => clearTimeout(timer));
      });
      const onClientClose = () => {
        if (res.writableFinished) return;
        upReq.destroy();
        settle({ kind: 'client-gone' });
      };
      res.on('close', onClientClose);
      upReq.on('response', (upRes) => settle({ kind: 'response', upReq, upRes }));
      upReq.on('error', (error) => settle({ kind: 'failed', error, reusedSocket: upReq.reusedSocket }));
      upReq.end(body);
    });
  }

  private relay(
    upRes: IncomingMessage,
    res: ServerResponse,
    backend: Backend,
    ctx: { t0: number; stripUsage: boolean; cls: { inputTokens: number; outputTokens: number; input: number; output: number } },
  ): void {
    const status = upRes.statusCode ?? 502;
    const isSse = /text\/event-stream/i.test(String(upRes.headers['content-type'] ?? ''));
    const headers = responseHeaders(upRes.headers, isSse && ctx.stripUsage);
    headers['x-melange-pool'] = backend.pool;
    if (this.draining) headers.connection = 'close';
    let tFirst: number | undefined;
    const scanner = isSse
      ? new SseScanner({ stripUsageChunk: ctx.stripUsage, onFirstEvent: () => { tFirst = this.now(); } })
      : new JsonScanner(MAX_USAGE_COPY_BYTES);
    res.writeHead(status, headers);

    // Manual piping (lighter than stream.pipeline + a Transform per request): forward each chunk as it
    // comes, pause the backend while the client's socket is full.
    let done = false;
    let clientGone = false;
    const onData = (chunk: Buffer) => {
      const out = scanner.push(chunk);
      if (out && !res.write(out)) upRes.pause();
    };
    const onDrain = () => upRes.resume();
    const onEnd = () => {
      const tail = scanner.flush();
      if (tail) res.end(tail);
      else res.end();
    };
    const onUpstreamError = (err: Error) => {
      finish(err);
      res.destroy(); // the client sees a cut stream (the status line is already out)
    };
    const onUpstreamClose = () => {
      if (!upRes.complete) onUpstreamError(new Error('the backend closed the response before its end'));
    };
    const onResClose = () => {
      if (res.writableFinished) return;
      clientGone = true;
      upRes.destroy();
      finish(new Error('client closed the connection'));
    };
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      upRes.off('data', onData);
      upRes.off('end', onEnd);
      res.off('drain', onDrain);
      upRes.on('error', () => undefined); // late errors of a destroyed response
      this.inflight(backend, -1);
      const tEnd = this.now();
      let code = status;
      if (err) {
        if (clientGone) code = 499;
        else {
          this.metrics.upstreamErrors.inc({ ...this.svcLabels(), pool: backend.pool, phase: 'stream' });
          this.log.warn({ backend: backend.label, pool: backend.pool, err: err.message }, 'response stream failed after it started');
        }
      }
      const ok = !err && status >= 200 && status < 300;
      const usage = scanner.usage;
      this.count(backend.pool, code, ctx.cls.inputTokens, ctx.cls.outputTokens, usage, ctx.cls);
      if (!ok) return;
      const labels = { ...this.svcLabels(), pool: backend.pool };
      if (usage && usage.completionTokens > 0) this.metrics.tpot.observe(labels, (tEnd - ctx.t0) / 1000 / usage.completionTokens);
      if (isSse && tFirst !== undefined) this.metrics.ttft.observe(labels, (tFirst - ctx.t0) / 1000);
    };
    upRes.on('data', onData);
    upRes.once('end', onEnd);
    upRes.once('error', onUpstreamError);
    upRes.once('close', onUpstreamClose);
    res.on('drain', onDrain);
    res.once('finish', () => finish());
    res.once('close', onResClose);
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
    const snap = this.snapshot as Snapshot;
    const { inputEdges, outputEdges } = snap.config.buckets;
    const inTok = usage?.promptTokens ?? estIn;
    const outTok = usage?.completionTokens ?? estOut;
    const inIdx = bucketIndex(inputEdges, inTok);
    const outIdx = bucketIndex(outputEdges, outTok);
    const labels = this.svcLabels();
    this.metrics.requests.inc({
      ...labels,
      input_le: bucketLabel(inputEdges, inIdx),
      output_le: bucketLabel(outputEdges, outIdx),
      pool: pool ?? NO_POOL,
      code: String(code),
    });
    if (!usage) this.metrics.usageEstimated.inc(labels);
    else if (code >= 200 && code < 300) {
      this.estimator?.observe(inIdx, usage.completionTokens);
      if (routed && routed.input !== inIdx) this.metrics.bucketMismatch.inc({ ...labels, dimension: 'input' });
      if (routed && routed.output !== outIdx) this.metrics.bucketMismatch.inc({ ...labels, dimension: 'output' });
    }
  }

  private async proxyModels(req: IncomingMessage, res: ServerResponse, rawUrl: string): Promise<void> {
    const snap = this.snapshot as Snapshot;
    const tried = new Set<string>();
    const all = this.registryOfBackends.all();
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
      const r = await this.sendUpstream(backend, rawUrl, 'GET', req, undefined, res, snap.config.routing.connectTimeoutMs);
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

  // ---------------------------------------------------------------------------------------------
  // lifecycle

  close(graceMs = this.o.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS): Promise<void> {
    if (!this.closing) this.closing = this.doClose(graceMs);
    return this.closing;
  }

  private async doClose(graceMs: number): Promise<void> {
    this.draining = true;
    this.watcher?.stop();
    const server = this.server;
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    server?.closeIdleConnections();
    if (this.active > 0) {
      this.log.info({ inflight: this.active, graceMs }, 'draining in-flight requests');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((r) => this.idleWaiters.push(r)),
        new Promise<void>((r) => {
          timer = setTimeout(r, graceMs);
        }),
      ]);
      clearTimeout(timer);
      if (this.active > 0) this.log.warn({ inflight: this.active }, 'grace period over; closing the remaining connections');
    }
    server?.closeAllConnections();
    await closed;
    if (this.metricsServer) {
      const ms = this.metricsServer;
      const mclosed = new Promise<void>((r) => ms.close(() => r()));
      ms.closeAllConnections();
      await mclosed;
    }
    await Promise.all([...this.sources.values()].map((s) => s.source.stop().catch(() => undefined)));
    this.sources.clear();
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    this.log.info('router stopped');
  }

  handle(): RouterHandle {
    return {
      url: this.url,
      metricsUrl: this.metricsUrl,
      registry: this.metrics.registry,
      config: () => (this.snapshot as Snapshot).config,
      reloads: () => ({ ...this.reloadCounts }),
      applyConfig: (raw) => this.applyRaw(raw),
      reload: async () => {
        await this.watcher?.check();
        await this.applying;
      },
      backends: () =>
        Object.fromEntries([...this.registryOfBackends.byPool()].map(([pool, bs]) => [pool, bs.map((b) => ({ url: b.id, inflight: b.inflight }))])),
      ready: () => this.ready(),
      close: (opts) => this.close(opts?.graceMs),
    };
  }
}

function fmtHost(h: string): string {
  return h.includes(':') ? `[${h}]` : h;
}

function sourceKey(p: PoolConfig): string {
  return JSON.stringify({ backends: p.backends ?? null, discovery: p.discovery ?? null, dns: p.dns ?? null });
}

function summariseDiff(d: ConfigDiff): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (d.unchanged) return { unchanged: true };
  if (d.serviceChanged) out.service = true;
  if (d.inputEdgesChanged || d.outputEdgesChanged) out.buckets = true;
  if (d.splitChanged.length) out.splitBuckets = d.splitChanged.length;
  if (d.poolsAdded.length) out.poolsAdded = d.poolsAdded;
  if (d.poolsRemoved.length) out.poolsRemoved = d.poolsRemoved;
  if (d.poolSourceChanged.length) out.poolSourceChanged = d.poolSourceChanged;
  if (d.gpuTypeChanged.length) out.gpuTypeChanged = d.gpuTypeChanged;
  if (d.latencyChanged.length) out.latencyChanged = d.latencyChanged;
  if (d.routingChanged) out.routing = true;
  return out;
}

/** Starts the router: loads the configuration (throws RouterConfigError if invalid), starts discovery, listens. */
export async function startRouter(opts: StartRouterOptions): Promise<RouterHandle> {
  const router = new Router(opts);
  try {
    await router.start();
  } catch (err) {
    await router.close(0).catch(() => undefined);
    throw err;
  }
  return router.handle();
}
