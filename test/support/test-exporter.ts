/** A tiny metrics endpoint on 127.0.0.1 (prom-client, own registry) to be scraped by the test Prometheus. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';

export interface TestExporter {
  /** "127.0.0.1:<port>", the scrape target. */
  target: string;
  url: string;
  registry: Registry;
  close(): Promise<void>;
}

/** Serves `registry` on http://127.0.0.1:<free port>/metrics. */
export async function startExporter(registry: Registry): Promise<TestExporter> {
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(body),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    target: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}/metrics`,
    registry,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** An exporter with one gauge `name` set to `value`. */
export async function startGaugeExporter(name: string, value: number, help = 'test gauge'): Promise<TestExporter & { gauge: Gauge }> {
  const registry = new Registry();
  const gauge = new Gauge({ name, help, registers: [registry] });
  gauge.set(value);
  return { ...(await startExporter(registry)), gauge };
}

export interface RouterSeries {
  /** The router's labels; pool and code default to "a" and "200". */
  labels: { namespace: string; service: string; input_le: string; output_le: string; pool?: string; code?: string };
  /** Requests per second this series grows by. */
  rate: number;
}

/**
 * Registers the router's `melange_router_requests_total` on `registry`, each series growing exactly linearly at
 * its rate: computed at scrape time from `elapsedSeconds()` (value = rate × elapsed), so no timers and no drift,
 * and a restarted Prometheus sees the same straight lines. Every series exists from the first scrape.
 */
export function addRouterRequestsCounter(registry: Registry, series: RouterSeries[], elapsedSeconds: () => number): void {
  const emitted = new Map<string, number>();
  new Counter({
    name: 'melange_router_requests_total',
    help: 'Requests by size bucket (test exporter)',
    labelNames: ['namespace', 'service', 'input_le', 'output_le', 'pool', 'code'] as const,
    registers: [registry],
    collect() {
      const elapsed = elapsedSeconds();
      for (const s of series) {
        const labels = { pool: 'a', code: '200', ...s.labels };
        const key = JSON.stringify(labels);
        const target = s.rate * elapsed;
        const delta = target - (emitted.get(key) ?? 0);
        if (delta > 0) this.inc(labels, delta);
        else if (!emitted.has(key)) this.inc(labels, 0);
        emitted.set(key, target);
      }
    },
  });
}

/** An exporter of linearly growing router request counters (addRouterRequestsCounter), capped at `maxRunMs`. */
export async function startRouterExporter(series: RouterSeries[], maxRunMs = 600_000): Promise<TestExporter> {
  const registry = new Registry();
  const t0 = Date.now();
  addRouterRequestsCounter(registry, series, () => Math.min(Date.now() - t0, maxRunMs) / 1000);
  return startExporter(registry);
}
