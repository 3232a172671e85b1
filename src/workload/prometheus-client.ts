/**
 * Prometheus HTTP API client: instant queries (`/api/v1/query`) only, every response validated with zod.
 *
 * Hardened in the ways operators need (cf. llm-d's client): a per-query deadline that also covers reading
 * the body (AbortController) plus Prometheus' own `timeout` parameter, the evaluation `time` always explicit
 * (the caller's clock), an optional bearer token and TLS CA bundle (PEM strings; resolving Secret references
 * is the caller's job, see secrets.ts), no redirects (a redirect could carry the token elsewhere), a cap on
 * the response size, and one typed error (`PrometheusError`) whose `kind` says what went wrong.
 *
 * Transport: Node 20's global `fetch` by default (injectable). Node's fetch cannot take a custom CA without
 * undici, so when a CA is given the request goes through `node:https.request({ ca })` instead.
 */
import { request as httpsRequest } from 'node:https';
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------
// Errors

export type PrometheusErrorKind =
  /** Bad client configuration (URL, token); nothing was sent. */
  | 'config'
  /** Connection refused, DNS, TLS verification, reset… */
  | 'network'
  /** The client-side deadline passed (connect, response or body). */
  | 'timeout'
  /** The caller's AbortSignal fired. */
  | 'aborted'
  /** Non-2xx status without a Prometheus error envelope (proxy errors, 401/403 from an auth proxy…). */
  | 'http'
  /** Prometheus answered `status: "error"` (bad_data, timeout, execution, canceled…). */
  | 'api'
  /** The body is not a valid Prometheus API response (not JSON, wrong shape, unparsable sample, too large). */
  | 'decode'
  /** Valid response, but not the result type the caller asked for (e.g. a matrix instead of a vector). */
  | 'result-type';

export class PrometheusError extends Error {
  override name = 'PrometheusError';
  readonly kind: PrometheusErrorKind;
  /** HTTP status, when a response arrived. */
  readonly status: number | undefined;
  /** Prometheus `errorType` (kind 'api'). */
  readonly errorType: string | undefined;
  readonly query: string | undefined;

  constructor(
    kind: PrometheusErrorKind,
    message: string,
    extra: { status?: number; errorType?: string; query?: string; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.kind = kind;
    this.status = extra.status;
    this.errorType = extra.errorType;
    this.query = extra.query;
  }
}

// ---------------------------------------------------------------------------------------------
// Response schema (https://prometheus.io/docs/prometheus/latest/querying/api/#format-overview)

const SampleValueSchema = z.tuple([z.number(), z.string()]);

const VectorDataSchema = z.object({
  resultType: z.literal('vector'),
  result: z.array(z.object({ metric: z.record(z.string(), z.string()), value: SampleValueSchema })),
});
const ScalarDataSchema = z.object({ resultType: z.literal('scalar'), result: SampleValueSchema });
// Matrices and strings are never asked for; they are recognised only to report a clear 'result-type' error.
const OtherDataSchema = z.object({ resultType: z.enum(['matrix', 'string']), result: z.unknown() });

const SuccessSchema = z.object({
  status: z.literal('success'),
  data: z.discriminatedUnion('resultType', [VectorDataSchema, ScalarDataSchema, OtherDataSchema]),
  warnings: z.array(z.string()).optional(),
  infos: z.array(z.string()).optional(),
});
const ErrorEnvelopeSchema = z.object({
  status: z.literal('error'),
  errorType: z.string(),
  error: z.string(),
  warnings: z.array(z.string()).optional(),
});
const ResponseSchema = z.discriminatedUnion('status', [SuccessSchema, ErrorEnvelopeSchema]);

/** One sample of an instant vector. */
export interface Sample {
  labels: Readonly<Record<string, string>>;
  /** Unix seconds (fractional) of the sample. For an expression result this is the evaluation time. */
  timestamp: number;
  /** May be NaN or ±Infinity: Prometheus can return them; estimate.ts rejects them. */
  value: number;
}

export interface VectorResult {
  resultType: 'vector';
  samples: Sample[];
  warnings: string[];
}
export interface ScalarResult {
  resultType: 'scalar';
  timestamp: number;
  value: number;
  warnings: string[];
}
export type QueryResult = VectorResult | ScalarResult;

const FLOAT_RE = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** Parses a Prometheus sample value string ("12.5", "1e-3", "NaN", "+Inf", "-Inf"); undefined if malformed. */
export function parseSampleValue(s: string): number | undefined {
  if (s === 'NaN') return NaN;
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  return FLOAT_RE.test(s) ? Number(s) : undefined;
}

/**
 * Turns a response (HTTP status + body text) into a result or a typed error. Pure; exported for tests.
 * Prometheus sends its JSON error envelope with 400 (bad_data), 422 (execution), 503 (timeout/canceled);
 * any other non-2xx body (a proxy's HTML page) is an 'http' error.
 */
export function parseQueryResponse(status: number, body: string, query?: string): QueryResult {
  const q = query === undefined ? {} : { query };
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    if (status < 200 || status >= 300) throw new PrometheusError('http', `HTTP ${status}: ${snippet(body)}`, { status, ...q });
    throw new PrometheusError('decode', `HTTP ${status}: response is not JSON: ${snippet(body)}`, { status, ...q });
  }
  const parsed = ResponseSchema.safeParse(json);
  if (!parsed.success) {
    if (status < 200 || status >= 300) throw new PrometheusError('http', `HTTP ${status}: ${snippet(body)}`, { status, ...q });
    const issue = parsed.error.issues[0];
    const where = issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'unknown shape';
    throw new PrometheusError('decode', `HTTP ${status}: not a Prometheus API response (${where})`, { status, ...q });
  }
  const r = parsed.data;
  if (r.status === 'error') {
    throw new PrometheusError('api', `Prometheus ${r.errorType} error (HTTP ${status}): ${r.error}`, {
      status,
      errorType: r.errorType,
      ...q,
    });
  }
  if (status < 200 || status >= 300) {
    throw new PrometheusError('http', `HTTP ${status} with a success body`, { status, ...q });
  }
  const warnings = [...(r.warnings ?? []), ...(r.infos ?? [])];
  const value = (raw: string): number => {
    const v = parseSampleValue(raw);
    if (v === undefined) throw new PrometheusError('decode', `unparsable sample value ${JSON.stringify(snippet(raw))}`, { status, ...q });
    return v;
  };
  const d = r.data;
  switch (d.resultType) {
    case 'vector':
      return {
        resultType: 'vector',
        samples: d.result.map((s) => ({ labels: s.metric, timestamp: s.value[0], value: value(s.value[1]) })),
        warnings,
      };
    case 'scalar':
      return { resultType: 'scalar', timestamp: d.result[0], value: value(d.result[1]), warnings };
    default:
      throw new PrometheusError('result-type', `unexpected resultType "${d.resultType}"`, { status, ...q });
  }
}

