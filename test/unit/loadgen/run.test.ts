import { describe, expect, it } from 'vitest';
import { estimateRequestPromptTokens, outputTokenText } from '../../../src/common/tokens.js';
import { isLoopbackHost, LoadOptionsError, runLoad, type LoadDeps, type LoadOptions, type SizeDistribution } from '../../../src/loadgen/index.js';

const fixed = (input: number, output: number): SizeDistribution => ({
  name: `fixed ${input}/${output}`,
  ranges: [{ probability: 1, inputMin: input, inputMax: input, outputMin: output, outputMax: output }],
});

const immediate = () => new Promise<void>((r) => setImmediate(r));

/**
 * Simulated wall clock: only `sleep` and the fake server move it. A sleep first yields one event-loop turn, so
 * a fake request that is ready to run finishes (in microtasks) before the sleeper's time passes: requests
 * are instantaneous in simulated time except for the delays the fake server adds.
 */
function simClock() {
  const c = { t: 0 };
  return {
    c,
    now: () => c.t,
    sleep: async (ms: number) => {
      await immediate();
      c.t += Math.max(0, ms);
    },
  };
}

interface FakeReply {
  status?: number;
  /** Clock advance before the response headers. */
  headerDelay?: number;
  /** Clock advance before each token chunk. */
  tokenDelays?: number[];
  errorBody?: unknown;
  throws?: Error;
  /** Never answer; reject when the request is aborted. */
  hang?: boolean;
  /** Event-loop turns the request stays outstanding before answering (default 1). */
  yields?: number;
}

/** A fake OpenAI server as a fetch function, streaming SSE from an async generator (runs only when read). */
function fakeServer(clock: { t: number }, reply: (body: Record<string, unknown>, n: number) => FakeReply, opts: { speedHeader?: string; model?: string } = {}) {
  const bodies: Array<Record<string, unknown>> = [];
  const urls: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const fetchFn = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = String(input);
    urls.push(url);
    const headers = new Headers(opts.speedHeader ? { 'x-melange-emulator-speed': opts.speedHeader, 'x-melange-emulator': 'A10G' } : {});
    if (url.endsWith('/v1/models')) {
      return new Response(JSON.stringify({ object: 'list', data: [{ id: opts.model ?? 'fake-model' }] }), { status: 200, headers });
    }
    const body = JSON.parse(String(init?.body)) as Record<string, unknown>;
    const n = bodies.push(body) - 1;
    const r = reply(body, n);
    if (r.throws) throw r.throws;
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      if (r.hang) {
        await new Promise((_, reject) => {
          init?.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
        });
      }
      for (let i = 0; i < (r.yields ?? 1); i++) await immediate(); // outstanding for a while (real turns, not clock time)
      clock.t += r.headerDelay ?? 0;
      if ((r.status ?? 200) !== 200) {
        const text = JSON.stringify(r.errorBody ?? { error: { message: 'bad' } });
        return { ok: false, status: r.status, headers, text: () => Promise.resolve(text) } as unknown as Response;
      }
      const maxTokens = Number(body.max_tokens);
      const delays = r.tokenDelays ?? [];
      const enc = new TextEncoder();
      async function* sse() {
        for (let k = 0; k < maxTokens; k++) {
          clock.t += delays[k] ?? 0;
          yield enc.encode(`data: ${JSON.stringify({ choices: [{ delta: { content: outputTokenText(k) }, finish_reason: k === maxTokens - 1 ? 'length' : null }] })}\n\n`);
        }
        yield enc.encode(`data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: estimateRequestPromptTokens(body), completion_tokens: maxTokens } })}\n\n`);
        yield enc.encode('data: [DONE]\n\n');
      }
      return { ok: true, status: 200, headers, body: sse() } as unknown as Response;
    } finally {
      inFlight--;
    }
  }) as typeof fetch;
  return { fetchFn, bodies, urls, stats: () => ({ maxInFlight }) };
}

const base = (o: Partial<LoadOptions> = {}): LoadOptions => ({
  url: 'http://127.0.0.1:9',
  rate: 10,
  requests: 10,
  durationS: 1000,
  distribution: fixed(100, 10),
  ...o,
});

