import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BodyTooLarge, readBody } from '../../../src/router/http.js';

interface Outcome {
  body?: string;
  error?: Error;
  /** Listeners readBody left on the request after it settled. */
  left: number;
}

/** A real server on 127.0.0.1 whose handler runs readBody and reports how it ended. */
async function serve(max: number): Promise<{ url: string; next: () => Promise<Outcome>; close: () => Promise<void> }> {
  const outcomes: Outcome[] = [];
  const waiters: ((o: Outcome) => void)[] = [];
  const report = (o: Outcome) => {
    const w = waiters.shift();
    if (w) w(o);
    else outcomes.push(o);
  };
  const left = (req: IncomingMessage) => ['data', 'end', 'error', 'aborted'].reduce((n, e) => n + req.listenerCount(e), 0);
  const server = http.createServer((req, res) => {
    const before = left(req);
    readBody(req, max).then(
      (b) => {
        report({ body: b.toString('utf8'), left: left(req) - before });
        res.end('ok');
      },
      (error: Error) => {
        report({ error, left: left(req) - before });
        res.destroy();
      },
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    next: () => new Promise((r) => { const o = outcomes.shift(); if (o) r(o); else waiters.push(r); }),
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

describe('readBody over a real socket', () => {
  const servers: { close: () => Promise<void> }[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('returns the body, and takes its listeners off the request', async () => {
    const s = await serve(1024);
    servers.push(s);
    const res = await fetch(s.url, { method: 'POST', body: 'héllo' });
    expect(await res.text()).toBe('ok');
    expect(await s.next()).toEqual({ body: 'héllo', left: 0 });
  });

  it('rejects an over-limit body with BodyTooLarge, declared or not', async () => {
    const s = await serve(8);
    servers.push(s);
    await fetch(s.url, { method: 'POST', body: 'x'.repeat(100) }).catch(() => undefined);
    const declared = await s.next();
    expect(declared.error).toBeInstanceOf(BodyTooLarge);
    expect(declared.left).toBe(0);
    // chunked (no Content-Length): found over the limit while reading
    await new Promise<void>((resolve) => {
      const req = http.request(s.url, { method: 'POST' }, () => resolve());
      req.on('error', () => resolve());
      req.write('x'.repeat(5));
      req.end('y'.repeat(50));
    });
    const chunked = await s.next();
    expect(chunked.error).toBeInstanceOf(BodyTooLarge);
    expect(chunked.left).toBe(0);
  });

  it('rejects when the client leaves halfway through the body, and leaves no listener behind', async () => {
    const s = await serve(1024);
    servers.push(s);
    const req = http.request(s.url, { method: 'POST', headers: { 'content-length': '500' } });
    req.on('error', () => undefined);
    req.write('x'.repeat(100));
    await new Promise((r) => setTimeout(r, 50));
    req.destroy();
    const o = await s.next();
    expect(o.error).toBeInstanceOf(Error);
    expect(o.error).not.toBeInstanceOf(BodyTooLarge);
    expect(o.left).toBe(0);
  });
});
