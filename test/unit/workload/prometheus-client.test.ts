import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  PrometheusClient,
  PrometheusError,
  parseQueryResponse,
  parseSampleValue,
  type HttpRequest,
  type HttpTransport,
} from '../../../src/workload/prometheus-client.js';

const vector = (result: unknown[], extra: Record<string, unknown> = {}) =>
  JSON.stringify({ status: 'success', data: { resultType: 'vector', result }, ...extra });

async function expectPromError(p: Promise<unknown>): Promise<PrometheusError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(PrometheusError);
    return err as PrometheusError;
  }
  throw new Error('expected a PrometheusError');
}

function catching(fn: () => unknown): PrometheusError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PrometheusError);
    return err as PrometheusError;
  }
  throw new Error('expected a PrometheusError');
}

describe('parseSampleValue', () => {
  it('parses numbers and the special values Prometheus prints', () => {
    expect(parseSampleValue('12.5')).toBe(12.5);
    expect(parseSampleValue('1e-3')).toBe(0.001);
    expect(parseSampleValue('-0')).toBe(-0);
    expect(parseSampleValue('NaN')).toBeNaN();
    expect(parseSampleValue('+Inf')).toBe(Infinity);
    expect(parseSampleValue('-Inf')).toBe(-Infinity);
    for (const bad of ['', 'abc', '1,5', '0x10', ' 1', 'Infinity']) expect(parseSampleValue(bad)).toBeUndefined();
  });
});

describe('parseQueryResponse', () => {
  it('parses a vector with labels, timestamps and values', () => {
    const r = parseQueryResponse(
      200,
      vector([
        { metric: { input_le: '25', output_le: '100' }, value: [1764322800.123, '0.5'] },
        { metric: {}, value: [1764322800.123, '2'] },
      ]),
    );
    expect(r).toEqual({
      resultType: 'vector',
      warnings: [],
      samples: [
        { labels: { input_le: '25', output_le: '100' }, timestamp: 1764322800.123, value: 0.5 },
        { labels: {}, timestamp: 1764322800.123, value: 2 },
      ],
    });
  });

  it('keeps NaN and ±Inf samples as numbers (estimation rejects them, not the parser)', () => {
    const r = parseQueryResponse(200, vector([{ metric: { a: '1' }, value: [1, 'NaN'] }, { metric: { a: '2' }, value: [1, '+Inf'] }]));
    expect(r.resultType).toBe('vector');
    if (r.resultType !== 'vector') return;
    expect(r.samples[0]?.value).toBeNaN();
    expect(r.samples[1]?.value).toBe(Infinity);
  });

  it('parses a scalar and passes warnings (and infos) through', () => {
    const r = parseQueryResponse(200, JSON.stringify({ status: 'success', data: { resultType: 'scalar', result: [10, '3'] }, warnings: ['partial'], infos: ['i'] }));
    expect(r).toEqual({ resultType: 'scalar', timestamp: 10, value: 3, warnings: ['partial', 'i'] });
  });

  it('turns the error envelope into kind "api" with errorType and HTTP status', () => {
    const e = catching(() =>
      parseQueryResponse(400, JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'parse error at char 5' }), 'up{'),
    );
    expect(e.kind).toBe('api');
    expect(e.status).toBe(400);
    expect(e.errorType).toBe('bad_data');
    expect(e.query).toBe('up{');
    expect(e.message).toContain('parse error at char 5');
    const t = catching(() => parseQueryResponse(503, JSON.stringify({ status: 'error', errorType: 'timeout', error: 'query timed out' })));
    expect([t.kind, t.errorType, t.status]).toEqual(['api', 'timeout', 503]);
  });

  it('reports a wrong resultType as kind "result-type"', () => {
    const e = catching(() => parseQueryResponse(200, JSON.stringify({ status: 'success', data: { resultType: 'matrix', result: [] } })));
    expect(e.kind).toBe('result-type');
    expect(e.message).toContain('matrix');
  });

  it('rejects bodies that are not Prometheus responses as "decode" (2xx) or "http" (non-2xx)', () => {
    expect(catching(() => parseQueryResponse(200, 'not json')).kind).toBe('decode');
    expect(catching(() => parseQueryResponse(200, JSON.stringify({ status: 'success' }))).kind).toBe('decode');
    expect(catching(() => parseQueryResponse(200, vector([{ metric: {}, value: [1] }]))).kind).toBe('decode');
    expect(catching(() => parseQueryResponse(200, vector([{ metric: { a: 1 }, value: [1, '2'] }]))).kind).toBe('decode');
    expect(catching(() => parseQueryResponse(200, vector([{ metric: {}, value: [1, 'garbage'] }]))).kind).toBe('decode');
    const html = catching(() => parseQueryResponse(502, '<html><body>Bad Gateway</body></html>'));
    expect([html.kind, html.status]).toEqual(['http', 502]);
    expect(html.message).toContain('Bad Gateway');
    expect(catching(() => parseQueryResponse(401, JSON.stringify({ message: 'Unauthorized' }))).kind).toBe('http');
  });
});

