/**
 * The emulator's HTTP layer: an OpenAI-compatible server (node:http) in front of the engine driver.
 * Always labelled an emulator: every response carries `x-melange-emulator: <gpu>` (and
 * `x-melange-emulator-speed`), /v1/models says `owned_by: melange-emulator`, /metrics has
 * `melange_emulator_info`, and the startup log line says so.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { contextError, Engine, type EngineLimits } from './engine.js';
import { EngineDriver } from './driver.js';
import { enginePerf, GPU_MODELS, type GpuModel, type GpuType } from './gpu-models.js';
import { EmulatorMetrics } from './metrics.js';
import {
  completionResponse,
  errorBody,
  parseRequest,
  streamChunk,
  usageChunk,
  usageOf,
  type ApiKind,
  type ErrorType,
  type ResponseIds,
} from './openai.js';
import { outputTokenText } from '../common/tokens.js';

export const EMULATOR_HEADER = 'x-melange-emulator';
export const EMULATOR_SPEED_HEADER = 'x-melange-emulator-speed';
export const EMULATOR_OWNER = 'melange-emulator';
export const DEFAULT_EMULATED_MODEL = 'meta-llama/Llama-2-7b-hf';

export interface EmulatorOptions {
  gpu: GpuType | GpuModel;
  /** Served model name (default meta-llama/Llama-2-7b-hf, the catalog's model). */
  model?: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Time dilation: 10 = ten emulated seconds per real second. Default 1. */
  speed?: number;
  limits?: Partial<EngineLimits>;
  logger?: Logger;
  /** Largest request body accepted (bytes), default 8 MiB. */
  maxBodyBytes?: number;
}

export interface RunningEmulator {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly gpuType: string;
  readonly model: string;
  readonly speed: number;
  readonly engine: Engine;
  readonly metrics: EmulatorMetrics;
  /**
   * Stops accepting connections, lets running requests finish for up to `drainMs` real milliseconds
   * (default 10 s), then aborts what is left and closes every connection.
   */
  close(opts?: { drainMs?: number }): Promise<void>;
}

