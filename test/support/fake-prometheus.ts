/**
 * A stand-in for Prometheus' instant-query API on 127.0.0.1 that a test controls: it answers the router
 * queries of src/workload/queries.ts with a fixed per-bucket rate ("ok"), or on purpose with garbage (not
 * JSON), "NaN" sample values, or empty vectors; optionally only to `Authorization: Bearer <token>` (401
 * otherwise, like kube-rbac-proxy). Every request is recorded (path, query, Authorization header) so a test can
 * show what was, or was not, sent. vLLM queries always get an empty vector (no vLLM series).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type FakePrometheusMode = 'ok' | 'garbage' | 'nan' | 'empty';

export interface FakeBucketRate {
  input_le: string;
  output_le: string;
  /** req/s */
  rate: number;
}

export interface FakePrometheusOptions {
  /** What "ok" answers: the per-(input_le, output_le) request rates (the recent rate is their sum). */
  buckets: FakeBucketRate[];
  mode?: FakePrometheusMode;
  /** Require this bearer token (401 without it or with another one). */
  bearerToken?: string;
}

export interface FakeRequest {
  path: string;
  query: string;
  authorization: string | undefined;
}

export interface FakePrometheus {
  /** http://127.0.0.1:<port> */
  url: string;
  /** What the next answers are; change it at any time. */
  mode: FakePrometheusMode;
  bearerToken: string | undefined;
  buckets: FakeBucketRate[];
  /** Every request received, oldest first (at most the last 10,000). */
  readonly requests: FakeRequest[];
  close(): Promise<void>;
}

const MAX_BODY = 1 << 20;
const MAX_RECORDED = 10_000;

const json = (res: ServerResponse, status: number, body: unknown) =>
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

export async function startFakePrometheus(opts: FakePrometheusOptions): Promise<FakePrometheus> {
  const requests: FakeRequest[] = [];
  const state = { mode: opts.mode ?? 'ok', bearerToken: opts.bearerToken, buckets: opts.buckets };

  const answer = (req: IncomingMessage, res: ServerResponse, body: string) => {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    const params = req.method === 'POST' ? new URLSearchParams(body) : u.searchParams;
    const query = params.get('query') ?? '';
    const authorization = req.headers.authorization;
    requests.push({ path: u.pathname, query, authorization });
    if (requests.length > MAX_RECORDED) requests.shift();
    if (state.bearerToken !== undefined && authorization !== `Bearer ${state.bearerToken}`) {
      res.writeHead(401, { 'content-type': 'text/plain' }).end('Unauthorized');
      return;
    }
    if (u.pathname !== '/api/v1/query') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found');
      return;
    }
    if (state.mode === 'garbage') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('<html><body>definitely {not JSON</body></html>\x00\x01');
      return;
    }
    const time = Number(params.get('time') ?? Date.now() / 1000);
    const vector = (result: { metric: Record<string, string>; value: number }[]) =>
      json(res, 200, {
        status: 'success',
        data: { resultType: 'vector', result: result.map((r) => ({ metric: r.metric, value: [time, state.mode === 'nan' ? 'NaN' : String(r.value)] })) },
      });
    if (state.mode === 'empty' || query.includes('vllm:')) return vector([]);
    const total = state.buckets.reduce((a, b) => a + b.rate, 0);
    if (query.startsWith('sum by (input_le, output_le) (rate(')) {
      return vector(state.buckets.map((b) => ({ metric: { input_le: b.input_le, output_le: b.output_le }, value: b.rate })));
    }
    if (query.startsWith('sum(rate(')) return vector([{ metric: {}, value: total }]);
    if (query.startsWith('max(timestamp(')) return vector([{ metric: {}, value: time }]);
    json(res, 400, { status: 'error', errorType: 'bad_data', error: `fake Prometheus does not know the query ${query}` });
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      try {
        answer(req, res, Buffer.concat(chunks).toString('utf8'));
      } catch (err) {
        if (!res.headersSent) res.writeHead(500).end(String(err));
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get mode() {
      return state.mode;
    },
    set mode(m: FakePrometheusMode) {
      state.mode = m;
    },
    get bearerToken() {
      return state.bearerToken;
    },
    set bearerToken(t: string | undefined) {
      state.bearerToken = t;
    },
    get buckets() {
      return state.buckets;
    },
    set buckets(b: FakeBucketRate[]) {
      state.buckets = b;
    },
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