describe('PrometheusClient with an injected transport', () => {
  const ok: HttpTransport = async () => ({ status: 200, body: vector([{ metric: { x: 'y' }, value: [5, '1'] }]) });

  it('POSTs a form with query, time (from the caller\'s clock) and server-side timeout to <base>/api/v1/query', async () => {
    const seen: HttpRequest[] = [];
    const client = new PrometheusClient({
      url: 'https://prom.example/prefix',
      bearerToken: 'tok\n',
      timeoutMs: 2500,
      transport: async (req) => {
        seen.push(req);
        return ok(req);
      },
    });
    const r = await client.queryVector('sum(rate(x[5m]))', { time: new Date('2026-11-28T10:00:00.250Z') });
    expect(r.samples).toEqual([{ labels: { x: 'y' }, timestamp: 5, value: 1 }]);
    const req = seen[0];
    expect(req?.url.href).toBe('https://prom.example/prefix/api/v1/query');
    expect(req?.method).toBe('POST');
    expect(req?.headers.authorization).toBe('Bearer tok');
    expect(req?.headers['content-type']).toBe('application/x-www-form-urlencoded');
    const form = new URLSearchParams(req?.body);
    expect(form.get('query')).toBe('sum(rate(x[5m]))');
    expect(form.get('time')).toBe('1795860000.250');
    expect(form.get('timeout')).toBe('2500ms');
  });

  it('GET puts the parameters in the URL', async () => {
    let url: URL | undefined;
    const client = new PrometheusClient({
      url: 'http://prom:9090/',
      method: 'GET',
      transport: async (req) => {
        url = req.url;
        return ok(req);
      },
    });
    await client.queryVector('up{job="a b"}');
    expect(url?.pathname).toBe('/api/v1/query');
    expect(url?.searchParams.get('query')).toBe('up{job="a b"}');
    expect(url?.searchParams.has('time')).toBe(false);
  });

  it('queryVector / queryScalar insist on their result type', async () => {
    const scalar: HttpTransport = async () => ({ status: 200, body: JSON.stringify({ status: 'success', data: { resultType: 'scalar', result: [1, '2'] } }) });
    const c = new PrometheusClient({ url: 'http://p', transport: scalar });
    expect((await expectPromError(c.queryVector('1'))).kind).toBe('result-type');
    expect((await c.queryScalar('1')).value).toBe(2);
    expect((await expectPromError(new PrometheusClient({ url: 'http://p', transport: ok }).queryScalar('x'))).kind).toBe('result-type');
  });

  it('times out a transport that never answers (kind "timeout"), and the abort reaches the transport', async () => {
    let aborted = false;
    const hang: HttpTransport = (req) =>
      new Promise((_, reject) => {
        req.signal.addEventListener('abort', () => {
          aborted = true;
          reject(new Error('aborted'));
        });
      });
    const e = await expectPromError(new PrometheusClient({ url: 'http://p', transport: hang, timeoutMs: 20 }).queryVector('up'));
    expect(e.kind).toBe('timeout');
    expect(e.query).toBe('up');
    expect(aborted).toBe(true);
  });

  it('distinguishes the caller\'s abort from a timeout', async () => {
    const hang: HttpTransport = (req) => new Promise((_, reject) => req.signal.addEventListener('abort', () => reject(new Error('x'))));
    const ac = new AbortController();
    const p = new PrometheusClient({ url: 'http://p', transport: hang, timeoutMs: 60_000 }).queryVector('up', { signal: ac.signal });
    ac.abort();
    expect((await expectPromError(p)).kind).toBe('aborted');
  });

  it('maps transport failures to kind "network" with the underlying cause in the message', async () => {
    const refused: HttpTransport = async () => {
      throw new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }) });
    };
    const e = await expectPromError(new PrometheusClient({ url: 'http://127.0.0.1:1', transport: refused }).queryVector('up'));
    expect(e.kind).toBe('network');
    expect(e.message).toContain('ECONNREFUSED');
  });

  it('rejects bad configuration before sending anything (kind "config")', () => {
    for (const opts of [
      { url: 'not a url' },
      { url: 'ftp://prom' },
      { url: 'http://user:pw@prom' },
      { url: 'http://prom/?x=1' },
      { url: 'http://prom', bearerToken: '' },
      { url: 'http://prom', bearerToken: 'a b' },
      { url: 'http://prom', bearerToken: 'a\r\nX-Injected: 1' },
      { url: 'http://prom', caPem: '-----BEGIN CERTIFICATE-----' },
    ]) {
      expect(catching(() => new PrometheusClient(opts)).kind).toBe('config');
    }
  });
});

