/**
 * The client side of the router-overhead benchmark: one timed streaming request (`send`), the background
 * load's closed-loop workers (`runBackground`, run in a process of its own) and the statistics of the
 * added latency (`quantile`, `bootstrapDiff`).
 */
import http from 'node:http';
import { mulberry32 } from '../../src/common/random.js';
import { percentile, requestBody } from '../../src/loadgen/index.js';

/** One keep-alive agent per client process: probes and background reuse their connections. */
export const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024, scheduling: 'lifo' });

/** Header that makes the bare relay send a request to the probe emulator (the router ignores it, classifying instead). */
export const PROBE_HEADER = { 'x-bench-target': 'probe' } as const;

export interface Timing {
  /** Send → first body byte (the first SSE event; the router and the relay send the status line with it). */
  ttftMs: number;
  /** Send → end of the stream. */
  latencyMs: number;
}

/** One streaming chat request; resolves with its timings, rejects on any failure (status, cut stream, timeout). */
export function send(url: URL, body: Buffer, extraHeaders: Record<string, string> = {}, onChunk?: () => void): Promise<Timing> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let first: number | undefined;
    let tail = '';
    const req = http.request(
      { hostname: url.hostname, port: url.port, path: '/v1/chat/completions', method: 'POST', agent,
        headers: { 'content-type': 'application/json', 'content-length': body.length, accept: 'text/event-stream', ...extraHeaders } },
      (res) => {
        res.on('data', (c: Buffer) => {
          if (first === undefined) first = performance.now();
          onChunk?.();
          tail = (tail + c.toString('latin1')).slice(-64);
        });
        res.on('end', () => {
          const t1 = performance.now();
          if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}: ${tail}`));
          else if (!tail.includes('data: [DONE]')) reject(new Error('stream ended without [DONE]'));
          else resolve({ ttftMs: (first ?? t1) - t0, latencyMs: t1 - t0 });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(120_000, () => req.destroy(new Error('request timeout (120 s)')));
    req.on('error', reject);
    req.end(body);
  });
}

/** The p-th percentile (0–100) of unsorted values; NaN when empty. */
export const quantile = (xs: readonly number[], p: number): number => percentile([...xs].sort((a, b) => a - b), p) ?? NaN;

/** Bootstrap 95% interval of quantile_p(routed) − quantile_p(direct), seeded. */
export function bootstrapDiff(routed: readonly number[], direct: readonly number[], p: number, seed: number, rounds = 300): [number, number] {
  const rnd = mulberry32(seed);
  const resample = (xs: readonly number[]) => {
    const out = new Array<number>(xs.length);
    for (let i = 0; i < xs.length; i++) out[i] = xs[Math.floor(rnd() * xs.length)]!;
    return out;
  };
  const diffs: number[] = [];
  for (let r = 0; r < rounds; r++) diffs.push(quantile(resample(routed), p) - quantile(resample(direct), p));
  diffs.sort((a, b) => a - b);
  return [percentile(diffs, 2.5)!, percentile(diffs, 97.5)!];
}

export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** What the background process reports, one JSON line `{"bg": …}` every 500 ms. */
export interface BgStats {
  /** ms since the background process started. */
  t: number;
  open: number;
  /** Fewest / most streams open during the last interval. */
  minOpen: number;
  maxOpen: number;
  done: number;
  chunks: number;
  failures: number;
  firstFailure?: string;
}

/**
 * The background load: `streams` closed-loop workers sending streaming chat requests to `url` one after the other
 * (prompt U[100, 300] tokens, output U[32, 96], seeded); reports on stdout every 500 ms; returns after
 * `maxSeconds` or 100 failures. Exits on SIGTERM.
 */
export async function runBackground(url: URL, streams: number, seed: number, maxSeconds: number): Promise<void> {
  const rnd = mulberry32(seed);
  const bodies: Buffer[] = [];
  for (let i = 0; i < 1024; i++) {
    const input = 100 + Math.floor(rnd() * 201);
    const output = 32 + Math.floor(rnd() * 65);
    bodies.push(Buffer.from(JSON.stringify(requestBody('chat', input, output, { stream: true, variant: i }))));
  }
  const t0 = performance.now();
  const end = t0 + maxSeconds * 1000;
  const st: BgStats = { t: 0, open: 0, minOpen: Infinity, maxOpen: 0, done: 0, chunks: 0, failures: 0 };
  const onChunk = () => { st.chunks++; };
  const report = setInterval(() => {
    st.t = performance.now() - t0;
    process.stdout.write(`${JSON.stringify({ bg: { ...st, minOpen: Math.min(st.minOpen, st.open) } })}\n`);
    st.minOpen = st.open;
    st.maxOpen = st.open;
  }, 500);
  process.once('SIGTERM', () => process.exit(0));
  const worker = async (w: number) => {
    await delay((w / streams) * 2000); // stagger, so the streams do not move in lock-step
    let k = w * 37;
    while (performance.now() < end && st.failures < 100) {
      st.open++;
      st.maxOpen = Math.max(st.maxOpen, st.open);
      try {
        await send(url, bodies[k++ % bodies.length]!, {}, onChunk);
        st.done++;
      } catch (err) {
        st.failures++;
        st.firstFailure ??= (err as Error).message;
      } finally {
        st.open--;
        st.minOpen = Math.min(st.minOpen, st.open);
      }
    }
  };
  await Promise.all(Array.from({ length: streams }, (_, w) => worker(w)));
  clearInterval(report);
}
