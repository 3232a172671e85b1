/**
 * The real router with DNS-discovered pools, in front of two real emulator servers, all on 127.0.0.1:
 * the names resolve through a local DNS server (test/support/dns-server.ts) to 127.0.0.1, each pool's port
 * is its emulator's. Shows: routing by size to the discovered backends, a pool emptied by NXDOMAIN (503,
 * still ready), a DNS outage keeping the backends, and a hot reload from DNS to a static list and back.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { synthesizeText } from '../../../src/common/tokens.js';
import { startEmulator, type RunningEmulator } from '../../../src/emulator/index.js';
import { startRouter, type RouterHandle } from '../../../src/router/server.js';
import { startDnsServer, type TestDnsServer } from '../../support/dns-server.js';
import { delay, until } from '../../support/wait.js';

const silent = pino({ level: 'silent' });
const SEARCH = ['demo.svc.cluster.local', 'svc.cluster.local', 'cluster.local'];


describe('router with DNS discovery → emulators', () => {
  let dns: TestDnsServer;
  let small: RunningEmulator;
  let big: RunningEmulator;
  let router: RouterHandle;
  let config: Record<string, unknown>;

  beforeAll(async () => {
    dns = await startDnsServer({
      'llama-a10g.demo.svc.cluster.local': { a: ['127.0.0.1'] },
      'llama-a100.demo.svc.cluster.local': { a: ['127.0.0.1'] },
    });
    small = await startEmulator({ gpu: 'A10G', speed: 50, logger: silent });
    big = await startEmulator({ gpu: 'A100-80GB', speed: 50, logger: silent });
    // The shape the operator publishes (routerConfig): relative names, the model-server port.
    config = {
      service: { namespace: 'demo', name: 'llama' },
      buckets: { inputEdges: [100, 2000], outputEdges: [50, 500] },
      split: [
        { input: 0, output: 0, weights: { a10g: 1 } },
        { input: 1, output: 1, weights: { a100: 1 } },
      ],
      pools: [
        { name: 'a10g', gpuType: 'A10G', dns: { name: 'llama-a10g.demo.svc', port: small.port, refreshMs: 100 } },
        { name: 'a100', gpuType: 'A100-80GB', dns: { name: 'llama-a100.demo.svc', port: big.port, refreshMs: 100 } },
      ],
    };
    router = await startRouter({ logger: silent, config, dns: { servers: [dns.address], search: SEARCH, ndots: 5, timeoutMs: 200, tries: 1 } });
  });
  afterAll(async () => {
    await router?.close({ graceMs: 1000 });
    await small?.close({ drainMs: 0 });
    await big?.close({ drainMs: 0 });
    await dns?.close();
  });

  const shortReq = () => ({ model: 'meta-llama/Llama-2-7b-hf', prompt: synthesizeText(40), max_tokens: 20 });
  const post = (body: unknown) => fetch(`${router.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  it('resolves each pool to its emulator and routes by size', async () => {
    expect(router.ready()).toBe(true);
    expect(router.backends()).toEqual({ a10g: [{ url: small.url, inflight: 0 }], a100: [{ url: big.url, inflight: 0 }] });
    const r1 = await post(shortReq());
    expect(r1.status).toBe(200);
    expect(r1.headers.get('x-melange-emulator')).toBe('A10G');
    expect(r1.headers.get('x-melange-pool')).toBe('a10g');
    await r1.arrayBuffer();
    const r2 = await post({ model: 'meta-llama/Llama-2-7b-hf', prompt: synthesizeText(1000), max_tokens: 300 });
    expect(r2.status).toBe(200);
    expect(r2.headers.get('x-melange-emulator')).toBe('A100-80GB');
    await r2.arrayBuffer();
    // Only the pools' names (with the search domains) were asked, and only of the local server.
    expect(new Set(dns.queries.map((q) => q.name.toLowerCase().replace(/^llama-a(10g|100)\.demo\.svc\./, '')))).toEqual(new Set(SEARCH));
  });

  it('NXDOMAIN empties the pool (503 naming it, the router stays ready); the name coming back restores it', async () => {
    dns.delete('llama-a10g.demo.svc.cluster.local');
    await until(() => (router.backends().a10g ?? []).length === 0, 'the a10g pool to empty');
    expect(router.ready()).toBe(true);
    const r = await post(shortReq());
    expect(r.status).toBe(503);
    expect(((await r.json()) as { error: { message: string } }).error.message).toContain('pools with weight: a10g');
    const rz = (await (await fetch(`${router.url}/readyz`)).json()) as { ready: boolean; pools: Record<string, number> };
    expect(rz).toMatchObject({ ready: true, pools: { a10g: 0, a100: 1 } });
    dns.set('llama-a10g.demo.svc.cluster.local', { a: ['127.0.0.1'] });
    await until(() => (router.backends().a10g ?? []).length === 1, 'the a10g pool back');
    const again = await post(shortReq());
    expect(again.status).toBe(200);
    await again.arrayBuffer();
  });

  it('a DNS outage keeps the known backends serving', async () => {
    await dns.stop();
    await delay(400); // several refresh rounds (100 ms) fail
    expect(router.backends().a10g).toEqual([{ url: small.url, inflight: 0 }]);
    expect(router.ready()).toBe(true);
    const r = await post(shortReq());
    expect(r.status).toBe(200);
    await r.arrayBuffer();
    await dns.start();
  });

  it('hot reload: a pool switches from DNS to a static list and back', async () => {
    const pools = config.pools as Array<Record<string, unknown>>;
    const staticPools = [{ name: 'a10g', gpuType: 'A10G', backends: [big.url] }, pools[1]];
    expect((await router.applyConfig({ ...config, pools: staticPools })).ok).toBe(true);
    expect(router.backends().a10g).toEqual([{ url: big.url, inflight: 0 }]);
    expect((await router.applyConfig(config)).ok).toBe(true);
    expect(router.backends().a10g).toEqual([{ url: small.url, inflight: 0 }]);
  });
});
