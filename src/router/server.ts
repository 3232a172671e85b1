/**
 * The size-aware router: an OpenAI-compatible reverse proxy that classifies each request into an
 * (input, output) size bucket, picks a GPU pool by the solved split for that bucket, then the least-loaded
 * ready backend of that pool, and streams the answer back. See docs/router.md.
 *
 * This file serves HTTP and runs the lifecycle; the parts live in live-config.ts (configuration, reloads,
 * backend sources), proxy.ts (routing a request), upstream.ts (the backend client), relay.ts (streaming the
 * answer back) and http.ts (HTTP helpers).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { InferenceEndpoint } from './classify.js';
import type { ConfigResult, RouterConfig } from './config.js';
import { LazySource, makeSourceFactory, type SourceFactory } from './discovery.js';
import { DnsSource, type DnsSourceOptions } from './dns.js';
import { errorBody, fmtHost, sendJson } from './http.js';
import { LiveConfig, type Snapshot } from './live-config.js';
import { RouterMetrics } from './metrics.js';
import { RoutingProxy } from './proxy.js';
import { UpstreamClient } from './upstream.js';

export { RouterConfigError } from './live-config.js';

export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
export const DEFAULT_SHUTDOWN_GRACE_MS = 30_000;

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
  /**
   * false: serve no /metrics at all — a worker of `melangectl router --workers N`, whose primary serves the
   * workers' metrics summed on the metrics port (src/cli/router-cluster.ts). Default true.
   */
  serveMetrics?: boolean;
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

/**
 * Backend sources by pool kind: static lists, DNS, EndpointSlices. EndpointSlice discovery, and with it
 * @kubernetes/client-node (~30 MB of heap), is loaded only when a pool uses it; the KubeConfig on first use.
 */
function defaultSourceFactory(o: StartRouterOptions, log: Logger): SourceFactory {
  let kubeConfig: Promise<KubeConfig> | undefined;
  const getKubeConfig = (): Promise<KubeConfig> => {
    kubeConfig ??= (o.kubeConfig
      ? Promise.resolve().then(() => o.kubeConfig!())
      : import('@kubernetes/client-node').then(({ KubeConfig: Kc }) => {
          const kc = new Kc();
          kc.loadFromDefault();
          return kc;
        })
    ).catch((err: unknown) => {
      kubeConfig = undefined; // the next attempt loads it again
      throw err;
    });
    return kubeConfig;
  };
  return makeSourceFactory({
    discovery: (pool) =>
      new LazySource(`endpointslices(${pool.discovery.namespace}/${pool.discovery.service})`, async () => {
        const { EndpointSliceSource } = await import('./endpointslices.js');
        return new EndpointSliceSource({
          kubeConfig: await getKubeConfig(),
          namespace: pool.discovery.namespace,
          service: pool.discovery.service,
          port: pool.discovery.port,
          logger: log,
        });
      }, { logger: log }),
    dns: (pool) => new DnsSource({ ...o.dns, name: pool.dns.name, port: pool.dns.port, refreshMs: pool.dns.refreshMs, logger: log }),
  });
}

class Router {
  private readonly log: Logger;
  private readonly metrics: RouterMetrics;
  private readonly live: LiveConfig;
  private readonly upstream: UpstreamClient;
  private readonly proxy: RoutingProxy;
  private server: http.Server | undefined;
  private metricsServer: http.Server | undefined;
  private active = 0;
  private idleWaiters: (() => void)[] = [];
  private draining = false;
  private closing: Promise<void> | undefined;
  url = '';
  metricsUrl = '';

