/**
 * `melangectl router --workers N`: N router processes sharing one listening port (node:cluster), supervised by
 * the primary.
 *
 * Why: one Node process relays every SSE chunk on one core. An engine step of each backend emits a chunk for
 * every stream it runs at the same instant, so with hundreds of streams a new request's first byte can wait
 * behind a burst of relays (docs/benchmarks.md: p99 added latency 10 ms at 200 streams in one process, about
 * half with two workers on the same two cores). Workers split the streams and the bursts; each is a complete
 * router (config watch, discovery, routing) so nothing is shared but the port.
 *
 * The primary accepts nothing itself: it serves the workers' metrics SUMMED on the metrics port (prom-client's
 * AggregatorRegistry; per-worker gauges that are the same in every worker, like the split, are taken once —
 * see metrics.ts), forwards SIGTERM/SIGINT/SIGHUP to the workers, waits for their drains, and replaces a worker
 * that dies (at most MAX_RESTARTS within RESTART_WINDOW_MS, then it stops everything and exits 1 so that
 * Kubernetes restarts the pod rather than a crash loop hiding inside it).
 */
import cluster, { type Worker } from 'node:cluster';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { AggregatorRegistry, type Registry } from 'prom-client';

export const MAX_RESTARTS = 5;
export const RESTART_WINDOW_MS = 60_000;

export interface ClusterPrimaryOptions {
  workers: number;
  metricsHost: string;
  metricsPort: number;
  /** How long a worker may take to drain after SIGTERM before it is killed. */
  shutdownGraceMs: number;
  logger: Logger;
  /** Resolves with the signal that should stop the cluster. */
  untilSignal: () => Promise<string>;
}

export const isRouterWorker = (): boolean => cluster.isWorker;

/** In a worker: answer the primary's metric requests with this registry. */
export function serveMetricsToPrimary(registry: Registry): void {
  new AggregatorRegistry(); // installs the worker's message listener (idempotent)
  AggregatorRegistry.setRegistries([registry]);
}

/** The primary: forks and supervises the workers, serves their metrics; resolves with the exit code. */
export async function runClusterPrimary(o: ClusterPrimaryOptions): Promise<number> {
  const log = o.logger;
  const aggregator = new AggregatorRegistry();
  let stopping = false;
  // Our own set: cluster.workers drops a worker only around its last of 'exit'/'disconnect', in either order.
  const live = new Set<Worker>();
  const restarts: number[] = [];
  let failed = false;

  const metrics = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: `no route for ${path}`, code: 404 } }));
      return;
    }
    aggregator.clusterMetrics().then(
      (text) => res.writeHead(200, { 'content-type': aggregator.contentType }).end(text),
      (err: Error) => res.writeHead(503, { 'content-type': 'text/plain' }).end(`metrics of the workers unavailable: ${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    metrics.once('error', reject);
    metrics.listen(o.metricsPort, o.metricsHost, () => resolve());
  });
  const addr = metrics.address() as AddressInfo;
  const host = o.metricsHost.includes(':') ? `[${o.metricsHost}]` : o.metricsHost;
  const metricsUrl = `http://${host}:${addr.port}/metrics`;

  let stopAll: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => { stopAll = resolve; });

  const fork = (): Worker => {
    const w = cluster.fork();
    live.add(w);
    w.on('exit', (code, signal) => {
      live.delete(w);
      if (stopping) {
        if (live.size === 0) stopAll(failed ? 1 : 0);
        return;
      }
      const now = Date.now();
      while (restarts.length > 0 && restarts[0]! < now - RESTART_WINDOW_MS) restarts.shift();
      if (restarts.length >= MAX_RESTARTS) {
        log.error({ worker: w.process.pid, code, signal, restarts: restarts.length }, `router worker died; ${MAX_RESTARTS} restarts within ${RESTART_WINDOW_MS / 1000} s already: stopping`);
        failed = true;
        void shutdown('worker-crash-loop');
        return;
      }
      restarts.push(now);
      const next = fork();
      log.error({ worker: w.process.pid, code, signal, replacement: next.process.pid }, 'router worker died; started a replacement');
    });
    return w;
  };

  const shutdown = async (reason: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ reason, workers: live.size }, 'stopping the router workers');
    if (live.size === 0) stopAll(failed ? 1 : 0);
    for (const w of live) w.process.kill('SIGTERM');
    // A worker that does not finish its drain in time is killed; its streams are cut either way.
    const killer = setTimeout(() => {
      for (const w of live) w.process.kill('SIGKILL');
    }, o.shutdownGraceMs + 5_000);
    killer.unref();
  };

  const onHup = () => {
    for (const w of live) w.process.kill('SIGHUP');
  };
  process.on('SIGHUP', onHup);
  for (let i = 0; i < o.workers; i++) fork();
  log.info({ workers: o.workers, metricsUrl }, 'router primary started');
  void o.untilSignal().then((signal) => shutdown(signal));
  const code = await finished;
  process.off('SIGHUP', onHup);
  await new Promise<void>((resolve) => metrics.close(() => resolve()));
  log.info({ code }, 'router workers stopped');
  return code;
}