describe('PrometheusClient over the default fetch transport (a local server on 127.0.0.1)', () => {
  let server: Server | undefined;
  afterEach(async () => {
    const s = server;
    server = undefined;
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  });

  async function serve(handler: (req: IncomingMessage, body: string) => { status: number; body: string | Buffer; headers?: Record<string, string> }) {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const out = handler(req, Buffer.concat(chunks).toString('utf8'));
        res.writeHead(out.status, { 'content-type': 'application/json', ...out.headers }).end(out.body);
      });
    });
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', () => r()));
    return `http://127.0.0.1:${(server?.address() as AddressInfo).port}`;
  }

  it('sends the form and the bearer token, and parses the answer', async () => {
    let seen: { method?: string; url?: string; auth?: string; body?: string } = {};
    const url = await serve((req, body) => {
      seen = { method: req.method, url: req.url, auth: req.headers.authorization, body };
      return { status: 200, body: vector([{ metric: { le: '+Inf' }, value: [1, '4'] }]) };
    });
    const r = await new PrometheusClient({ url, bearerToken: 's3cr3t' }).queryVector('x', { time: new Date(1000) });
    expect(r.samples[0]?.value).toBe(4);
    expect(seen.method).toBe('POST');
    expect(seen.url).toBe('/api/v1/query');
    expect(seen.auth).toBe('Bearer s3cr3t');
    expect(new URLSearchParams(seen.body).get('time')).toBe('1.000');
  });

  it('returns the Prometheus error envelope of a 422 as kind "api"', async () => {
    const url = await serve(() => ({ status: 422, body: JSON.stringify({ status: 'error', errorType: 'execution', error: 'many-to-many matching not allowed' }) }));
    const e = await expectPromError(new PrometheusClient({ url }).queryVector('a / b'));
    expect([e.kind, e.status, e.errorType]).toEqual(['api', 422, 'execution']);
  });

  it('does not follow redirects (a redirect could carry the token to another host)', async () => {
    const url = await serve(() => ({ status: 302, body: '', headers: { location: 'http://127.0.0.1:9/elsewhere' } }));
    const e = await expectPromError(new PrometheusClient({ url, bearerToken: 't' }).queryVector('x'));
    expect(e.kind).toBe('network');
  });

  it('caps the response size', async () => {
    const url = await serve(() => ({ status: 200, body: Buffer.alloc(64 * 1024, 0x20) }));
    const e = await expectPromError(new PrometheusClient({ url, maxResponseBytes: 1024 }).queryVector('x'));
    expect(e.kind).toBe('decode');
    expect(e.message).toContain('1024');
  });
});