  constructor(private readonly o: StartRouterOptions) {
    this.log = o.logger ?? pino({ name: 'melange-router' });
    this.metrics = new RouterMetrics({ defaultMetrics: o.defaultMetrics ?? false });
    this.live = new LiveConfig({
      configFile: o.configFile,
      config: o.config,
      configPollMs: o.configPollMs,
      discoveryStartTimeoutMs: o.discoveryStartTimeoutMs,
      sourceFactory: o.sourceFactory ?? defaultSourceFactory(o, this.log),
      rng: o.rng ?? Math.random,
      log: this.log,
      metrics: this.metrics,
    });
    this.upstream = new UpstreamClient(this.log);
    this.proxy = new RoutingProxy({
      live: this.live,
      upstream: this.upstream,
      metrics: this.metrics,
      log: this.log,
      now: o.now ?? (() => performance.now()),
      wallClock: o.wallClock ?? (() => Date.now()),
      maxBodyBytes: o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
      draining: () => this.draining,
    });
  }

  async start(): Promise<void> {
    await this.live.load();
    await this.listen();
  }

  ready(): boolean {
    return !this.draining && this.live.synced();
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

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
    if (this.draining) res.setHeader('connection', 'close');
    const method = req.method ?? 'GET';
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (path === '/readyz') {
      const ready = this.ready();
      const pools = Object.fromEntries(this.live.backends.readyCounts());
      return sendJson(res, ready ? 200 : 503, { ready, draining: this.draining, pools });
    }
    if (path === '/metrics' && this.o.metricsPort === undefined && this.o.serveMetrics !== false) {
      if (method !== 'GET' && method !== 'HEAD') return this.proxy.reject(res, 405, 'method', 'use GET for /metrics');
      void this.serveMetrics(res);
      return;
    }
    let endpoint: InferenceEndpoint | undefined;
    if (path === '/v1/completions') endpoint = 'completions';
    else if (path === '/v1/chat/completions') endpoint = 'chat';
    else if (path === '/v1/models') {
      if (method !== 'GET') return this.proxy.reject(res, 405, 'method', 'use GET for /v1/models');
      this.track(res);
      void this.proxy.models(req, res, rawUrl);
      return;
    }
    if (!endpoint) return this.proxy.reject(res, 404, 'not_found', `no route for ${path}`);
    if (method !== 'POST') return this.proxy.reject(res, 405, 'method', `use POST for ${path}`);
    this.track(res);
    this.proxy.inference(req, res, endpoint, rawUrl).catch((err: unknown) => {
      this.log.error({ err: (err as Error)?.stack ?? String(err) }, 'router error');
      if (!res.headersSent) sendJson(res, 500, errorBody('internal router error', 'internal_error', 500));
      else res.destroy();
    });
  }

  /** Counts a proxied request as active until its response closes (for graceful shutdown). */
  private track(res: ServerResponse): void {
    this.active++;
    // One listener shared by every response ('close' is emitted once): nothing allocated per request.
    res.on('close', this.untrack);
  }

  private readonly untrack = (): void => {
    this.active--;
    if (this.active === 0) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  };

  // ---------------------------------------------------------------------------------------------
  // lifecycle

  close(graceMs = this.o.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS): Promise<void> {
    if (!this.closing) this.closing = this.doClose(graceMs);
    return this.closing;
  }

  private async doClose(graceMs: number): Promise<void> {
    this.draining = true;
    this.live.stopWatching();
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
    await this.live.stopSources();
    this.upstream.close();
    this.log.info('router stopped');
  }

  handle(): RouterHandle {
    return {
      url: this.url,
      metricsUrl: this.metricsUrl,
      registry: this.metrics.registry,
      config: () => (this.live.snapshot as Snapshot).config,
      reloads: () => this.live.reloads(),
      applyConfig: (raw) => this.live.applyConfig(raw),
      reload: () => this.live.reload(),
      backends: () =>
        Object.fromEntries([...this.live.backends.byPool()].map(([pool, bs]) => [pool, bs.map((b) => ({ url: b.id, inflight: b.inflight }))])),
      ready: () => this.ready(),
      close: (opts) => this.close(opts?.graceMs),
    };
  }
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
