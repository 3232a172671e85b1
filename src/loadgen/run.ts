/**
 * The load generator as a library: Poisson arrivals at `rate` req/s, sizes from a distribution, streaming
 * OpenAI requests, per-request TTFT / TPOT / latency, and a summary with SLO attainment.
 *
 * Time: every duration in results and reports is in the TARGET's time, real milliseconds multiplied by the
 * time scale (1 for a real server; the emulator's --speed for a dilated emulator, detected from its
 * `x-melange-emulator-speed` header by default). `rate` is in that time too, so `rate: 4` against an emulator
 * at --speed 10 sends 40 requests per real second — 4 per emulated second. The bounds `requests` (count) and
 * `durationS` (wall-clock seconds of arrivals) are both always enforced, and in-flight requests get at most
 * `drainS` wall-clock seconds after the last arrival before they are aborted and counted as incomplete.
 */
import { CHAT_MESSAGE_OVERHEAD_TOKENS, CHAT_PROMPT_OVERHEAD_TOKENS, estimateTokens, synthesizeText } from '../common/tokens.js';
import { exponential, mulberry32 } from '../common/random.js';
import { sizeSampler, type SizeDistribution } from './distribution.js';
import { SseParser } from './sse.js';
import { summarize, type Summary } from './stats.js';

export const EMULATOR_SPEED_HEADER = 'x-melange-emulator-speed';
export const EMULATOR_HEADER = 'x-melange-emulator';

export interface LoadOptions {
  /** Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000. */
  url: string;
  /** Mean arrival rate (requests per second of target time). */
  rate: number;
  /** Most requests sent. */
  requests: number;
  /** Most wall-clock seconds during which requests are sent. */
  durationS: number;
  distribution: SizeDistribution;
  /** Default 'chat' (/v1/chat/completions); 'completions' uses /v1/completions. */
  api?: 'chat' | 'completions';
  /** Model name to request; default: the first model of GET /v1/models (omitted if that fails). */
  model?: string;
  /** Default true: streaming is needed for TTFT. */
  stream?: boolean;
  /** SLO on the paper's mean TPOT (latency / output tokens), milliseconds. */
  sloTpotMs?: number;
  /** Target seconds per real second; 'auto' (default) reads the emulator's speed header, else 1. */
  timeScale?: number | 'auto';
  /** Seed for arrivals and sizes (default 1); ignored when deps.random is given. */
  seed?: number;
  /** Most requests in flight; further arrivals wait for a free slot (default 512). */
  maxInFlight?: number;
  /** Wall-clock seconds one request may take (default 600). */
  requestTimeoutS?: number;
  /** Wall-clock seconds to wait for in-flight requests after the last arrival (default 120). */
  drainS?: number;
  /** Allow a target that is not a loopback address (default false). */
  allowRemote?: boolean;
  /** Called after every request ends. */
  onResult?: (r: RequestResult, done: number) => void;
}

export interface LoadDeps {
  fetch?: typeof fetch;
  /** Monotonic wall clock in milliseconds. */
  now?: () => number;
  /** Uniform [0, 1) source for arrivals and sizes. */
  random?: () => number;
  /** Resolves after `ms` wall-clock milliseconds (paired with `now` in tests that simulate time). */
  sleep?: (ms: number) => Promise<void>;
}

export type RequestStatus = 'ok' | 'error' | 'incomplete';

export interface RequestResult {
  index: number;
  /** Sizes asked for: prompt tokens under the shared estimator, and max_tokens. */
  targetInput: number;
  targetOutput: number;
  /** Wall-clock ms after the run started when the request was sent. */
  sentAtMs: number;
  status: RequestStatus;
  error?: string;
  httpStatus?: number;
  /** From the server's usage when it sent one, else estimated. */
  promptTokens?: number;
  completionTokens?: number;
  usageReported?: boolean;
  /** Target-time milliseconds (see the module comment). */
  ttftMs?: number;
  latencyMs?: number;
  /** The paper's TPOT: latency / output tokens (the SLO metric). */
  tpotMs?: number;
  /** Inter-token TPOT: (latency - TTFT) / (output tokens - 1), like vLLM's per-request TPOT. */
  itlMs?: number;
  meetsSlo?: boolean;
}

