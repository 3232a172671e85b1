/**
 * The response relay: streams a backend's answer to the client unchanged (bar the usage-only SSE chunk the
 * router itself asked for), reading usage and first-token time on the way, and reports how it ended.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Backend } from './backends.js';
import { ignoreError, responseHeaders } from './http.js';
import { JsonScanner, SseScanner, type Usage } from './taps.js';

/** Non-streamed response bodies up to this size are also parsed for `usage`. */
const MAX_USAGE_COPY_BYTES = 8 * 1024 * 1024;

/** What relay() reports to; one long-lived object per router, so nothing is allocated for it per request. */
export interface RelayHooks {
  /** Monotonic milliseconds (TTFT, TPOT). */
  now(): number;
  /** The router is shutting down: the response then carries `Connection: close`. */
  draining(): boolean;
  /**
   * The request's prompt is no longer pending on the backend: its first token came back (the first SSE
   * event), or, when there is no such signal (a non-streamed response), the response is over. Called once,
   * before release().
   */
  prefillDone(backend: Backend, promptTokens: number): void;
  /** The response is over (completed, failed or abandoned): the backend's in-flight slot is free. */
  release(backend: Backend): void;
  /** The backend's response failed after its status line went out (not a client disconnect). */
  streamFailed(backend: Backend, err: Error): void;
  /** Counts the finished request by its status (499: the client left), its usage if seen, the bucket it was routed by. */
  count(pool: string, code: number, estIn: number, estOut: number, usage: Usage | undefined, routed: { input: number; output: number }): void;
  /** Latencies of a successful response in seconds; undefined when not measured. */
  observeLatency(pool: string, tpotSeconds: number | undefined, ttftSeconds: number | undefined): void;
}

export interface RelayedRequest {
  /** Monotonic start of the request (from hooks.now()); TTFT and TPOT are measured from it. */
  t0: number;
  /** The router added stream_options.include_usage the client did not ask for: drop the usage-only chunk. */
  stripUsage: boolean;
  /** The request's classification: token estimates and the bucket it was routed by. */
  cls: { inputTokens: number; outputTokens: number; input: number; output: number };
}

/** Relays `upRes` (from `backend`) to `res`; calls hooks.prefillDone(), hooks.release() and hooks.count() exactly once each. */
export function relay(upRes: IncomingMessage, res: ServerResponse, backend: Backend, ctx: RelayedRequest, hooks: RelayHooks): void {
  const status = upRes.statusCode ?? 502;
  const isSse = /text\/event-stream/i.test(String(upRes.headers['content-type'] ?? ''));
  const headers = responseHeaders(upRes.headers, isSse && ctx.stripUsage);
  headers['x-melange-pool'] = backend.pool;
  if (hooks.draining()) headers.connection = 'close';
  let tFirst: number | undefined;
  let prefillPending = true;
  const prefillDone = () => {
    if (!prefillPending) return;
    prefillPending = false;
    hooks.prefillDone(backend, ctx.cls.inputTokens);
  };
  const scanner = isSse
    ? new SseScanner({ stripUsageChunk: ctx.stripUsage, onFirstEvent: () => { tFirst = hooks.now(); prefillDone(); } })
    : new JsonScanner(MAX_USAGE_COPY_BYTES);
  res.writeHead(status, headers);

  // Manual piping (lighter than stream.pipeline + a Transform per request): forward each chunk as it
  // comes, pause the backend while the client's socket is full.
  let done = false;
  let clientGone = false;
  const onData = (chunk: Buffer) => {
    const out = scanner.push(chunk);
    if (out && !res.write(out)) upRes.pause();
  };
  const onDrain = () => upRes.resume();
  const onEnd = () => {
    const tail = scanner.flush();
    if (tail) res.end(tail);
    else res.end();
  };
  const onUpstreamError = (err: Error) => {
    finish(err);
    res.destroy(); // the client sees a cut stream (the status line is already out)
  };
  const onUpstreamClose = () => {
    if (!upRes.complete) onUpstreamError(new Error('the backend closed the response before its end'));
  };
  const onResClose = () => {
    if (res.writableFinished) return;
    clientGone = true;
    upRes.destroy();
    finish(new Error('client closed the connection'));
  };
  const onFinish = () => finish();
  const finish = (err?: Error) => {
    if (done) return;
    done = true;
    upRes.off('data', onData);
    upRes.off('end', onEnd);
    res.off('drain', onDrain);
    upRes.off('error', onUpstreamError);
    upRes.on('error', ignoreError); // late errors of a destroyed response
    prefillDone();
    hooks.release(backend);
    const tEnd = hooks.now();
    let code = status;
    if (err) {
      if (clientGone) code = 499;
      else hooks.streamFailed(backend, err);
    }
    const ok = !err && status >= 200 && status < 300;
    const usage = scanner.usage;
    hooks.count(backend.pool, code, ctx.cls.inputTokens, ctx.cls.outputTokens, usage, ctx.cls);
    if (!ok) return;
    hooks.observeLatency(
      backend.pool,
      usage && usage.completionTokens > 0 ? (tEnd - ctx.t0) / 1000 / usage.completionTokens : undefined,
      isSse && tFirst !== undefined ? (tFirst - ctx.t0) / 1000 : undefined,
    );
  };
  // on(), not once(): these fire once anyway and finish() runs once; once() would allocate a wrapper per
  // listener per request, kept for the whole stream.
  upRes.on('data', onData);
  upRes.on('end', onEnd);
  upRes.on('error', onUpstreamError);
  upRes.on('close', onUpstreamClose);
  res.on('drain', onDrain);
  res.on('finish', onFinish);
  res.on('close', onResClose);
}
