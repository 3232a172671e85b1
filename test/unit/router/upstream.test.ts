/**
 * UpstreamClient over real sockets: a front server on 127.0.0.1 whose handler makes one attempt to a backend
 * (also on 127.0.0.1) on behalf of its client, then reports how it ended and which of the attempt's listeners
 * were still attached. The client request and the upstream request live as long as the streamed response, so
 * whatever an attempt leaves on them lives that long too.
 */
import http, { type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Backend } from '../../../src/router/backends.js';
import { UpstreamClient, type UpstreamResult } from '../../../src/router/upstream.js';
import { deadUrl } from './fake-upstream.js';

interface Outcome {
  kind: UpstreamResult['kind'];
  /** 'close' listeners the attempt left on the client's response (beyond those there before it). */
  leftOnClientResponse: number;
  /** Listeners left on the upstream request (response kind only): socket, response, error. */
  leftOnUpstreamRequest?: { socket: number; response: number; error: number };
}

interface Server {
  url: string;
  close: () => Promise<void>;
}

async function listen(handler: http.RequestListener): Promise<Server & { server: http.Server }> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

describe('UpstreamClient.send over real sockets', () => {
  const servers: Server[] = [];
  const client = new UpstreamClient(pino({ level: 'silent' }));
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  /** A front server that sends each request it gets to `backendUrl` and reports the outcome. */
  async function front(backendUrl: string): Promise<{ url: string; next: () => Promise<Outcome> }> {
    const outcomes: Promise<Outcome>[] = [];
    const backend = new Backend(backendUrl, 'p');
    const s = await listen((req, res: ServerResponse) => {
      outcomes.push((async () => {
        const before = res.listenerCount('close');
        const r = await client.send({ backend, rawUrl: '/v1/completions', method: 'POST', req, body: Buffer.from('{}'), res, connectTimeoutMs: 2000 });
        const out: Outcome = { kind: r.kind, leftOnClientResponse: res.listenerCount('close') - before };
        if (r.kind === 'response') {
          out.leftOnUpstreamRequest = { socket: r.upReq.listenerCount('socket'), response: r.upReq.listenerCount('response'), error: r.upReq.listenerCount('error') };
          res.writeHead(r.upRes.statusCode ?? 502);
          r.upRes.pipe(res);
        } else if (r.kind === 'failed') {
          res.writeHead(503).end();
        }
        return out;
      })());
    });
    servers.push(s);
    return { url: s.url, next: async () => { while (outcomes.length === 0) await new Promise((r) => setTimeout(r, 10)); return outcomes.shift()!; } };
  }

  it('a response: nothing of the attempt stays on the client response; only the shared late-error no-op on the upstream request', async () => {
    const backend = await listen((_req, res) => res.end('fine'));
    servers.push(backend);
    const f = await front(backend.url);
    const res = await fetch(`${f.url}/v1/completions`, { method: 'POST', body: '{}' });
    expect(await res.text()).toBe('fine');
    // The agent's own listeners may sit on the request; the attempt's response and socket listeners must not.
    const o = await f.next();
    expect(o.kind).toBe('response');
    expect(o.leftOnClientResponse).toBe(0);
    expect(o.leftOnUpstreamRequest?.response).toBe(0);
    expect(o.leftOnUpstreamRequest?.socket).toBe(0);
    expect(o.leftOnUpstreamRequest?.error).toBe(1);
  });

  it('a connection failure: reported as failed, nothing left on the client response', async () => {
    const f = await front(await deadUrl());
    const res = await fetch(`${f.url}/v1/completions`, { method: 'POST', body: '{}' });
    expect(res.status).toBe(503);
    expect(await f.next()).toEqual({ kind: 'failed', leftOnClientResponse: 0 });
  });

  it('a client that leaves before the backend answers: client-gone, the backend request aborted, nothing left', async () => {
    let backendSawClose!: () => void;
    const closed = new Promise<void>((r) => { backendSawClose = r; });
    const backend = await listen((req) => req.socket.once('close', () => backendSawClose())); // never answers
    servers.push(backend);
    const f = await front(backend.url);
    const abort = new AbortController();
    const sent = fetch(`${f.url}/v1/completions`, { method: 'POST', body: '{}', signal: abort.signal }).catch((e: Error) => e);
    // Abort once the backend has the request (its connection is open and the body sent).
    await new Promise<void>((r) => backend.server.once('request', () => r()));
    abort.abort();
    expect(await sent).toBeInstanceOf(Error);
    expect(await f.next()).toEqual({ kind: 'client-gone', leftOnClientResponse: 0 });
    await closed; // the upstream request was destroyed, so the backend's connection closed
  });
});