export interface LoadReport {
  target: { url: string; api: 'chat' | 'completions'; model: string | null; stream: boolean; emulator: string | null };
  timeScale: { value: number; source: 'option' | 'emulator-header' | 'default' };
  offered: { rate: number; maxRequests: number; durationS: number; distribution: string };
  sent: number;
  completed: number;
  errors: number;
  incomplete: number;
  errorKinds: Record<string, number>;
  /** Arrivals that waited for a free in-flight slot. */
  delayedArrivals: number;
  wallSeconds: number;
  /** Target-time seconds from the first send to the last completion. */
  elapsedSeconds: number;
  throughput: { requestsPerSecond: number; outputTokensPerSecond: number; inputTokensPerSecond: number };
  ttftMs: Summary;
  /** Paper TPOT = latency / output tokens, per request (the SLO metric). */
  tpotMs: Summary;
  /** Inter-token TPOT = (latency - TTFT) / (output - 1), per request. */
  itlMs: Summary;
  latencyMs: Summary;
  promptTokens: Summary;
  completionTokens: Summary;
  slo: null | {
    tpotMillis: number;
    metric: string;
    /** % of SENT requests whose paper TPOT <= the SLO (errors and incomplete requests count as misses). */
    attainmentPercent: number;
    /** Mean paper TPOT of completed requests — the paper's SLO is on this mean. */
    meanTpotMs: number | null;
    meanMeetsSlo: boolean;
  };
  results: RequestResult[];
}

