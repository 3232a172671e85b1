/**
 * One probe against a fake OpenAI server (a fetch function on a simulated clock: no sockets, no timers): the
 * measurement window, server-side timing from vLLM histograms, the fallback to the client's clock, and how
 * errors are sorted (a refused size vs a broken endpoint).
 */
import { describe, expect, it } from 'vitest';
import { estimateRequestPromptTokens } from '../../../src/common/tokens.js';
import { clientWindow, middleRange, spanRates, type ProbeRequest } from '../../../src/profiler/measure.js';
import { histogramDelta, histogramQuantile, parseHistogram, parseSnapshot } from '../../../src/profiler/metrics.js';
import { EndpointError, runProbe, type ProbeContext } from '../../../src/profiler/probe.js';

const immediate = () => new Promise<void>((r) => setImmediate(r));

function simClock() {
  const c = { t: 0 };
  return { c, now: () => c.t, sleep: async (ms: number) => { await immediate(); c.t += Math.max(0, ms); } };
}

interface FakeOpts {
  /** Client-visible latency per request (ms of the simulated clock). */
  clientLatencyMs?: number;
  /** What the server's own histogram records per request (s). */
  serverLatencyS?: number;
  ttftS?: number;
  metrics?: boolean;
  contextLimit?: number;
  status?: number;
  throws?: Error;
}

/** A fake vLLM: non-streaming chat completions and a /metrics with vLLM's latency histograms. */
function fakeVllm(clock: { t: number }, o: FakeOpts = {}) {
  const h = { sum: 0, count: 0, ttftSum: 0 };
  const requests: Array<Record<string, unknown>> = [];
  const text = () => [
    '# HELP vllm:e2e_request_latency_seconds Histogram of end to end request latency in seconds.',
    '# TYPE vllm:e2e_request_latency_seconds histogram',
    `vllm:e2e_request_latency_seconds_bucket{le="1.0",model_name="m"} 0`,
    `vllm:e2e_request_latency_seconds_bucket{le="5.0",model_name="m"} ${h.count}`,
    `vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="m"} ${h.count}`,
    `vllm:e2e_request_latency_seconds_sum{model_name="m"} ${h.sum}`,
    `vllm:e2e_request_latency_seconds_count{model_name="m"} ${h.count}`,
    '# TYPE vllm:time_to_first_token_seconds histogram',
    `vllm:time_to_first_token_seconds_sum{model_name="m"} ${h.ttftSum}`,
    `vllm:time_to_first_token_seconds_count{model_name="m"} ${h.count}`,
  ].join('\n');
  const fetchFn = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = String(input);
    if (url.endsWith('/metrics')) return o.metrics === false ? new Response('not here', { status: 404 }) : new Response(text(), { status: 200 });
    if (o.throws) throw o.throws;
    const body = JSON.parse(String(init?.body)) as Record<string, unknown>;
    requests.push(body);
    const maxTokens = Number(body.max_tokens);
    const prompt = estimateRequestPromptTokens(body);
    if (o.status !== undefined) return new Response(JSON.stringify({ error: { message: 'server exploded' } }), { status: o.status });
    if (o.contextLimit !== undefined && prompt + maxTokens > o.contextLimit) {
      return new Response(JSON.stringify({ error: { message: `This model's maximum context length is ${o.contextLimit} tokens.` } }), { status: 400 });
    }
    await immediate();
    clock.t += o.clientLatencyMs ?? 100;
    h.sum += o.serverLatencyS ?? 2;
    h.ttftSum += o.ttftS ?? 0.25;
    h.count++;
    return new Response(JSON.stringify({ choices: [{ message: { content: 'x '.repeat(maxTokens) } }], usage: { prompt_tokens: prompt, completion_tokens: maxTokens } }), { status: 200 });
  }) as typeof fetch;
  return { fetchFn, requests };
}

const ctx = (o: Partial<ProbeContext> = {}): ProbeContext => ({
  url: 'http://127.0.0.1:9', model: 'm', api: 'chat', timeScale: 1, timing: 'server', seed: 1, arrivalWallS: 1e5, drainWallS: 60, ...o,
});