describe('runLoad: targets and options', () => {
  it('refuses non-loopback targets unless allowed', async () => {
    expect(isLoopbackHost('127.0.0.1')).toBe(true);
    expect(isLoopbackHost('127.3.2.1')).toBe(true);
    expect(isLoopbackHost('localhost')).toBe(true);
    expect(isLoopbackHost('[::1]')).toBe(true);
    expect(isLoopbackHost('10.0.0.1')).toBe(false);
    expect(isLoopbackHost('example.com')).toBe(false);
    const clock = simClock();
    const server = fakeServer(clock.c, () => ({}));
    const deps: LoadDeps = { fetch: server.fetchFn, now: clock.now, sleep: clock.sleep };
    await expect(runLoad(base({ url: 'http://10.1.2.3:8000' }), deps)).rejects.toThrow(LoadOptionsError);
    expect(server.urls).toEqual([]); // nothing was sent
    // allowed: (the fake fetch never touches the network)
    const r = await runLoad(base({ url: 'http://example.invalid:8000', allowRemote: true, requests: 2 }), deps);
    expect(r.completed).toBe(2);
  });

  it('validates rate, requests and duration', async () => {
    await expect(runLoad(base({ rate: 0 }))).rejects.toThrow(/rate/);
    await expect(runLoad(base({ requests: 0 }))).rejects.toThrow(/requests/);
    await expect(runLoad(base({ durationS: -1 }))).rejects.toThrow(/duration/);
    await expect(runLoad(base({ url: 'ftp://127.0.0.1' }))).rejects.toThrow(/http/);
  });

  it('sends prompts that estimate to the sampled size, max_tokens = output, streaming with usage', async () => {
    const clock = simClock();
    const server = fakeServer(clock.c, () => ({}));
    await runLoad(base({ requests: 3, distribution: fixed(321, 7) }), { fetch: server.fetchFn, now: clock.now, sleep: clock.sleep });
    expect(server.bodies).toHaveLength(3);
    for (const b of server.bodies) {
      expect(estimateRequestPromptTokens(b)).toBe(321);
      expect(b).toMatchObject({ model: 'fake-model', max_tokens: 7, stream: true, stream_options: { include_usage: true }, ignore_eos: true });
    }
    const completions = fakeServer(clock.c, () => ({}));
    await runLoad(base({ requests: 1, api: 'completions', distribution: fixed(50, 3), model: 'm' }), { fetch: completions.fetchFn, now: clock.now, sleep: clock.sleep });
    expect(completions.urls.at(-1)).toBe('http://127.0.0.1:9/v1/completions');
    expect(estimateRequestPromptTokens(completions.bodies[0]!)).toBe(50);
    expect(completions.bodies[0]!.model).toBe('m');
  });
});

describe('runLoad: bounds (simulated time)', () => {
  it('stops at --requests', async () => {
    const clock = simClock();
    const server = fakeServer(clock.c, () => ({}));
    const r = await runLoad(base({ rate: 50, requests: 25 }), { fetch: server.fetchFn, now: clock.now, sleep: clock.sleep });
    expect(r.sent).toBe(25);
    expect(server.bodies).toHaveLength(25);
    expect(r.completed).toBe(25);
  });

  it('stops sending at --duration even when more requests are allowed', async () => {
    const clock = simClock();
    const server = fakeServer(clock.c, () => ({}));
    const r = await runLoad(base({ rate: 10, requests: 100_000, durationS: 3 }), { fetch: server.fetchFn, now: clock.now, sleep: clock.sleep });
    expect(r.results.every((x) => x.sentAtMs <= 3000)).toBe(true);
    // ~30 expected (Poisson, sd ≈ 5.5): a wide band around it, never the request bound
    expect(r.sent).toBeGreaterThan(10);
    expect(r.sent).toBeLessThan(60);
    expect(server.bodies).toHaveLength(r.sent);
  });

  it('the mean inter-arrival gap of the sent requests is about 1/rate', async () => {
    const clock = simClock();
    const server = fakeServer(clock.c, () => ({}));
    const r = await runLoad(base({ rate: 20, requests: 2000, seed: 5 }), { fetch: server.fetchFn, now: clock.now, sleep: clock.sleep });
    const last = r.results.at(-1)!.sentAtMs;
    expect(Math.abs(last / 1000 / 2000 - 1 / 20)).toBeLessThan(0.005);
  });

  it('never has more than --max-in-flight requests outstanding', async () => {
    const clock = simClock();
    const server = fakeServer(clock.c, () => ({ yields: 5 }));
    const r = await runLoad(base({ rate: 1e6, requests: 40, maxInFlight: 3 }), { fetch: server.fetchFn, now: clock.now, sleep: clock.sleep });
    expect(r.completed).toBe(40);
    expect(server.stats().maxInFlight).toBeLessThanOrEqual(3);
    expect(r.delayedArrivals).toBeGreaterThan(0);
  });

  it('aborts requests still running after the drain period and reports them as incomplete', async () => {
    const clock = simClock();
    const server = fakeServer(clock.c, (_b, n) => (n === 1 ? { hang: true } : {}));
    const r = await runLoad(base({ requests: 3, drainS: 5 }), { fetch: server.fetchFn, now: clock.now, sleep: clock.sleep });
    expect(r.sent).toBe(3);
    expect(r.completed).toBe(2);
    expect(r.incomplete).toBe(1);
    expect(r.errorKinds).toEqual({ incomplete: 1 });
    expect(r.results[1]!.status).toBe('incomplete');
  });
});

