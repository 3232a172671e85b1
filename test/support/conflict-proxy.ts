/**
 * A TLS pass-through proxy on 127.0.0.1 in front of the test kube-apiserver that can make a real 409 happen
 * on demand: when a request matches `conflictOn`, the proxy first writes to the same object itself (through
 * the real API server, as admin), so the forwarded request — still carrying the resourceVersion its sender
 * read — is rejected by the API server with a genuine Conflict. Nothing is faked: the 409 and the retry both
 * cross the real API server. Everything else (including watches) is streamed through unchanged.
 */
import { readFileSync } from 'node:fs';
import { createServer, request as httpsRequest, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Pki } from './pki.js';

export interface ProxiedRequest {
  method: string;
  path: string;
  status: number;
}

export interface ConflictProxy {
  url: string;
  /** Every request forwarded, in order, with the status the API server answered. */
  log: ProxiedRequest[];
  /** Arm once: the next request for which `match` is true is preceded by `interfere()`. */
  conflictOn(match: (method: string, path: string) => boolean, interfere: () => Promise<void>): void;
  close(): Promise<void>;
}

export async function startConflictProxy(apiUrl: string, pki: Pki): Promise<ConflictProxy> {
  const upstream = new URL(apiUrl);
  if (upstream.hostname !== '127.0.0.1') throw new Error(`conflict proxy: upstream must be 127.0.0.1, got ${upstream.hostname}`);
  const tls = { ca: readFileSync(pki.caCrt), cert: readFileSync(pki.adminCrt), key: readFileSync(pki.adminKey) };
  const log: ProxiedRequest[] = [];
  let armed: { match: (m: string, p: string) => boolean; interfere: () => Promise<void> } | undefined;

  const forward = (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const up = httpsRequest(
      { host: '127.0.0.1', port: Number(upstream.port), method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host }, ...tls },
      (r) => {
        log.push({ method: req.method ?? '', path: req.url ?? '', status: r.statusCode ?? 0 });
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', (e) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`conflict proxy: ${e.message}`);
    });
    res.on('close', () => up.destroy());
    up.end(body);
  };

  const server: Server = createServer({ cert: readFileSync(pki.componentsCrt), key: readFileSync(pki.componentsKey) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const hit = armed && armed.match(req.method ?? '', req.url ?? '') ? armed : undefined;
      if (!hit) return forward(req, res, body);
      armed = undefined;
      hit.interfere().then(
        () => forward(req, res, body),
        (e: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`conflict proxy: interfering write failed: ${String(e)}`);
        },
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `https://127.0.0.1:${port}`,
    log,
    conflictOn(match, interfere) {
      armed = { match, interfere };
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
