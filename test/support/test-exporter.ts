/** A tiny metrics endpoint on 127.0.0.1 (prom-client, own registry) to be scraped by the test Prometheus. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Gauge, Registry } from 'prom-client';

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