const snippet = (s: string, max = 200) => {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max)}…` : one;
};

// ---------------------------------------------------------------------------------------------
// Transport

export interface HttpRequest {
  url: URL;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
  signal: AbortSignal;
}
export interface HttpResponse {
  status: number;
  body: string;
}
/** Sends one request; rejects on network errors and when `signal` aborts (also while reading the body). */
export type HttpTransport = (req: HttpRequest) => Promise<HttpResponse>;

export const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

class ResponseTooLarge extends Error {}

/** A transport over a fetch implementation (Node 20's global fetch by default). */
export function fetchTransport(fetchFn: typeof fetch = globalThis.fetch, maxBytes = DEFAULT_MAX_RESPONSE_BYTES): HttpTransport {
  return async (req) => {
    const res = await fetchFn(req.url, {
      method: req.method,
      headers: req.headers,
      ...(req.body === undefined ? {} : { body: req.body }),
      signal: req.signal,
      redirect: 'error',
    });
    if (!res.body) return { status: res.status, body: '' };
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new ResponseTooLarge(`response exceeds ${maxBytes} bytes`);
      }
      chunks.push(value);
    }
    return { status: res.status, body: Buffer.concat(chunks).toString('utf8') };
  };
}

/** A transport over node:https that verifies the server against `caPem` (and only it). */
export function httpsCaTransport(caPem: string, maxBytes = DEFAULT_MAX_RESPONSE_BYTES): HttpTransport {
  return (req) =>
    new Promise<HttpResponse>((resolve, reject) => {
      if (req.url.protocol !== 'https:') {
        reject(new PrometheusError('config', `a CA bundle was given but the URL is not https: ${req.url.origin}`));
        return;
      }
      const headers: Record<string, string> = { ...req.headers };
      if (req.body !== undefined) headers['content-length'] = String(Buffer.byteLength(req.body));
      const r = httpsRequest(req.url, { method: req.method, headers, ca: caPem, signal: req.signal, agent: false }, (res) => {
        // Redirects are not followed (see fetchTransport): report them as an HTTP status.
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxBytes) {
            res.destroy(new ResponseTooLarge(`response exceeds ${maxBytes} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
        res.on('aborted', () => reject(new Error('response aborted')));
      });
      r.on('error', reject);
      r.end(req.body);
    });
}

// ---------------------------------------------------------------------------------------------
// Client

export interface PrometheusConnection {
  /** Base URL, e.g. http://prometheus.monitoring:9090 or https://thanos.example/prometheus (path prefix kept). */
  url: string;
  /** Sent as `Authorization: Bearer <token>`. */
  bearerToken?: string;
  /** PEM CA bundle the server certificate must chain to (https only). */
  caPem?: string;
}

export interface PrometheusClientOptions extends PrometheusConnection {
  /** Client-side deadline per query, also sent to Prometheus as `timeout`. Default 10 s. */
  timeoutMs?: number;
  /** Injected fetch (tests); ignored when `caPem` or `transport` is given. */
  fetch?: typeof fetch;
  /** Full transport override (tests). */
  transport?: HttpTransport;
  /** POST (default: form body, no URL length limit) or GET. */
  method?: 'GET' | 'POST';
  maxResponseBytes?: number;
}