class HttpError extends Error {
  constructor(readonly status: number, readonly type: ErrorType, message: string) {
    super(message);
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new HttpError(413, 'BadRequestError', `request body larger than ${limit} bytes`));
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startEmulator(opts: EmulatorOptions): Promise<RunningEmulator> {
  const gpu = typeof opts.gpu === 'string' ? GPU_MODELS[opts.gpu] : opts.gpu;
  const perf = enginePerf(gpu);
  const model = opts.model ?? DEFAULT_EMULATED_MODEL;
  const speed = opts.speed ?? 1;
  if (!(speed > 0) || !Number.isFinite(speed)) throw new Error(`speed must be a finite number > 0, not ${speed}`);
  const host = opts.host ?? '127.0.0.1';
  const log = opts.logger ?? pino({ name: 'melange-emulator' });
  const maxBody = opts.maxBodyBytes ?? 8 * 1024 * 1024;
  const engine = new Engine(perf, opts.limits);
  const metrics = new EmulatorMetrics({ model, gpuType: gpu.gpuType, speed, maxModelLen: perf.maxModelLen, stats: () => engine.stats() });
  const driver = new EngineDriver(engine, {
    speed,
    hooks: {
      onTokens: (t) => metrics.onTokens(t),
      onFirstToken: (a, f) => metrics.onFirstToken(a, f),
      onFinished: (r) => metrics.onFinished(r),
      onPreemptions: (n) => metrics.onPreemptions(n),
    },
  });
  const created = Math.floor(Date.now() / 1000);
  let draining = false;
  /** Responses still streaming or waiting for their completion, to end on forced shutdown. */
  const open = new Set<ServerResponse>();

  const sendJson = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const sendError = (res: ServerResponse, e: HttpError) => sendJson(res, e.status, errorBody(e.status, e.type, e.message));

  async function completions(kind: ApiKind, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (draining) throw new HttpError(503, 'ServiceUnavailableError', 'the server is shutting down');
    const raw = await readBody(req, maxBody);
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      throw new HttpError(400, 'BadRequestError', 'request body is not valid JSON');
    }
    const parsed = parseRequest(kind, body);
    if (!parsed.ok) {
      metrics.onRejected('invalid');
      throw new HttpError(400, 'BadRequestError', parsed.message);
    }
    const p = parsed.value;
    if (p.model !== undefined && p.model !== model) {
      metrics.onRejected('model');
      throw new HttpError(404, 'NotFoundError', `The model \`${p.model}\` does not exist.`);
    }
    const ctxErr = contextError(perf, p.promptTokens, p.maxTokens);
    if (ctxErr) {
      metrics.onRejected('context_length');
      throw new HttpError(400, 'BadRequestError', ctxErr);
    }

    const ids: ResponseIds = { id: `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`, created: Math.floor(Date.now() / 1000), model };
    let generated = 0;
    let text = '';
    let done = false;
    open.add(res);
    const write = (obj: unknown) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
    if (p.stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
      res.flushHeaders();
    }
    const { id } = driver.submit(p.promptTokens, p.maxTokens, {
      onTokens(tokens) {
        let chunk = '';
        for (const t of tokens) chunk += outputTokenText(t.index);
        if (!p.stream) { text += chunk; generated += tokens.length; return; }
        const last = tokens[tokens.length - 1]!;
        write(streamChunk(ids, kind, chunk, { role: generated === 0 && kind === 'chat', finished: last.finished, includeUsage: p.includeUsage }));
        generated += tokens.length;
      },
      onFinished(r) {
        done = true;
        open.delete(res);
        const usage = usageOf(p.promptTokens, r.outputTokens);
        if (p.stream) {
          if (p.includeUsage) write(usageChunk(ids, kind, usage));
          res.end('data: [DONE]\n\n');
        } else {
          sendJson(res, 200, completionResponse(ids, kind, text, usage));
        }
        log.debug({ id: ids.id, prompt: p.promptTokens, output: r.outputTokens, ttft: r.firstToken - r.arrival, latency: r.finish - r.arrival }, 'request finished');
      },
    });
    res.on('close', () => {
      if (done) return;
      open.delete(res);
      if (driver.abort(id)) metrics.onAborted();
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader(EMULATOR_HEADER, gpu.gpuType);
    res.setHeader(EMULATOR_SPEED_HEADER, String(speed));
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method ?? 'GET';
    const only = (m: string) => {
      if (method !== m) throw new HttpError(405, 'MethodNotAllowedError', `${method} not allowed on ${path}`);
    };
    switch (path) {
      case '/health':
        only('GET');
        if (draining) throw new HttpError(503, 'ServiceUnavailableError', 'the server is shutting down');
        res.writeHead(200, { 'content-length': 0 });
        res.end();
        return;
      case '/metrics': {
        only('GET');
        const text = await metrics.text();
        res.writeHead(200, { 'content-type': metrics.contentType });
        res.end(text);
        return;
      }
      case '/v1/models':
        only('GET');
        sendJson(res, 200, {
          object: 'list',
          data: [{ id: model, object: 'model', created, owned_by: EMULATOR_OWNER, root: model, parent: null, max_model_len: perf.maxModelLen, gpu_type: gpu.gpuType }],
        });
        return;
      case '/v1/completions':
        only('POST');
        return completions('completions', req, res);
      case '/v1/chat/completions':
        only('POST');
        return completions('chat', req, res);
      default:
        throw new HttpError(404, 'NotFoundError', `no route ${method} ${path}`);
    }
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const e = err instanceof HttpError ? err : new HttpError(500, 'InternalServerError', err instanceof Error ? err.message : String(err));
      if (e.status >= 500 && !(err instanceof HttpError)) log.error({ err }, 'request failed');
      if (res.headersSent) res.destroy();
      else sendError(res, e);
    });
  });
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  log.info(
    { emulator: true, gpuType: gpu.gpuType, model, speed, kvCacheTokens: perf.kvCapacityTokens, maxModelLen: perf.maxModelLen },
    `melange vLLM EMULATOR (no GPU, no model: timings from a performance model of ${gpu.gpuType}), time x${speed}`,
  );
  log.info({ url, port, host }, `listening on ${url}`);
  if (!/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(host)) log.warn({ host }, 'listening on a non-loopback address');

  let closing: Promise<void> | undefined;
  const close = (o: { drainMs?: number } = {}): Promise<void> => {
    closing ??= (async () => {
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const deadline = Date.now() + (o.drainMs ?? 10_000);
      while (driver.active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      if (driver.active > 0) log.warn({ aborted: driver.active }, 'drain timeout: aborting running requests');
      driver.stop();
      for (const res of open) res.destroy();
      open.clear();
      server.closeAllConnections();
      await closed;
      log.info('emulator stopped');
    })();
    return closing;
  };

  return { url, host, port, gpuType: gpu.gpuType, model, speed, engine, metrics, close };
}
