/**
 * The router over real sockets, no cluster: the router in-process on 127.0.0.1 in front of fake OpenAI
 * backends (node:http on 127.0.0.1). Deterministic: smooth weighted round-robin, sequential requests,
 * readiness by polling a condition (never by elapsed time).
 */
import { mkdtemp, rename, rm, symlink, writeFile, mkdir } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { synthesizeText } from '../../../src/common/tokens.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RouterConfigInput } from '../../../src/router/config.js';
import { METRIC } from '../../../src/router/metrics.js';
import { mulberry32 } from '../../../src/common/random.js';
import { RouterConfigError, startRouter, type RouterHandle, type StartRouterOptions } from '../../../src/router/server.js';
import { deadUrl, startFakeUpstream, type FakeDirectives, type FakeUpstream } from './fake-upstream.js';

const silent = pino({ level: 'silent' });
const text = (tokens: number) => synthesizeText(tokens); // estimateTokens(text(n)) === n

/** Polls a condition (bounded); for state that changes asynchronously (file watch), never a sleep. */
async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, limitMs = 20_000): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Reply {
  status: number;
  pool: string | null;
  body: Record<string, unknown>;
}

async function post(router: RouterHandle, path: string, body: unknown): Promise<Reply> {
  const res = await fetch(`${router.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, pool: res.headers.get('x-melange-pool'), body: (await res.json()) as Record<string, unknown> };
}

const completion = (inTokens: number, maxTokens: number, fake: FakeDirectives = {}, extra: Record<string, unknown> = {}) => ({
  model: 'm',
  prompt: text(inTokens),
  max_tokens: maxTokens,
  fake,
  ...extra,
});

async function counterValue(router: RouterHandle, name: string, labels: Record<string, string>): Promise<number> {
  const base = name.replace(/_(count|sum|bucket)$/, '');
  const m = router.registry.getSingleMetric(name) ?? router.registry.getSingleMetric(base);
  if (!m) throw new Error(`no metric ${name}`);
  const data = await m.get();
  return data.values
    .filter((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want))
    .filter((v) => {
      const metricName = (v as { metricName?: string }).metricName;
      return metricName === undefined || metricName === name;
    })
    .reduce((a, v) => a + v.value, 0);
}

function tally(replies: Reply[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of replies) {
    const k = `${r.pool}:${String(r.body.backend)}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

async function sequential(n: number, f: (i: number) => Promise<Reply>): Promise<Reply[]> {
  const out: Reply[] = [];
  for (let i = 0; i < n; i++) out.push(await f(i));
  return out;
}

// Buckets: input (0,25] (25,100] (100,1000]; output (0,50] (50,500].
const BUCKETS = { inputEdges: [25, 100, 1000], outputEdges: [50, 500] };

describe('router over real sockets', () => {
  let up: Record<'l4a' | 'l4b' | 'a10g' | 'a100', FakeUpstream>;
  let dead: string;
  const routers: RouterHandle[] = [];
  const dirs: string[] = [];

  beforeAll(async () => {
    up = {
      l4a: await startFakeUpstream('l4a'),
      l4b: await startFakeUpstream('l4b'),
      a10g: await startFakeUpstream('a10g'),
      a100: await startFakeUpstream('a100'),
    };
    dead = await deadUrl();
  });
  afterAll(async () => {
    await Promise.all(Object.values(up).map((u) => u.close()));
  });
  afterEach(async () => {
    await Promise.all(routers.splice(0).map((r) => r.close({ graceMs: 1000 })));
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });

  const baseConfig = (): RouterConfigInput => ({
    service: { namespace: 'demo', name: 'chat' },
    buckets: BUCKETS,
    split: [
      { input: 0, output: 0, weights: { l4: 3, a100: 1 } },
      { input: 1, output: 0, weights: { l4: 0.5, a10g: 0.5 } },
      { input: 2, output: 1, weights: { a100: 1 } },
    ],
    pools: [
      { name: 'l4', gpuType: 'L4', backends: [up.l4a.url, up.l4b.url] },
      { name: 'a10g', gpuType: 'A10G', backends: [up.a10g.url] },
      { name: 'a100', gpuType: 'A100-80GB', backends: [up.a100.url] },
    ],
  });

  async function start(opts: Partial<StartRouterOptions> = {}): Promise<RouterHandle> {
    const r = await startRouter({ logger: silent, ...(opts.configFile ? {} : { config: baseConfig() }), ...opts });
    routers.push(r);
    return r;
  }

  it('routes each bucket to the pools in the configured proportions', async () => {
    const router = await start();
    // bucket (0,0): l4 3 : a100 1, exact under smooth weighted round-robin
    const b00 = await sequential(40, () => post(router, '/v1/completions', completion(10, 10)));
    expect(b00.every((r) => r.status === 200)).toBe(true);
    expect(tally(b00)).toEqual({ 'l4:l4a': 15, 'l4:l4b': 15, 'a100:a100': 10 });
    // bucket (1,0): l4 1 : a10g 1
    const b10 = await sequential(20, () => post(router, '/v1/completions', completion(60, 20)));
    expect(tally(b10)).toEqual({ 'l4:l4a': 5, 'l4:l4b': 5, 'a10g:a10g': 10 });
    // bucket (2,1): a100 only; the chat endpoint classifies on its messages
    const b21 = await sequential(5, () =>
      post(router, '/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: text(500) }], max_completion_tokens: 300 }),
    );
    expect(tally(b21)).toEqual({ 'a100:a100': 5 });
    // unseen bucket (0,1) falls back to its nearest bucket (0,0): 3 : 1 again
    const b01 = await sequential(8, () => post(router, '/v1/completions', completion(10, 400)));
    expect(tally(b01)).toEqual({ 'l4:l4a': 3, 'l4:l4b': 3, 'a100:a100': 2 });
    // prompts beyond the last edge count in the last range
    expect((await post(router, '/v1/completions', completion(5000, 400))).pool).toBe('a100');
  });

  it('weighted random (seeded) converges to the split', async () => {
    const cfg = { ...baseConfig(), routing: { strategy: 'random' as const } };
    const router = await start({ config: cfg, rng: mulberry32(1234) });
    const n = 400;
    const replies = await sequential(n, () => post(router, '/v1/completions', completion(10, 10)));
    const a100 = replies.filter((r) => r.pool === 'a100').length;
    const sd = Math.sqrt(n * 0.25 * 0.75);
    expect(Math.abs(a100 - n * 0.25)).toBeLessThan(4 * sd);
  });

  it('sends to the least-loaded backend of the chosen pool (in-flight count)', async () => {
    const router = await start({ config: { ...baseConfig(), split: [{ input: 0, output: 0, weights: { l4: 1 } }] } });
    const first = post(router, '/v1/completions', completion(10, 10, { hold: true }));
    const firstBackend = await until('first request held', () => (up.l4a.held() === 1 ? up.l4a : up.l4b.held() === 1 ? up.l4b : undefined));
    const other = firstBackend === up.l4a ? up.l4b : up.l4a;
    expect(router.backends().l4?.find((b) => b.url === firstBackend.url)?.inflight).toBe(1);
    // the busy backend has 1 in flight, the other 0: the next three go 1 to the idle one, then alternate by load
    const second = post(router, '/v1/completions', completion(10, 10, { hold: true }));
    await until('second request held on the other backend', () => other.held() === 1);
    expect(firstBackend.held()).toBe(1);
    const inflight = await counterValue(router, METRIC.inflight, { pool: 'l4' });
    expect(inflight).toBe(2);
    up.l4a.release();
    up.l4b.release();
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
    expect(await counterValue(router, METRIC.inflight, { pool: 'l4' })).toBe(0);
  });

  it('sends to the backend with the fewest prompt tokens awaiting prefill, before the fewest in flight', async () => {
    const router = await start({ config: { ...baseConfig(), split: [{ input: 0, output: 0, weights: { l4: 1 } }] } });
    const pending = async (u: FakeUpstream) => counterValue(router, METRIC.pendingPrefill, { pool: 'l4', backend: new URL(u.url).host });
    const stream = (inTokens: number, fake: FakeDirectives) =>
      fetch(`${router.url}/v1/completions`, { method: 'POST', body: JSON.stringify(completion(inTokens, 5, fake, { stream: true })) }).then((r) => r.text());
    // A long prompt held before its first token: that backend (x) has 1 in flight and 500 prompt tokens pending.
    const long = stream(500, { hold: true });
    const x = await until('the long prompt held', () => (up.l4a.held() === 1 ? up.l4a : up.l4b.held() === 1 ? up.l4b : undefined));
    const y = x === up.l4a ? up.l4b : up.l4a;
    expect(await pending(x)).toBe(500);
    // Two short requests that have had their first token (decoding): y has 2 in flight and nothing pending.
    const decoding = [stream(10, { hold_after_first: true })];
    await until('the first short one decoding on y', async () => y.held() === 1 && (await pending(y)) === 0);
    decoding.push(stream(10, { hold_after_first: true }));
    await until('the second short one decoding on y', async () => y.held() === 2 && (await pending(y)) === 0);
    expect(await counterValue(router, METRIC.inflight, { backend: new URL(y.url).host })).toBe(2);
    // The next one goes to y (0 pending, 2 in flight), not to x (500 pending, 1 in flight). Not streamed: its
    // prompt stays pending until its response ends, there being no first event to see — even once the
    // response has begun (headers and half the body relayed to the client).
    const next = await fetch(`${router.url}/v1/completions`, { method: 'POST', body: JSON.stringify(completion(10, 5, { hold_body: true })) });
    expect(next.headers.get('x-melange-pool')).toBe('l4');
    expect(y.held()).toBe(3);
    expect(x.held()).toBe(1);
    expect(await pending(y)).toBe(10);
    up.l4a.release();
    up.l4b.release();
    expect(((await next.json()) as { backend: string }).backend).toBe(y.name);
    expect(await long).toContain('[DONE]');
    for (const d of decoding) expect(await d).toContain('[DONE]');
    expect(await pending(x)).toBe(0);
    expect(await pending(y)).toBe(0);
    expect(await counterValue(router, METRIC.inflight, { pool: 'l4' })).toBe(0);
  });

  it('a client that leaves before the first token takes its prompt tokens and its slot back (499)', async () => {
    const router = await start({ config: { ...baseConfig(), split: [{ input: 0, output: 0, weights: { a10g: 1 } }] } });
    const abort = new AbortController();
    const sent = fetch(`${router.url}/v1/completions`, { method: 'POST', body: JSON.stringify(completion(300, 5, { hold: true }, { stream: true })), signal: abort.signal }).catch((e: Error) => e);
    await until('request held on a10g', () => up.a10g.held() === 1);
    expect(await counterValue(router, METRIC.pendingPrefill, { pool: 'a10g' })).toBe(300);
    abort.abort();
    expect(await sent).toBeInstanceOf(Error);
    await until('499 counted', async () => (await counterValue(router, METRIC.requests, { code: '499', pool: 'a10g' })) === 1);
    expect(await counterValue(router, METRIC.pendingPrefill, { pool: 'a10g' })).toBe(0);
    expect(await counterValue(router, METRIC.inflight, { pool: 'a10g' })).toBe(0);
    up.a10g.release(); // the fake answers a connection nobody listens to any more
  });

  it('the in-flight series follow a service relabel while a request is in flight, none left under the old labels', async () => {
    const split = [{ input: 0, output: 0, weights: { a10g: 1 } }];
    const router = await start({ config: { ...baseConfig(), split } });
    const held = post(router, '/v1/completions', completion(10, 10, { hold: true }));
    await until('request held on a10g', () => up.a10g.held() === 1);
    expect((await router.applyConfig({ ...baseConfig(), service: { namespace: 'demo', name: 'chat-v2' }, split })).ok).toBe(true);
    const a10g = async () =>
      (await router.registry.getSingleMetric(METRIC.inflight)!.get()).values.filter((v) => v.labels.pool === 'a10g').map((v) => [v.labels.service, v.value]);
    expect(await a10g()).toEqual([['chat-v2', 1]]);
    up.a10g.release();
    expect((await held).status).toBe(200);
    expect(await a10g()).toEqual([['chat-v2', 0]]);
  });

  it('streams SSE through in order; strips the usage chunk it asked for; counts actual usage', async () => {
    const router = await start();
    const marks = [up.l4a, up.l4b, up.a100].map((u) => [u, u.seen.length] as const);
    // 10 prompt tokens estimated → input bucket 0; the backend reports 500 prompt tokens → counted as input_le=1000
    const res = await fetch(`${router.url}/v1/completions`, {
      method: 'POST',
      body: JSON.stringify(completion(10, 40, { prompt_tokens: 500 }, { stream: true })),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const body = await res.text();
    const events = body.split('\n\n').filter(Boolean);
    expect(events).toHaveLength(41);
    expect(events.at(-1)).toBe('data: [DONE]');
    const ks = events.slice(0, 40).map((e) => (JSON.parse(e.slice('data: '.length)) as { k: number }).k);
    expect(ks).toEqual(Array.from({ length: 40 }, (_, k) => k));
    expect(body).not.toContain('"usage":{');
    // upstream was asked for usage although the client was not
    const seen = marks.flatMap(([u, n]) => u.seen.slice(n));
    expect(seen).toHaveLength(1);
    expect(seen[0]?.body?.stream_options).toEqual({ include_usage: true });
    expect(await counterValue(router, METRIC.requests, { input_le: '1000', output_le: '50', code: '200', namespace: 'demo', service: 'chat' })).toBe(1);
    expect(await counterValue(router, METRIC.usageEstimated, {})).toBe(0);

    // a client that asks for usage gets the chunk
    const res2 = await fetch(`${router.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, stream: true, stream_options: { include_usage: true } }),
    });
    const body2 = await res2.text();
    expect(body2).toContain('"usage":{"prompt_tokens"');
    expect(body2.split('\n\n').filter(Boolean)).toHaveLength(5);
  });

  it('propagates backpressure: a client that stops reading stalls the backend, then gets every chunk in order', async () => {
    const router = await start({ config: { ...baseConfig(), split: [{ input: 0, output: 0, weights: { a100: 1 } }] } });
    up.a100.backpressure.seen = false;
    const total = 4000; // 4000 × 16 KiB = 64 MiB: far more than all socket buffers between backend and client
    const url = new URL(`${router.url}/v1/completions`);
    const payload = JSON.stringify(completion(10, 10, { big_chunks: total }, { stream: true }));
    const received = await new Promise<number[]>((resolve, reject) => {
      const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        res.pause();
        // the client reads nothing until the backend's writes report a full pipe
        until('backend sees backpressure', () => up.a100.backpressure.seen, 30_000).then(() => {
          const ks: number[] = [];
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            buf += c;
            let i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              const ev = buf.slice(0, i);
              buf = buf.slice(i + 2);
              if (ev.startsWith('data: {')) ks.push((JSON.parse(ev.slice(6)) as { k: number }).k);
            }
          });
          res.on('end', () => resolve(ks));
          res.resume();
          up.a100.resumeBig();
        }, reject);
      });
      req.on('error', reject);
      req.end(payload);
    });
    expect(up.a100.backpressure.writtenBeforeFull).toBeLessThan(total);
    expect(received).toEqual(Array.from({ length: total }, (_, k) => k));
  });

  it('retries a dead backend on another one, same pool first, then another weighted pool; 503 when none is left', async () => {
    const cfg = {
      ...baseConfig(),
      split: [
        { input: 0, output: 0, weights: { l4: 1 } },
        { input: 1, output: 0, weights: { gone: 3, a100: 1 } },
        { input: 2, output: 1, weights: { gone: 1 } },
      ],
      pools: [
        { name: 'l4', gpuType: 'L4', backends: [dead, up.l4b.url] },
        { name: 'gone', gpuType: 'H100', backends: [dead] },
        { name: 'a100', gpuType: 'A100-80GB', backends: [up.a100.url] },
      ],
    };
    const router = await start({ config: cfg });
    const same = await sequential(4, () => post(router, '/v1/completions', completion(10, 10)));
    expect(tally(same)).toEqual({ 'l4:l4b': 4 });
    const other = await sequential(4, () => post(router, '/v1/completions', completion(60, 10)));
    expect(other.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(other.every((r) => r.pool === 'a100')).toBe(true);
    expect(await counterValue(router, METRIC.retries, { pool: 'l4' })).toBeGreaterThanOrEqual(1);
    expect(await counterValue(router, METRIC.retries, { pool: 'gone' })).toBeGreaterThanOrEqual(1);
    // the attempts that failed took their prompt tokens back off the dead backends
    expect(await counterValue(router, METRIC.pendingPrefill, {})).toBe(0);

    const none = await post(router, '/v1/completions', completion(500, 400));
    expect(none.status).toBe(503);
    expect((none.body.error as { message: string }).message).toMatch(/no backend could be reached after 1 attempt/);
    expect(await counterValue(router, METRIC.requests, { pool: 'none', code: '503' })).toBe(1);
  });

  it('a client that leaves mid-stream aborts the backend request (code 499); a backend that dies mid-stream is never retried', async () => {
    const router = await start({ config: { ...baseConfig(), split: [{ input: 0, output: 0, weights: { a100: 1 } }] } });
    up.a100.backpressure.seen = false;
    // the client reads the headers, then hangs up while the backend is still streaming
    await new Promise<void>((resolve, reject) => {
      const req = http.request(`${router.url}/v1/completions`, { method: 'POST' }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.end(JSON.stringify(completion(10, 10, { big_chunks: 4000 }, { stream: true })));
    });
    await until('499 counted', async () => (await counterValue(router, METRIC.requests, { code: '499', pool: 'a100' })) === 1);
    expect(await counterValue(router, METRIC.inflight, { pool: 'a100' })).toBe(0);
    expect(await counterValue(router, METRIC.pendingPrefill, { pool: 'a100' })).toBe(0);
    up.a100.resumeBig(); // nothing is listening any more; the fake's writes just fail

    const before = up.a100.seen.length;
    const res = await fetch(`${router.url}/v1/completions`, { method: 'POST', body: JSON.stringify(completion(10, 10, { abort_after: 3 }, { stream: true })) });
    expect(res.status).toBe(200); // the response had started: the failure reaches the client as a cut stream
    await expect(res.text()).rejects.toThrow();
    await until('stream failure counted', async () => (await counterValue(router, METRIC.upstreamErrors, { phase: 'stream', pool: 'a100' })) === 1);
    expect(up.a100.seen.length - before).toBe(1);
    expect(await counterValue(router, METRIC.retries, {})).toBe(0);
  });

  it('a kept-alive connection the backend dropped is resent on a new one, not counted as a failure', async () => {
    let n = 0;
    const sockets = new Set<unknown>();
    const flaky = http.createServer((req, res) => {
      sockets.add(req.socket);
      n++;
      req.resume();
      req.on('end', () => {
        if (n === 2) {
          req.socket.destroy(); // the second request arrives on the reused socket: drop it unanswered
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ backend: 'flaky', usage: { prompt_tokens: 1, completion_tokens: 1 } }));
      });
    });
    await new Promise<void>((r) => flaky.listen(0, '127.0.0.1', r));
    try {
      const port = (flaky.address() as import('node:net').AddressInfo).port;
      const router = await start({
        config: { ...baseConfig(), split: [], pools: [{ name: 'solo', gpuType: 'L4', backends: [`http://127.0.0.1:${port}`] }] },
      });
      const replies = await sequential(3, () => post(router, '/v1/completions', completion(10, 10)));
      expect(replies.map((r) => r.status)).toEqual([200, 200, 200]);
      expect(n).toBe(4);
      expect(sockets.size).toBe(2);
      expect(await counterValue(router, METRIC.retries, {})).toBe(0);
      expect(await counterValue(router, METRIC.upstreamErrors, {})).toBe(0);
    } finally {
      flaky.closeAllConnections();
      await new Promise<void>((r) => flaky.close(() => r()));
    }
  });

  it('503 with a clear JSON error when a bucket\'s pools have no backend', async () => {
    const cfg = { ...baseConfig(), pools: [...(baseConfig().pools as object[]).slice(0, 2), { name: 'a100', gpuType: 'A100-80GB', backends: [] }] };
    const router = await start({ config: cfg as RouterConfigInput });
    const r = await post(router, '/v1/completions', completion(500, 400));
    expect(r.status).toBe(503);
    expect(r.body).toEqual({
      error: {
        message: expect.stringMatching(/^no ready backend for this request's size bucket \(input <= 1000, output <= 500 tokens; pools with weight: a100\)/),
        type: 'service_unavailable',
        param: null,
        code: 503,
      },
    });
  });

  it('hot-reloads the config file (atomic rename and kubelet-style ..data symlink swap); keeps the old one when invalid', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'melange-router-'));
    dirs.push(dir);
    // kubelet layout: config.json -> ..data/config.json, ..data -> ..v1
    const writeVersion = async (name: string, cfg: unknown) => {
      await mkdir(join(dir, name));
      await writeFile(join(dir, name, 'config.json'), typeof cfg === 'string' ? cfg : JSON.stringify(cfg));
      await symlink(name, join(dir, '..data_tmp'));
      await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    };
    const cfg = (weights: Record<string, number>) => ({ ...baseConfig(), split: [{ input: 0, output: 0, weights }] });
    await writeVersion('..v1', cfg({ l4: 1 }));
    await symlink('..data/config.json', join(dir, 'config.json'));
    const router = await start({ configFile: join(dir, 'config.json'), configPollMs: 200 });
    expect(router.reloads()).toEqual({ success: 1, error: 0 });
    expect(tally(await sequential(4, () => post(router, '/v1/completions', completion(10, 10))))).toEqual({ 'l4:l4a': 2, 'l4:l4b': 2 });

    await writeVersion('..v2', cfg({ a100: 1 }));
    await until('reload of ..v2', () => router.reloads().success === 2);
    expect(tally(await sequential(4, () => post(router, '/v1/completions', completion(10, 10))))).toEqual({ 'a100:a100': 4 });

    await writeVersion('..v3', '{"service": {"namespace": "demo"}, "pools": []}');
    await until('rejection of ..v3', () => router.reloads().error === 1);
    expect(await counterValue(router, METRIC.configReloads, { result: 'error' })).toBe(1);
    expect(tally(await sequential(2, () => post(router, '/v1/completions', completion(10, 10))))).toEqual({ 'a100:a100': 2 });

    await writeVersion('..v4', cfg({ a10g: 1 }));
    await until('reload of ..v4', () => router.reloads().success === 3);
    expect(tally(await sequential(2, () => post(router, '/v1/completions', completion(10, 10))))).toEqual({ 'a10g:a10g': 2 });
    expect(await counterValue(router, METRIC.splitWeight, { input_le: '25', output_le: '50', pool: 'a10g' })).toBe(1);
    expect(await counterValue(router, METRIC.splitWeight, { pool: 'a100' })).toBe(0);
  });

  it('hot-reloads a plain file replaced by rename', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'melange-router-'));
    dirs.push(dir);
    const file = join(dir, 'router.yaml');
    const cfg = (weights: Record<string, number>) => ({ ...baseConfig(), split: [{ input: 0, output: 0, weights }] });
    await writeFile(file, JSON.stringify(cfg({ a100: 1 })));
    const router = await start({ configFile: file, configPollMs: 0 });
    expect((await post(router, '/v1/completions', completion(10, 10))).pool).toBe('a100');
    await writeFile(`${file}.tmp`, JSON.stringify(cfg({ a10g: 1 })));
    await rename(`${file}.tmp`, file);
    await until('reload after rename', () => router.reloads().success === 2);
    expect((await post(router, '/v1/completions', completion(10, 10))).pool).toBe('a10g');
  });

  it('counts requests by the buckets of actual usage, falls back to the estimate when the backend reports none', async () => {
    const router = await start();
    // estimated (10 in, 10 out) but actual usage 80 prompt / 120 completion → input_le=100, output_le=500
    await post(router, '/v1/completions', completion(10, 10, { prompt_tokens: 80, completion_tokens: 120 }));
    // no usage reported: counted with the estimate (10 → 25, max_tokens 10 → 50)
    await post(router, '/v1/completions', completion(10, 10, { no_usage: true }));
    const text = await (await fetch(router.metricsUrl)).text();
    const line = (s: string) => text.split('\n').find((l) => l.startsWith(s));
    expect(line('melange_router_requests_total{namespace="demo",service="chat",input_le="100",output_le="500",pool=')).toMatch(/code="200"} 1$/);
    expect(line('melange_router_requests_total{namespace="demo",service="chat",input_le="25",output_le="50",pool=')).toMatch(/code="200"} 1$/);
    expect(line('melange_router_usage_estimated_total{namespace="demo",service="chat"}')).toMatch(/ 1$/);
    // the estimators' live error: routed as (25, 50), served as (100, 500)
    expect(line('melange_router_bucket_mismatch_total{namespace="demo",service="chat",dimension="input"}')).toMatch(/ 1$/);
    expect(line('melange_router_bucket_mismatch_total{namespace="demo",service="chat",dimension="output"}')).toMatch(/ 1$/);
    expect(text).toMatch(/melange_router_tpot_seconds_count\{namespace="demo",service="chat",pool="(l4|a100)"\} 1/);
    expect(text).toContain('melange_router_config_reloads_total{result="success"} 1');
    expect(text).toMatch(/melange_router_inflight\{namespace="demo",service="chat",pool="l4",backend="127\.0\.0\.1:\d+"\} 0/);
    expect(text).toContain('melange_router_backends{namespace="demo",service="chat",pool="l4"} 2');
    // streamed requests also have a TTFT
    await (await fetch(`${router.url}/v1/completions`, { method: 'POST', body: JSON.stringify(completion(10, 5, {}, { stream: true })) })).text();
    expect(await counterValue(router, `${METRIC.ttft}_count`, {})).toBe(1);
    // label sets are bounded: only these label names
    const m = await router.registry.getSingleMetric(METRIC.requests)!.get();
    for (const v of m.values) expect(Object.keys(v.labels).sort()).toEqual(['code', 'input_le', 'namespace', 'output_le', 'pool', 'service']);
  });

  it('rejects bad requests with clear 4xx JSON errors and serves health, readiness and /v1/models', async () => {
    const router = await start({ maxBodyBytes: 1024 });
    const raw = async (path: string, init: RequestInit = {}) => {
      const res = await fetch(`${router.url}${path}`, init);
      return { status: res.status, body: (await res.json()) as { error?: { message: string; type: string } } & Record<string, unknown> };
    };
    const tooBig = await raw('/v1/completions', { method: 'POST', body: JSON.stringify({ prompt: 'x'.repeat(4096) }) });
    expect(tooBig.status).toBe(413);
    expect(tooBig.body.error?.message).toBe('request body exceeds 1024 bytes');
    const notJson = await raw('/v1/completions', { method: 'POST', body: '{"prompt": ' });
    expect(notJson.status).toBe(400);
    expect(notJson.body.error?.message).toMatch(/^request body is not valid JSON/);
    const invalid = await raw('/v1/chat/completions', { method: 'POST', body: JSON.stringify({ messages: 'hi' }) });
    expect(invalid).toMatchObject({ status: 400, body: { error: { message: '"messages" must be a non-empty array', type: 'invalid_request_error', param: 'messages' } } });
    expect((await raw('/v1/embeddings', { method: 'POST', body: '{}' })).status).toBe(404);
    expect((await raw('/v1/completions')).status).toBe(405);
    expect(await counterValue(router, METRIC.rejected, { reason: 'invalid_request' })).toBe(1);
    expect(await raw('/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
    expect(await raw('/readyz')).toEqual({ status: 200, body: { ready: true, draining: false, pools: { l4: 2, a10g: 1, a100: 1 } } });
    const models = await raw('/v1/models');
    expect(models.status).toBe(200);
    expect(models.body.data).toEqual([expect.objectContaining({ id: 'fake-model' })]);
    // nothing invalid reached a backend
    expect(router.backends().l4?.every((b) => b.inflight === 0)).toBe(true);
  });

  it('serves /metrics on a separate port when asked', async () => {
    const router = await start({ metricsPort: 0 });
    expect(router.metricsUrl).not.toContain(router.url);
    expect((await fetch(router.metricsUrl)).status).toBe(200);
    expect((await fetch(`${router.url}/metrics`)).status).toBe(404);
  });

  it('an invalid initial config fails start-up with every problem listed', async () => {
    await expect(startRouter({ logger: silent, config: { ...baseConfig(), split: [{ input: 9, output: 0, weights: { nope: 1 } }] } })).rejects.toSatisfy(
      (e: unknown) => e instanceof RouterConfigError && e.lines.length === 2,
    );
  });

  it('graceful shutdown: stops accepting, lets an in-flight stream finish', async () => {
    const router = await startRouter({ logger: silent, config: { ...baseConfig(), split: [{ input: 0, output: 0, weights: { a10g: 1 } }] } });
    const pending = fetch(`${router.url}/v1/completions`, { method: 'POST', body: JSON.stringify(completion(10, 5, { hold: true }, { stream: true })) }).then((r) => r.text());
    await until('request held', () => up.a10g.held() === 1);
    const closed = router.close({ graceMs: 60_000 });
    await until('readiness off', () => !router.ready());
    await expect(fetch(`${router.url}/healthz`)).rejects.toThrow();
    up.a10g.release();
    const body = await pending;
    expect(body.split('\n\n').filter(Boolean)).toHaveLength(6);
    await closed;
  });
});