export interface QueryOptions {
  /** Evaluation time; pass the caller's clock. Omitted → Prometheus' current time. */
  time?: Date;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** What the workload source needs from a client; tests substitute fakes. */
export interface PrometheusQuerier {
  queryVector(query: string, opts?: QueryOptions): Promise<VectorResult>;
}

export const DEFAULT_QUERY_TIMEOUT_MS = 10_000;

export class PrometheusClient implements PrometheusQuerier {
  private readonly endpoint: URL;
  private readonly headers: Record<string, string>;
  private readonly transport: HttpTransport;
  private readonly timeoutMs: number;
  private readonly method: 'GET' | 'POST';

  /** Throws PrometheusError('config') on a bad URL or token. */
  constructor(opts: PrometheusClientOptions) {
    let base: URL;
    try {
      base = new URL(opts.url);
    } catch {
      throw new PrometheusError('config', `invalid Prometheus URL ${JSON.stringify(opts.url)}`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new PrometheusError('config', `Prometheus URL must be http(s), got ${base.protocol}`);
    }
    if (base.username || base.password) {
      throw new PrometheusError('config', 'Prometheus URL must not embed credentials; use a bearer token Secret');
    }
    if (base.search || base.hash) throw new PrometheusError('config', 'Prometheus URL must not have a query or fragment');
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    this.endpoint = new URL('api/v1/query', base);

    this.headers = { accept: 'application/json', 'user-agent': 'melange-operator' };
    if (opts.bearerToken !== undefined) {
      const token = opts.bearerToken.trim();
      if (token === '' || /[\s\x00-\x1f\x7f]/.test(token)) {
        throw new PrometheusError('config', 'bearer token is empty or contains whitespace/control characters');
      }
      this.headers.authorization = `Bearer ${token}`;
    }
    const max = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    if (opts.transport) this.transport = opts.transport;
    else if (opts.caPem !== undefined) {
      if (base.protocol !== 'https:') throw new PrometheusError('config', 'a CA bundle was given but the Prometheus URL is not https');
      this.transport = httpsCaTransport(opts.caPem, max);
    } else this.transport = fetchTransport(opts.fetch ?? globalThis.fetch, max);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
    this.method = opts.method ?? 'POST';
  }

  /** The URL queries go to (for messages). */
  get queryUrl(): string {
    return this.endpoint.href;
  }

  /** Instant query; vector or scalar result. Rejects only with PrometheusError. */
  async query(query: string, opts: QueryOptions = {}): Promise<QueryResult> {
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const params = new URLSearchParams({ query, timeout: `${Math.max(1, Math.floor(timeoutMs))}ms` });
    if (opts.time) params.set('time', (opts.time.getTime() / 1000).toFixed(3));

    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = () => controller.abort();
    if (opts.signal?.aborted) controller.abort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });

    let url = this.endpoint;
    const headers = { ...this.headers };
    let body: string | undefined;
    if (this.method === 'POST') {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = params.toString();
    } else {
      url = new URL(this.endpoint);
      url.search = params.toString();
    }
    try {
      const res = await this.transport({ url, method: this.method, headers, ...(body === undefined ? {} : { body }), signal: controller.signal });
      return parseQueryResponse(res.status, res.body, query);
    } catch (err) {
      if (err instanceof PrometheusError) throw err;
      if (timedOut) {
        throw new PrometheusError('timeout', `query timed out after ${timeoutMs} ms (${this.endpoint.origin})`, { query, cause: err });
      }
      if (opts.signal?.aborted) throw new PrometheusError('aborted', 'query aborted by the caller', { query, cause: err });
      if (err instanceof ResponseTooLarge) throw new PrometheusError('decode', err.message, { query });
      throw new PrometheusError('network', `cannot reach Prometheus at ${this.endpoint.origin}: ${describeNetworkError(err)}`, {
        query,
        cause: err,
      });
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Instant query that must return a vector. */
  async queryVector(query: string, opts: QueryOptions = {}): Promise<VectorResult> {
    const r = await this.query(query, opts);
    if (r.resultType !== 'vector') throw new PrometheusError('result-type', `expected a vector, got a ${r.resultType}`, { query });
    return r;
  }

  /** Instant query that must return a scalar. */
  async queryScalar(query: string, opts: QueryOptions = {}): Promise<ScalarResult> {
    const r = await this.query(query, opts);
    if (r.resultType !== 'scalar') throw new PrometheusError('result-type', `expected a scalar, got a ${r.resultType}`, { query });
    return r;
  }
}

/** "fetch failed" hides the reason in `cause` (ECONNREFUSED, certificate errors…); dig it out. */
export function describeNetworkError(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e !== undefined && e !== null; depth++) {
    if (e instanceof Error) {
      const code = (e as { code?: unknown }).code;
      parts.push(typeof code === 'string' ? `${e.message} (${code})` : e.message);
      e = (e as { cause?: unknown }).cause;
    } else {
      parts.push(String(e));
      break;
    }
  }
  return [...new Set(parts)].join(': ') || 'unknown error';
}
