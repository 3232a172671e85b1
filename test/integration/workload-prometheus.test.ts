/**
 * The workload source against the REAL Prometheus of the test harness (scraping every 1 s through file_sd):
 * tiny prom-client exporters on 127.0.0.1 expose the router's counter and vLLM's histograms, growing at
 * known rates with a known size distribution; the estimate must recover them.
 *
 * The exporters compute their counters at scrape time from the elapsed time (value = rate × elapsed, capped
 * at MAX_RUN_MS so nothing grows unboundedly), so the series are exactly linear — no timers, no drift.
 * Every series carries a per-run namespace/model label, so other tests sharing this Prometheus cannot
 * interfere.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../support/env.js';
import { makeClients } from '../support/kube.js';
import { useTestNamespace } from '../support/namespace.js';
import { createPki } from '../support/pki.js';
import { freePort } from '../support/ports.js';
import { activeTargets, queryInstant, removeScrapeTargets, waitForQuery, writeScrapeTargets } from '../support/prometheus.js';
import { addRouterRequestsCounter, type RouterSeries, startExporter, type TestExporter } from '../support/test-exporter.js';
import { waitFor } from '../support/wait.js';
import { PrometheusClient } from '../../src/workload/prometheus-client.js';
import { labelMatcher, selector } from '../../src/workload/promql.js';
import { prometheusCredentials } from '../../src/workload/secrets.js';
import { PrometheusWorkloadSource, type WorkloadObservation } from '../../src/workload/source.js';
import { makeService, matrixSum } from '../unit/workload/fixtures.js';

const RUN = randomBytes(3).toString('hex');
const NAMESPACE = `wl-${RUN}`;
const MAX_RUN_MS = 180_000;
const INPUT_EDGES = [100, 1000, 4000];
const OUTPUT_EDGES = [100, 500];

// The router's truth: 20 req/s with this joint distribution, split over two pools; plus 0.2 req/s with an
// input_le that is not one of the service's edges, and a decoy service that must not be counted.
const ROUTER_RATE = 20;
const JOINT = [
  [0.3, 0.1],
  [0.25, 0.15],
  [0.05, 0.15],
];
const UNKNOWN_RATE = 0.2;

// vLLM's truth: 10 req/s; prompts 60% × 80 tokens, 40% × 3000; outputs 70% × 50 tokens, 30% × 400.
const VLLM_RATE = 10;
const VLLM_MODEL = `test/model-${RUN}`;
const promptTokens = (k: number) => (k % 10 < 6 ? 80 : 3000);
const generationTokens = (k: number) => ((k * 3) % 10 < 7 ? 50 : 400);
const VLLM_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

const WINDOW = '10s';
const sourceOptions = { shortWindow: '5s', minRequestsForDistribution: 50, timeoutMs: 5_000 };

const routerService = (name = 'chat') =>
  makeService({
    name,
    namespace: NAMESPACE,
    model: `router-model-${RUN}`,
    inputEdges: INPUT_EDGES,
    outputEdges: OUTPUT_EDGES,
    workload: { source: 'Prometheus', prometheus: { url: testEnv().prometheusUrl, window: WINDOW } },
  });

function routerRegistry(t0: number): Registry {
  const series: RouterSeries[] = [];
  JOINT.forEach((row, i) =>
    row.forEach((w, j) => {
      for (const pool of ['a10g', 'a100']) {
        series.push({
          labels: { namespace: NAMESPACE, service: 'chat', input_le: String(INPUT_EDGES[i]), output_le: String(OUTPUT_EDGES[j]), pool },
          rate: (ROUTER_RATE * w) / 2,
        });
      }
    }),
  );
  series.push({ labels: { namespace: NAMESPACE, service: 'chat', input_le: '77', output_le: '100', pool: 'a10g' }, rate: UNKNOWN_RATE });
  series.push({ labels: { namespace: NAMESPACE, service: 'decoy', input_le: '4000', output_le: '500', pool: 'a100' }, rate: 50 });
  const registry = new Registry();
  addRouterRequestsCounter(registry, series, () => Math.min(Date.now() - t0, MAX_RUN_MS) / 1000);
  return registry;
}

function vllmRegistry(t0: number): Registry {
  const registry = new Registry();
  const requestsSoFar = () => Math.floor((Math.min(Date.now() - t0, MAX_RUN_MS) / 1000) * VLLM_RATE);
  const labels = { model_name: VLLM_MODEL };
  // Each metric catches up to the same deterministic request sequence on every scrape.
  const catchUp = (state: { n: number }, each: (k: number) => void) => {
    const n = requestsSoFar();
    for (; state.n < n; state.n++) each(state.n);
  };
  const promptState = { n: 0 };
  const genState = { n: 0 };
  const successState = { n: 0 };
  new Histogram({
    name: 'vllm:request_prompt_tokens',
    help: 'Number of prefill tokens processed (test exporter)',
    labelNames: ['model_name'] as const,
    buckets: VLLM_BUCKETS,
    registers: [registry],
    collect() {
      catchUp(promptState, (k) => this.observe(labels, promptTokens(k)));
    },
  }).zero(labels);
  new Histogram({
    name: 'vllm:request_generation_tokens',
    help: 'Number of generation tokens processed (test exporter)',
    labelNames: ['model_name'] as const,
    buckets: VLLM_BUCKETS,
    registers: [registry],
    collect() {
      catchUp(genState, (k) => this.observe(labels, generationTokens(k)));
    },
  }).zero(labels);
  new Counter({
    name: 'vllm:request_success_total',
    help: 'Finished requests (test exporter)',
    labelNames: ['model_name', 'finished_reason'] as const,
    registers: [registry],
    collect() {
      catchUp(successState, (k) => this.inc({ ...labels, finished_reason: k % 4 === 0 ? 'length' : 'stop' }));
    },
  });
  return registry;
}

async function observe(svc = routerService(), opts: ConstructorParameters<typeof PrometheusWorkloadSource>[0] = {}): Promise<WorkloadObservation> {
  return new PrometheusWorkloadSource({ ...sourceOptions, ...opts }).observe(svc, new Date());
}

const ok = (o: WorkloadObservation) => {
  if (!o.ok) throw new Error(`expected an observation, got ${o.reason}: ${o.message}`);
  return o;
};

describe('workload from a real Prometheus', () => {
  const cleanups: (() => Promise<void>)[] = [];
  let promUrl = '';
  let fileSdDir = '';
  const sdRouter = `workload-router-${RUN}`;
  const sdVllm = `workload-vllm-${RUN}`;

  beforeAll(async () => {
    ({ prometheusUrl: promUrl, fileSdDir } = testEnv());
    const t0 = Date.now();
    const router: TestExporter = await startExporter(routerRegistry(t0));
    cleanups.push(() => router.close());
    const vllm: TestExporter = await startExporter(vllmRegistry(t0));
    cleanups.push(() => vllm.close());
    await writeScrapeTargets(fileSdDir, sdRouter, [{ targets: [router.target], labels: { job: 'workload-router' } }]);
    cleanups.push(() => removeScrapeTargets(fileSdDir, sdRouter));
    await writeScrapeTargets(fileSdDir, sdVllm, [{ targets: [vllm.target], labels: { job: 'workload-vllm' } }]);
    cleanups.push(() => removeScrapeTargets(fileSdDir, sdVllm));

    await waitFor(
      async () => {
        const t = await activeTargets(promUrl);
        return [router.target, vllm.target].every((x) => t.some((a) => a.labels.instance === x && a.health === 'up'));
      },
      { what: 'both exporters scraped', timeoutMs: 30_000, intervalMs: 250 },
    );
    // Most of the 10 s window must be covered by samples (1 s scrape interval) before estimating.
    const enough = (sel: string) =>
      waitForQuery(promUrl, `count_over_time(${sel}[${WINDOW}])`, (s) => s.length > 0 && s.every((x) => x.value >= 8), 60_000);
    await enough(`melange_router_requests_total{namespace="${NAMESPACE}",service="chat",input_le="100",output_le="100",pool="a10g"}`);
    await enough(`vllm:request_prompt_tokens_count{model_name="${VLLM_MODEL}"}`);
  });

  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  });

  it('recovers the router\'s rate and joint distribution (unknown labels counted and reported, decoy ignored)', async () => {
    const o = ok(await observe());
    expect(o.source).toBe('router');
    expect(o.sizeAware).toBe(true);
    expect(o.window).toBe(WINDOW);
    const truth = ROUTER_RATE + UNKNOWN_RATE;
    expect(o.requestsPerSecond).toBeGreaterThan(truth * 0.9);
    expect(o.requestsPerSecond).toBeLessThan(truth * 1.1);
    expect(matrixSum(o.distribution)).toBeCloseTo(1, 9);
    o.distribution.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - (JOINT[i]?.[j] ?? NaN))).toBeLessThan(0.01)));
    // A 0.2 req/s series over a 10 s window is only a couple of requests: Prometheus's rate() edge
    // extrapolation and scrape jitter on a loaded machine move it by up to ~25% (measured 0.154 once), so
    // the bound checks "counted once, not dropped or doubled" rather than precision.
    expect(o.details?.unknownRate).toBeGreaterThan(UNKNOWN_RATE * 0.6);
    expect(o.details?.unknownRate).toBeLessThan(UNKNOWN_RATE * 1.4);
    expect(o.warnings.join(' ')).toContain('input_le="77"');
    expect(o.details?.lastSampleAgeMs).toBeLessThan(5_000);
  });

  it('falls back to vLLM histograms when the service has no router series (sizeAware: false)', async () => {
    const svc = makeService({
      name: 'no-router',
      namespace: NAMESPACE,
      model: VLLM_MODEL,
      inputEdges: INPUT_EDGES,
      outputEdges: OUTPUT_EDGES,
      workload: { source: 'Prometheus', prometheus: { url: promUrl, window: WINDOW } },
    });
    const o = ok(await observe(svc));
    expect(o.source).toBe('vllm-histograms');
    expect(o.sizeAware).toBe(false);
    expect(o.warnings.join(' ')).toContain('independent');
    expect(o.warnings.join(' ')).toContain('no router series');
    expect(o.requestsPerSecond).toBeGreaterThan(VLLM_RATE * 0.9);
    expect(o.requestsPerSecond).toBeLessThan(VLLM_RATE * 1.1);
    // Prompts: 80 → first range, 3000 → beyond 1000 → last range; outputs: 50 → first, 400 → second.
    const expected = [
      [0.6 * 0.7, 0.6 * 0.3],
      [0, 0],
      [0.4 * 0.7, 0.4 * 0.3],
    ];
    o.distribution.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - (expected[i]?.[j] ?? NaN))).toBeLessThan(0.03)));
  });

  it('no series at all → NoData', async () => {
    const svc = makeService({
      name: 'nothing',
      namespace: NAMESPACE,
      model: `absent-${RUN}`,
      workload: { source: 'Prometheus', prometheus: { url: promUrl, window: WINDOW } },
    });
    const o = await observe(svc);
    expect(o).toMatchObject({ ok: false, reason: 'NoData' });
  });

  it('escapes label values: a value with quotes, backslashes and a newline matches exactly; an injection matches nothing', async () => {
    const registry = new Registry();
    const metric = `melange_test_escape_${RUN}`;
    const g = new Gauge({ name: metric, help: 'escape test', labelNames: ['v'] as const, registers: [registry] });
    const tricky = 'a"b\\c\nd} or vector(1)';
    g.set({ v: tricky }, 1);
    g.set({ v: 'x' }, 2);
    const exporter = await startExporter(registry);
    cleanups.push(() => exporter.close());
    const sd = `workload-escape-${RUN}`;
    await writeScrapeTargets(fileSdDir, sd, [{ targets: [exporter.target], labels: { job: 'workload-escape' } }]);
    cleanups.push(() => removeScrapeTargets(fileSdDir, sd));
    await waitForQuery(promUrl, metric, (s) => s.length === 2, 30_000);

    const client = new PrometheusClient({ url: promUrl, timeoutMs: 5_000 });
    const hit = await client.queryVector(selector(metric, [labelMatcher('v', tricky)]).text, { time: new Date() });
    expect(hit.samples.map((s) => [s.labels.v, s.value])).toEqual([[tricky, 1]]);
    for (const evil of ['x"} or vector(1) or up{a="', 'x"}) or vector(1) #', 'x\\"} or vector(1)']) {
      const r = await client.queryVector(`sum(${selector(metric, [labelMatcher('v', evil)]).text})`, { time: new Date() });
      expect(r.samples).toEqual([]);
    }
  });

  it('a closed port on 127.0.0.1 → QueryFailed (network), promptly', async () => {
    const port = await freePort();
    const svc = makeService({ workload: { source: 'Prometheus', prometheus: { url: `http://127.0.0.1:${port}`, window: WINDOW } } });
    const o = await observe(svc, { timeoutMs: 2_000 });
    expect(o).toMatchObject({ ok: false, reason: 'QueryFailed' });
    if (!o.ok) expect(o.message).toContain('ECONNREFUSED');
  });

  it('a server that accepts and never answers → QueryFailed (timeout) once the deadline passes', async () => {
    const sockets = new Set<Socket>();
    const black: NetServer = createNetServer((s) => {
      sockets.add(s);
      s.on('error', () => {});
    });
    await new Promise<void>((r) => black.listen(0, '127.0.0.1', () => r()));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          black.close(() => r());
        }),
    );
    const port = (black.address() as AddressInfo).port;
    const svc = makeService({ workload: { source: 'Prometheus', prometheus: { url: `http://127.0.0.1:${port}`, window: WINDOW } } });
    const started = Date.now();
    const o = await observe(svc, { timeoutMs: 300 });
    const elapsed = Date.now() - started;
    expect(o).toMatchObject({ ok: false, reason: 'QueryFailed' });
    if (!o.ok) expect(o.message).toContain('timed out after 300 ms');
    expect(elapsed).toBeLessThan(10_000); // generous bound: it must not hang, however slow the machine
  });

  describe('TLS with a custom CA and a bearer token, both from real Secrets', () => {
    const ns = useTestNamespace('workload-tls');
    let proxy: HttpsServer | undefined;
    let proxyUrl = '';
    let caPem = '';
    let pkiDir = '';
    const token = `tok-${randomBytes(8).toString('hex')}`;

    beforeAll(async () => {
      pkiDir = join(tmpdir(), `melange-workload-pki-${RUN}`);
      const pki = await createPki(pkiDir);
      caPem = await readFile(pki.caCrt, 'utf8');
      // An auth proxy in front of the real Prometheus (like kube-rbac-proxy): TLS + bearer token.
      proxy = createHttpsServer({ cert: await readFile(pki.componentsCrt), key: await readFile(pki.componentsKey) }, (req, res) => {
        if (req.headers.authorization !== `Bearer ${token}`) {
          res.writeHead(401, { 'content-type': 'text/plain' }).end('Unauthorized');
          return;
        }
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          fetch(new URL(req.url ?? '/', promUrl), {
            method: req.method ?? 'GET',
            headers: { 'content-type': req.headers['content-type'] ?? 'application/x-www-form-urlencoded' },
            ...(req.method === 'POST' ? { body: Buffer.concat(chunks).toString('utf8') } : {}),
          })
            .then(async (r) => res.writeHead(r.status, { 'content-type': 'application/json' }).end(await r.text()))
            .catch((e: unknown) => res.writeHead(502).end(String(e)));
        });
      });
      await new Promise<void>((r) => proxy?.listen(0, '127.0.0.1', () => r()));
      proxyUrl = `https://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      const { core } = makeClients(ns.kc);
      await core.createNamespacedSecret({
        namespace: ns.name,
        body: { metadata: { name: 'prom-token' }, stringData: { token: `${token}\n` } },
      });
      await core.createNamespacedSecret({ namespace: ns.name, body: { metadata: { name: 'prom-ca' }, stringData: { 'ca.crt': caPem } } });
    });

    afterAll(async () => {
      const p = proxy;
      if (p) {
        p.closeAllConnections();
        await new Promise<void>((r) => p.close(() => r()));
      }
      if (pkiDir) await rm(pkiDir, { recursive: true, force: true });
    });

    const tlsService = () =>
      makeService({
        name: 'chat',
        namespace: ns.name,
        inputEdges: INPUT_EDGES,
        outputEdges: OUTPUT_EDGES,
        workload: {
          source: 'Prometheus',
          prometheus: {
            url: proxyUrl,
            window: WINDOW,
            bearerTokenSecretRef: { name: 'prom-token', key: 'token' },
            caSecretRef: { name: 'prom-ca', key: 'ca.crt' },
          },
        },
      });
    // The router series live in NAMESPACE; the LLMService object lives in the test namespace.
    const routerMatchers = () => [
      { name: 'namespace', value: NAMESPACE },
      { name: 'service', value: 'chat' },
    ];

    it('resolves the Secret refs and queries through the TLS proxy', async () => {
      const { core } = makeClients(ns.kc);
      const creds = await prometheusCredentials(core, tlsService());
      expect(creds).toEqual({ bearerToken: token, caPem });
      const o = ok(await observe(tlsService(), { credentials: (svc) => prometheusCredentials(core, svc), routerMatchers }));
      expect(o.source).toBe('router');
      expect(o.requestsPerSecond).toBeGreaterThan((ROUTER_RATE + UNKNOWN_RATE) * 0.9);
    });

    it('a wrong token → QueryFailed (HTTP 401); no CA → QueryFailed (certificate not trusted)', async () => {
      const wrong = await observe(tlsService(), { credentials: async () => ({ bearerToken: 'nope', caPem }), routerMatchers });
      expect(wrong).toMatchObject({ ok: false, reason: 'QueryFailed' });
      if (!wrong.ok) expect(wrong.message).toContain('HTTP 401');
      const noCa = await observe(tlsService(), { credentials: async () => ({ bearerToken: token }), routerMatchers });
      expect(noCa).toMatchObject({ ok: false, reason: 'QueryFailed' });
      if (!noCa.ok) expect(noCa.message).toMatch(/network: .*certificate/i);
    });
  });

  it('when the router stops being scraped, the estimate is Stale — never a drop to zero', async () => {
    await removeScrapeTargets(fileSdDir, sdRouter);
    const sel = `melange_router_requests_total{namespace="${NAMESPACE}",service="chat"}`;
    // Target gone → Prometheus writes staleness markers → the instant selector is empty, the window is not.
    await waitForQuery(promUrl, `count(${sel})`, (s) => s.length === 0, 30_000);
    expect((await queryInstant(promUrl, `count(count_over_time(${sel}[${WINDOW}]))`)).length).toBe(1);
    const o = await observe();
    expect(o).toMatchObject({ ok: false, reason: 'Stale', source: 'router' });
  });
});