export class LoadOptionsError extends Error {}

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function validate(o: LoadOptions): URL {
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new LoadOptionsError(`url: not a URL: "${o.url}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new LoadOptionsError(`url: must be http(s), not ${url.protocol}`);
  if (!o.allowRemote && !isLoopbackHost(url.hostname)) {
    throw new LoadOptionsError(`url: ${url.hostname} is not a loopback address; pass allowRemote (--allow-remote) to target it`);
  }
  if (!(o.rate > 0) || !Number.isFinite(o.rate)) throw new LoadOptionsError(`rate: must be a number > 0, not ${o.rate}`);
  if (!Number.isInteger(o.requests) || o.requests < 1) throw new LoadOptionsError(`requests: must be an integer >= 1, not ${o.requests}`);
  if (!(o.durationS > 0) || !Number.isFinite(o.durationS)) throw new LoadOptionsError(`duration: must be a number of seconds > 0, not ${o.durationS}`);
  if (o.sloTpotMs !== undefined && !(o.sloTpotMs > 0)) throw new LoadOptionsError(`slo-tpot-ms: must be > 0, not ${o.sloTpotMs}`);
  if (typeof o.timeScale === 'number' && !(o.timeScale > 0 && Number.isFinite(o.timeScale))) throw new LoadOptionsError(`time-scale: must be > 0, not ${o.timeScale}`);
  if (o.distribution.ranges.length === 0) throw new LoadOptionsError('distribution: empty');
  return url;
}

const join = (base: URL, path: string) => new URL(path, base.href.endsWith('/') ? base.href : `${base.href}/`).href;

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/** Body of one request whose prompt estimates to `input` tokens under the shared estimator. */
export function requestBody(api: 'chat' | 'completions', input: number, output: number, opts: { model?: string | undefined; stream: boolean; variant: number }): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (opts.model !== undefined) body.model = opts.model;
  if (api === 'chat') {
    const content = Math.max(1, input - CHAT_PROMPT_OVERHEAD_TOKENS - CHAT_MESSAGE_OVERHEAD_TOKENS);
    body.messages = [{ role: 'user', content: synthesizeText(content, opts.variant) }];
  } else {
    body.prompt = synthesizeText(Math.max(1, input), opts.variant);
  }
  body.max_tokens = output;
  // vLLM extensions: always generate exactly max_tokens (no early EOS), so sizes are what was asked for.
  body.ignore_eos = true;
  body.temperature = 0;
  body.stream = opts.stream;
  if (opts.stream) body.stream_options = { include_usage: true };
  return body;
}

interface Chunk {
  choices?: Array<{ text?: string | null; delta?: { content?: string | null } | null }>;
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
}

function chunkText(c: Chunk): string {
  let s = '';
  for (const ch of c.choices ?? []) s += (ch.text ?? '') + (ch.delta?.content ?? '');
  return s;
}

export async function runLoad(options: LoadOptions, deps: LoadDeps = {}): Promise<LoadReport> {
  const base = validate(options);
  const doFetch = deps.fetch ?? fetch;
  const now = deps.now ?? (() => performance.now());
  const sleep = deps.sleep ?? defaultSleep;
  const random = deps.random ?? mulberry32(options.seed ?? 1);
  const api = options.api ?? 'chat';
  const stream = options.stream ?? true;
  const maxInFlight = Math.max(1, options.maxInFlight ?? 512);
  // AbortSignal.timeout rejects fractional milliseconds (ERR_OUT_OF_RANGE), and a fractional --request-timeout is legal.
  const requestTimeoutMs = Math.ceil((options.requestTimeoutS ?? 600) * 1000);
  const drainMs = (options.drainS ?? 120) * 1000;
  const endpoint = join(base, api === 'chat' ? 'v1/chat/completions' : 'v1/completions');

  // Probe /v1/models for the model name and the emulator's time dilation, unless both are given.
  let model = options.model;
  let emulator: string | null = null;
  let timeScale: LoadReport['timeScale'] = typeof options.timeScale === 'number' ? { value: options.timeScale, source: 'option' } : { value: 1, source: 'default' };
  if (model === undefined || options.timeScale === undefined || options.timeScale === 'auto') {
    try {
      const res = await doFetch(join(base, 'v1/models'), { signal: AbortSignal.timeout(10_000) });
      emulator = res.headers.get(EMULATOR_HEADER);
      const speed = Number(res.headers.get(EMULATOR_SPEED_HEADER));
      if (timeScale.source === 'default' && res.headers.get(EMULATOR_SPEED_HEADER) !== null && speed > 0) timeScale = { value: speed, source: 'emulator-header' };
      if (res.ok && model === undefined) {
        const body = (await res.json()) as { data?: Array<{ id?: unknown }> };
        const id = body.data?.[0]?.id;
        if (typeof id === 'string') model = id;
      } else {
        await res.body?.cancel();
      }
    } catch {
      // No /v1/models: send without a model name and at time scale 1.
    }
  }
  const scale = timeScale.value;

  const sample = sizeSampler(options.distribution, random);
  const results: RequestResult[] = [];
  const all = new AbortController();
  const inFlight = new Set<Promise<void>>();
  let done = 0;
  let delayedArrivals = 0;
  const start = now();
  const arrivalDeadline = start + options.durationS * 1000;

  async function one(r: RequestResult): Promise<void> {
    const body = requestBody(api, r.targetInput, r.targetOutput, { model, stream, variant: r.index });
    const t0 = now();
    const signal = AbortSignal.any([all.signal, AbortSignal.timeout(requestTimeoutMs)]);
    let ttft: number | undefined;
    let text = '';
    let usage: Chunk['usage'];
    try {
      const res = await doFetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: stream ? 'text/event-stream' : 'application/json' },
        body: JSON.stringify(body),
        signal,
      });
      if (!res.ok) {
        r.status = 'error';
        r.httpStatus = res.status;
        const msg = await res.text().catch(() => '');
        let detail = msg.slice(0, 300);
        try {
          const e = JSON.parse(msg) as { error?: { message?: string }; message?: string };
          detail = e.error?.message ?? e.message ?? detail;
        } catch { /* not JSON */ }
        r.error = `http_${res.status}: ${detail}`;
        return;
      }
      if (stream) {
        if (!res.body) throw new Error('empty stream');
        const parser = new SseParser();
        const decoder = new TextDecoder();
        let sawDone = false;
        for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
          for (const data of parser.push(decoder.decode(bytes, { stream: true }))) {
            if (data === '[DONE]') { sawDone = true; continue; }
            const c = JSON.parse(data) as Chunk;
            const t = chunkText(c);
            if (t.length > 0 && ttft === undefined) ttft = now() - t0;
            text += t;
            if (c.usage) usage = c.usage;
          }
        }
        if (!sawDone) throw new Error('stream ended without [DONE]');
      } else {
        const c = (await res.json()) as { choices?: Array<{ text?: string; message?: { content?: string } }>; usage?: Chunk['usage'] };
        for (const ch of c.choices ?? []) text += (ch.text ?? '') + (ch.message?.content ?? '');
        usage = c.usage;
      }
      const latency = now() - t0;
      r.status = 'ok';
      r.usageReported = typeof usage?.completion_tokens === 'number';
      r.completionTokens = usage?.completion_tokens ?? estimateTokens(text);
      r.promptTokens = usage?.prompt_tokens ?? r.targetInput;
      r.latencyMs = latency * scale;
      if (ttft !== undefined) r.ttftMs = ttft * scale;
      if (r.completionTokens > 0) r.tpotMs = r.latencyMs / r.completionTokens;
      if (r.ttftMs !== undefined && r.completionTokens > 1) r.itlMs = (r.latencyMs - r.ttftMs) / (r.completionTokens - 1);
      if (options.sloTpotMs !== undefined) r.meetsSlo = r.tpotMs !== undefined && r.tpotMs <= options.sloTpotMs;
    } catch (err) {
      const e = err as Error;
      if (all.signal.aborted) {
        r.status = 'incomplete';
        r.error = 'aborted at the end of the drain period';
      } else {
        r.status = 'error';
        r.error = e.name === 'TimeoutError' ? 'timeout' : `network: ${e.message}`;
      }
    } finally {
      if (options.sloTpotMs !== undefined && r.meetsSlo === undefined) r.meetsSlo = false;
      done++;
      options.onResult?.(r, done);
    }
  }

  let arrival = 0; // target-time seconds after start
  for (let i = 0; i < options.requests; i++) {
    arrival += exponential(random, options.rate);
    const size = sample();
    const at = start + (arrival / scale) * 1000;
    if (at > arrivalDeadline) break;
    const wait = at - now();
    if (wait > 0) await sleep(wait);
    if (inFlight.size >= maxInFlight) {
      delayedArrivals++;
      while (inFlight.size >= maxInFlight) await Promise.race(inFlight);
      if (now() > arrivalDeadline) break;
    }
    const r: RequestResult = { index: i, targetInput: size.input, targetOutput: size.output, sentAtMs: now() - start, status: 'incomplete' };
    results.push(r);
    const p: Promise<void> = one(r).finally(() => inFlight.delete(p));
    inFlight.add(p);
  }

  // Drain: wait for in-flight requests, in short slices so no long timer outlives the run.
  const drainDeadline = now() + drainMs;
  while (inFlight.size > 0 && now() < drainDeadline) {
    await Promise.race([Promise.race(inFlight), sleep(Math.min(250, drainDeadline - now()))]);
  }
  if (inFlight.size > 0) {
    all.abort();
    await Promise.all(inFlight);
  }
  const wallMs = now() - start;
  return buildReport({ options, results, model, emulator, timeScale, delayedArrivals, wallMs, api, stream, url: base.href });
}

function buildReport(a: {
  options: LoadOptions;
  results: RequestResult[];
  model: string | undefined;
  emulator: string | null;
  timeScale: LoadReport['timeScale'];
  delayedArrivals: number;
  wallMs: number;
  api: 'chat' | 'completions';
  stream: boolean;
  url: string;
}): LoadReport {
  const { results, options } = a;
  const ok = results.filter((r) => r.status === 'ok');
  const errorKinds: Record<string, number> = {};
  for (const r of results) {
    if (r.status === 'ok') continue;
    const kind = r.status === 'incomplete' ? 'incomplete' : r.httpStatus !== undefined ? `http_${r.httpStatus}` : (r.error ?? 'error').split(':')[0]!;
    errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
  }
  const scale = a.timeScale.value;
  let first = Infinity;
  let last = -Infinity;
  for (const r of ok) {
    first = Math.min(first, r.sentAtMs * scale);
    last = Math.max(last, r.sentAtMs * scale + (r.latencyMs ?? 0));
  }
  const elapsedSeconds = ok.length > 0 ? (last - first) / 1000 : 0;
  const outTok = ok.reduce((s, r) => s + (r.completionTokens ?? 0), 0);
  const inTok = ok.reduce((s, r) => s + (r.promptTokens ?? 0), 0);
  const per = (x: number) => (elapsedSeconds > 0 ? x / elapsedSeconds : 0);
  const tpot = summarize(ok.map((r) => r.tpotMs ?? NaN));
  const slo = options.sloTpotMs;
  return {
    target: { url: a.url, api: a.api, model: a.model ?? null, stream: a.stream, emulator: a.emulator },
    timeScale: a.timeScale,
    offered: { rate: options.rate, maxRequests: options.requests, durationS: options.durationS, distribution: options.distribution.name },
    sent: results.length,
    completed: ok.length,
    errors: results.filter((r) => r.status === 'error').length,
    incomplete: results.filter((r) => r.status === 'incomplete').length,
    errorKinds,
    delayedArrivals: a.delayedArrivals,
    wallSeconds: a.wallMs / 1000,
    elapsedSeconds,
    throughput: { requestsPerSecond: per(ok.length), outputTokensPerSecond: per(outTok), inputTokensPerSecond: per(inTok) },
    ttftMs: summarize(ok.map((r) => r.ttftMs ?? NaN)),
    tpotMs: tpot,
    itlMs: summarize(ok.map((r) => r.itlMs ?? NaN)),
    latencyMs: summarize(ok.map((r) => r.latencyMs ?? NaN)),
    promptTokens: summarize(ok.map((r) => r.promptTokens ?? NaN)),
    completionTokens: summarize(ok.map((r) => r.completionTokens ?? NaN)),
    slo:
      slo === undefined
        ? null
        : {
            tpotMillis: slo,
            metric: "the paper's TPOT: request latency (queueing and prefill included) / output tokens",
            attainmentPercent: results.length > 0 ? (100 * results.filter((r) => r.meetsSlo).length) / results.length : 0,
            meanTpotMs: tpot.mean,
            meanMeetsSlo: tpot.mean !== null && tpot.mean <= slo,
          },
    results,
  };
}