describe('runLoad: measurements', () => {
  it('computes TTFT, the paper TPOT, the inter-token TPOT and latency, scaled by the emulator speed', async () => {
    const clock = simClock();
    // headers after 50 ms, first token 50 ms later (TTFT 100), then 9 tokens 10 ms apart (latency 190)
    const server = fakeServer(clock.c, () => ({ headerDelay: 50, tokenDelays: [50, 10, 10, 10, 10, 10, 10, 10, 10, 10] }), { speedHeader: '10', model: 'emu' });
    const r = await runLoad(base({ requests: 1, distribution: fixed(100, 10), sloTpotMs: 200 }), { fetch: server.fetchFn, now: clock.now, sleep: clock.sleep });
    expect(r.timeScale).toEqual({ value: 10, source: 'emulator-header' });
    expect(r.target).toMatchObject({ model: 'emu', emulator: 'A10G' });
    const x = r.results[0]!;
    expect(x.status).toBe('ok');
    expect(x.completionTokens).toBe(10);
    expect(x.usageReported).toBe(true);
    expect(x.ttftMs).toBeCloseTo(1000, 9); // 100 real ms x 10
    expect(x.latencyMs).toBeCloseTo(1900, 9);
    expect(x.tpotMs).toBeCloseTo(190, 9); // latency / output tokens
    expect(x.itlMs).toBeCloseTo(100, 9); // (1900 - 1000) / 9
    expect(x.meetsSlo).toBe(true);
    expect(r.tpotMs.p50).toBeCloseTo(190, 9);
    expect(r.slo).toMatchObject({ tpotMillis: 200, attainmentPercent: 100, meanMeetsSlo: true });
  });

  it('an explicit time scale wins over the header; 1 when there is neither', async () => {
    const clock = simClock();
    const s1 = fakeServer(clock.c, () => ({ tokenDelays: [10] }), { speedHeader: '10' });
    const r1 = await runLoad(base({ requests: 1, distribution: fixed(10, 1), timeScale: 2 }), { fetch: s1.fetchFn, now: clock.now, sleep: clock.sleep });
    expect(r1.timeScale).toEqual({ value: 2, source: 'option' });
    expect(r1.results[0]!.latencyMs).toBeCloseTo(20, 9);
    const s2 = fakeServer(clock.c, () => ({ tokenDelays: [10] }));
    const r2 = await runLoad(base({ requests: 1, distribution: fixed(10, 1) }), { fetch: s2.fetchFn, now: clock.now, sleep: clock.sleep });
    expect(r2.timeScale).toEqual({ value: 1, source: 'default' });
    expect(r2.results[0]!.latencyMs).toBeCloseTo(10, 9);
  });

  it('SLO attainment counts every sent request; errors are misses and classified', async () => {
    const clock = simClock();
    // one request at a time so the simulated clock is not shared: 0,1 fast; 2 slow; 3 is a 400; 4 a network error
    const server = fakeServer(clock.c, (_b, n) => {
      if (n === 2) return { tokenDelays: [100, 100, 100, 100] }; // 400 ms / 4 tokens = 100 ms > 50
      if (n === 3) return { status: 400, errorBody: { error: { message: "This model's maximum context length is 10 tokens." } } };
      if (n === 4) return { throws: new TypeError('fetch failed') };
      return { tokenDelays: [10, 10, 10, 10] };
    });
    const r = await runLoad(base({ requests: 5, maxInFlight: 1, distribution: fixed(20, 4), sloTpotMs: 50 }), { fetch: server.fetchFn, now: clock.now, sleep: clock.sleep });
    expect(r.sent).toBe(5);
    expect(r.completed).toBe(3);
    expect(r.errors).toBe(2);
    expect(r.errorKinds).toEqual({ http_400: 1, network: 1 });
    expect(r.results[3]!.error).toContain('maximum context length');
    expect(r.slo!.attainmentPercent).toBe(40); // 2 of 5
    expect(r.slo!.meanTpotMs).toBeCloseTo((10 + 10 + 100) / 3, 9);
    expect(r.tpotMs.count).toBe(3);
  });
});
