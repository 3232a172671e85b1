import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

// Probe and metrics endpoints. /healthz answers while the event loop runs; /readyz when the caches are
// synced (standbys are ready too: they hold warm caches and take over on failover).

export interface Endpoint {
  server: Server;
  /** "host:port" actually bound (port 0 resolved). */
  address: string;
  close(): Promise<void>;
}

/** "127.0.0.1:8081", ":8081" (all interfaces) or "0" (disabled → undefined). */
export function parseAddress(addr: string): { host: string; port: number } | undefined {
  if (addr === '0') return undefined;
  const i = addr.lastIndexOf(':');
  if (i < 0) throw new RangeError(`address "${addr}" must be host:port, :port or 0`);
  const host = addr.slice(0, i).replace(/^\[(.*)\]$/, '$1') || '0.0.0.0';
  const port = Number(addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`address "${addr}": bad port`);
  return { host, port };
}

type Handler = (path: string) => Promise<{ status: number; body: string; contentType?: string }>;

async function listen(addr: { host: string; port: number }, handler: Handler): Promise<Endpoint> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    handler(path).then(
      (r) => res.writeHead(r.status, { 'content-type': r.contentType ?? 'text/plain; charset=utf-8' }).end(r.body),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(addr.port, addr.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  return {
    server,
    address: `${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function startProbeServer(addr: { host: string; port: number }, isReady: () => { ok: boolean; detail: string }): Promise<Endpoint> {
  return listen(addr, async (path) => {
    if (path === '/healthz' || path === '/livez') return { status: 200, body: 'ok' };
    if (path === '/readyz') {
      const r = isReady();
      return { status: r.ok ? 200 : 503, body: r.ok ? 'ok' : r.detail };
    }
    return { status: 404, body: 'not found' };
  });
}

export function startMetricsServer(addr: { host: string; port: number }, registry: Registry): Promise<Endpoint> {
  return listen(addr, async (path) =>
    path === '/metrics' ? { status: 200, body: await registry.metrics(), contentType: registry.contentType } : { status: 404, body: 'not found' },
  );
}