describe('runProbe', () => {
  it('server timing: mean TPOT and TTFT from the vLLM histograms between the warm-up and drain scrapes; rate and throughput from the client', async () => {
    const clock = simClock();
    const fake = fakeVllm(clock.c, { clientLatencyMs: 100, serverLatencyS: 2, ttftS: 0.25 });
    const o = await runProbe({ kind: 'load', input: 100, output: 50, rate: 4, requests: 60 }, ctx(), { fetch: fake.fetchFn, now: clock.now, sleep: clock.sleep });
    expect(o.record.timing).toBe('server');
    expect(o.record.outcome).toBe('measured');
    const m = o.record.measurement!;
    expect(m.meanTpotMillis).toBeCloseTo((2 / 50) * 1000, 6); // the server's 2 s, not the client's 100 ms
    expect(m.meanTtftMillis).toBeCloseTo(250, 6);
    expect(m.p99TpotMillis).toBeGreaterThan(20); // inside the (1, 5] s bucket
    expect(m.p99TpotMillis).toBeLessThanOrEqual(100);
    expect(m.rate).toBeGreaterThan(0);
    expect(m.throughput).toBeGreaterThan(0);
    expect(o.record.requests).toMatchObject({ sent: 60, completed: 60, errors: 0 });
    // No streaming needed with server timing: one response per request.
    expect(fake.requests.every((b) => b.stream === false)).toBe(true);
  });

  it('falls back to the client clock when the endpoint has no vLLM histograms', async () => {
    const clock = simClock();
    const fake = fakeVllm(clock.c, { clientLatencyMs: 100, metrics: false });
    const o = await runProbe({ kind: 'load', input: 100, output: 50, rate: 4, requests: 30 }, ctx(), { fetch: fake.fetchFn, now: clock.now, sleep: clock.sleep });
    expect(o.record.timing).toBe('client');
    // >= 100 ms per request on the client's clock (the fake's requests overlap a little), not the server's 2 s
    expect(o.record.measurement!.meanTpotMillis).toBeGreaterThanOrEqual(100 / 50);
    expect(o.record.measurement!.meanTpotMillis).toBeLessThan(3);
  });

  it('the alone probe sends its requests one after the other and reports one request\'s latency', async () => {
    const clock = simClock();
    const fake = fakeVllm(clock.c, { serverLatencyS: 3 });
    const o = await runProbe({ kind: 'alone', input: 100, output: 100, rate: 0, requests: 3 }, ctx(), { fetch: fake.fetchFn, now: clock.now, sleep: clock.sleep });
    expect(o.record).toMatchObject({ kind: 'alone', nominalRate: 0, outcome: 'measured', meanLatencyMillis: 3000, timing: 'server' });
    expect(o.record.measurement!.meanTpotMillis).toBeCloseTo(30, 6);
  });

  it('a 400 (context too long) is a refused SIZE: outcome rejected with vLLM\'s message', async () => {
    const clock = simClock();
    const fake = fakeVllm(clock.c, { contextLimit: 1000 });
    const o = await runProbe({ kind: 'alone', input: 2000, output: 100, rate: 0, requests: 3 }, ctx(), { fetch: fake.fetchFn, now: clock.now, sleep: clock.sleep });
    expect(o.record.outcome).toBe('rejected');
    expect(o.record.error).toMatch(/http_400: This model's maximum context length is 1000 tokens/);
  });

  it('network errors and 5xx are a broken ENDPOINT: EndpointError, nothing recorded', async () => {
    const clock = simClock();
    const deps = (o: FakeOpts) => ({ fetch: fakeVllm(clock.c, o).fetchFn, now: clock.now, sleep: clock.sleep });
    await expect(runProbe({ kind: 'load', input: 10, output: 10, rate: 1, requests: 5 }, ctx(), deps({ throws: new TypeError('fetch failed') }))).rejects.toThrow(EndpointError);
    await expect(runProbe({ kind: 'load', input: 10, output: 10, rate: 1, requests: 5 }, ctx(), deps({ status: 503 }))).rejects.toThrow(/http_503/);
  });
});

describe('the measurement window (pure)', () => {
  it('keeps the middle of the run: the first and last 20% by arrival are warm-up and drain', () => {
    expect(middleRange(100)).toEqual([20, 80]);
    expect(middleRange(3)).toEqual([0, 3]);
    expect(middleRange(1)).toEqual([0, 1]);
  });

  it('rate and throughput of the same requests agree when the server keeps up and part when a queue grows', () => {
    const arrivals = Array.from({ length: 101 }, (_, i) => i * 100); // 10 req/s
    const steady = spanRates(arrivals, arrivals.map((a) => a + 500));
    expect(steady.rate).toBeCloseTo(10, 6);
    expect(steady.throughput).toBeCloseTo(10, 6);
    const queue = spanRates(arrivals, arrivals.map((a, i) => a + 500 + i * 50)); // each waits 50 ms more than the last
    expect(queue.throughput).toBeCloseTo(10 / 1.5, 6);
    // one late delivery at the end does not fake a queue
    const late = spanRates(arrivals, arrivals.map((a, i) => a + 500 + (i === 100 ? 5000 : 0)));
    expect(late.throughput).toBeCloseTo(10, 6);
  });

  it('requests cut off at the drain limit count with the time they waited (a lower bound), never as fast ones', () => {
    const reqs: ProbeRequest[] = Array.from({ length: 10 }, (_, i) => ({ index: i, sentMs: i * 100, status: 'ok', latencyMs: 1000, outputTokens: 10 }));
    reqs[5] = { index: 5, sentMs: 500, status: 'incomplete' };
    const w = clientWindow(reqs, 10, 10_500, 0)!;
    expect(w.incomplete).toBe(1);
    expect(w.meanTpotMillis).toBeCloseTo((9 * 100 + 1000) / 10, 6);
  });
});

describe('vLLM histograms', () => {
  const text = `# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{le="1.0",model_name="a"} 2
vllm:e2e_request_latency_seconds_bucket{le="2.0",model_name="a"} 6
vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="a"} 8
vllm:e2e_request_latency_seconds_sum{model_name="a"} 12
vllm:e2e_request_latency_seconds_count{model_name="a"} 8
vllm:e2e_request_latency_seconds_bucket{model_name="b",le="1.0"} 1
vllm:e2e_request_latency_seconds_bucket{model_name="b",le="2.0"} 1
vllm:e2e_request_latency_seconds_bucket{model_name="b",le="+Inf"} 2
vllm:e2e_request_latency_seconds_sum{model_name="b"} 5
vllm:e2e_request_latency_seconds_count{model_name="b"} 2
vllm:num_requests_running{model_name="a"} 3
`;
  it('sums every label set, reads a declared-but-empty histogram as zero, and is absent without one', () => {
    const h = parseHistogram(text, 'vllm:e2e_request_latency_seconds')!;
    expect(h).toEqual({ sum: 17, count: 10, buckets: [[1, 3], [2, 7], [Infinity, 10]] });
    expect(parseHistogram('# TYPE vllm:e2e_request_latency_seconds histogram\n', 'vllm:e2e_request_latency_seconds')).toEqual({ sum: 0, count: 0, buckets: [] });
    expect(parseSnapshot('vllm:num_requests_running 1\n')).toBeUndefined();
  });

  it('differences and quantiles (linear inside the bucket, like histogram_quantile)', () => {
    const a = { sum: 1, count: 2, buckets: [[1, 2], [2, 2], [Infinity, 2]] as Array<[number, number]> };
    const b = parseHistogram(text, 'vllm:e2e_request_latency_seconds')!;
    const d = histogramDelta(a, b)!;
    expect(d).toEqual({ sum: 16, count: 8, buckets: [[1, 1], [2, 5], [Infinity, 8]] });
    expect(histogramQuantile(d, 0.5)).toBeCloseTo(1 + (4 - 1) / 4, 10);
    expect(histogramQuantile(d, 0.99)).toBe(2); // in +Inf: the highest finite bound
    expect(histogramDelta(b, a)).toBeUndefined(); // counter reset
  });
});
