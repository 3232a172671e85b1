import { describe, expect, it } from 'vitest';
import { diffConfig, parseConfigText, validateConfig, type RouterConfig } from '../../../src/router/config.js';

const base = {
  service: { namespace: 'ns', name: 'chat' },
  buckets: { inputEdges: [100, 1000], outputEdges: [50, 500] },
  split: [{ input: 0, output: 0, weights: { l4: 1 } }],
  pools: [
    { name: 'l4', gpuType: 'L4', backends: ['http://127.0.0.1:9001'] },
    { name: 'a100', gpuType: 'A100-80GB', discovery: { namespace: 'ns', service: 'chat-a100' } },
  ],
};
const ok = (raw: unknown): RouterConfig => {
  const r = validateConfig(raw);
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.config;
};
const errors = (raw: unknown) => {
  const r = validateConfig(raw);
  return r.ok ? [] : r.errors;
};

describe('router config schema', () => {
  it('accepts the documented shape and fills routing defaults', () => {
    const c = ok(base);
    expect(c.routing).toEqual({ strategy: 'smooth', defaultOutputTokens: 256, outputMeanWindow: 1000, maxAttempts: 3, connectTimeoutMs: 3000, ejectMs: 5000 });
  });
  it('parses YAML and JSON text alike', () => {
    const yaml = `service: {namespace: ns, name: chat}\nbuckets:\n  inputEdges: [100]\n  outputEdges: [50]\npools:\n  - name: l4\n    gpuType: L4\n    backends: ["http://127.0.0.1:1"]\n`;
    expect(parseConfigText(yaml).ok).toBe(true);
    expect(parseConfigText(JSON.stringify(base)).ok).toBe(true);
    expect(parseConfigText('')).toEqual({ ok: false, errors: ['(root): the file is empty'] });
    expect(parseConfigText('{"a": ').ok).toBe(false);
  });
  it('reports each problem with its path', () => {
    expect(errors({ ...base, split: [{ input: 5, output: 0, weights: { l4: 1, h100: 1 } }] })).toEqual([
      'split[0].input: no input range 5 (buckets.inputEdges has 2)',
      'split[0].weights.h100: unknown pool "h100"',
    ]);
    expect(errors({ ...base, split: [base.split[0], base.split[0]] })).toEqual(['split[1]: duplicate split entry for bucket (0, 0)']);
    expect(errors({ ...base, pools: [base.pools[0], base.pools[0]] })).toContain('pools[1].name: duplicate pool "l4"');
    expect(errors({ ...base, pools: [{ name: 'x', gpuType: 'L4' }] })[0]).toBe('pools[0]: set exactly one of backends, discovery or dns (none is set)');
    expect(errors({ ...base, pools: [{ name: 'x', gpuType: 'L4', backends: ['ftp://a'] }] })[0]).toContain('pools[0].backends[0]: must be an http(s) base URL');
    expect(errors({ ...base, buckets: { inputEdges: [5, 5], outputEdges: [1] } })).toContain('buckets.inputEdges: must be strictly increasing');
    expect(errors({ ...base, split: [{ input: 0, output: 0, weights: { l4: -1 } }] })[0]).toMatch(/^split\[0\]\.weights\.l4: /);
  });
});

describe('router config schema: DNS discovery', () => {
  const dnsPool = (dns: unknown, extra: Record<string, unknown> = {}) => ({ ...base, split: [], pools: [{ name: 'l4', gpuType: 'L4', dns, ...extra }] });
  it('accepts dns: {name, port} with refreshMs defaulting to 5000', () => {
    const c = ok(dnsPool({ name: 'chat-l4.ns.svc', port: 8000 }));
    expect(c.pools[0]?.dns).toEqual({ name: 'chat-l4.ns.svc', port: 8000, refreshMs: 5000 });
    expect(ok(dnsPool({ name: 'chat-l4.ns.svc.cluster.local.', port: 1, refreshMs: 250 })).pools[0]?.dns?.refreshMs).toBe(250);
  });
  it('exactly one kind per pool, the error naming the extra field', () => {
    expect(errors(dnsPool({ name: 'a.ns.svc', port: 8000 }, { backends: ['http://127.0.0.1:1'] }))).toEqual([
      'pools[0].dns: set exactly one of backends, discovery or dns; this pool also has backends',
    ]);
    expect(errors(dnsPool({ name: 'a.ns.svc', port: 8000 }, { discovery: { namespace: 'ns', service: 'a' } }))).toEqual([
      'pools[0].dns: set exactly one of backends, discovery or dns; this pool also has discovery',
    ]);
  });
  it('names the bad field', () => {
    expect(errors(dnsPool({ name: 'a.ns.svc' }))).toEqual([expect.stringMatching(/^pools\[0\]\.dns\.port: /)]);
    expect(errors(dnsPool({ name: 'a.ns.svc', port: 70000 }))).toEqual([expect.stringMatching(/^pools\[0\]\.dns\.port: /)]);
    expect(errors(dnsPool({ name: 'a_b..svc', port: 80 }))).toEqual([expect.stringMatching(/^pools\[0\]\.dns\.name: must be a DNS name/)]);
    expect(errors(dnsPool({ name: '-a.svc', port: 80 }))).toEqual([expect.stringMatching(/^pools\[0\]\.dns\.name: must be a DNS name/)]);
    expect(errors(dnsPool({ name: `${'a'.repeat(64)}.svc`, port: 80 }))).toEqual([expect.stringMatching(/^pools\[0\]\.dns\.name: must be a DNS name/)]);
    expect(errors(dnsPool({ name: '10.0.0.1', port: 80 }))).toEqual(['pools[0].dns.name: must be a host name, not an IP address (use backends for fixed addresses)']);
    expect(errors(dnsPool({ name: 'a.ns.svc', port: 80, refreshMs: 10 }))).toEqual([expect.stringMatching(/^pools\[0\]\.dns\.refreshMs: /)]);
  });
  it('diffConfig: a changed DNS target is a changed source', () => {
    const a = ok(dnsPool({ name: 'a.ns.svc', port: 8000 }));
    expect(diffConfig(a, ok(dnsPool({ name: 'a.ns.svc', port: 8000, refreshMs: 5000 }))).unchanged).toBe(true);
    expect(diffConfig(a, ok(dnsPool({ name: 'a.ns.svc', port: 8001 }))).poolSourceChanged).toEqual(['l4']);
    expect(diffConfig(a, ok({ ...base, split: [], pools: [{ name: 'l4', gpuType: 'L4', backends: [] }] })).poolSourceChanged).toEqual(['l4']);
  });
});

describe('diffConfig', () => {
  const a = ok(base);
  it('identical configs are unchanged; weight scaling is not a change', () => {
    expect(diffConfig(a, ok(base)).unchanged).toBe(true);
    expect(diffConfig(a, ok({ ...base, split: [{ input: 0, output: 0, weights: { l4: 5 } }] })).unchanged).toBe(true);
  });
  it('names changed buckets, pools and sources', () => {
    const b = ok({
      ...base,
      split: [{ input: 0, output: 0, weights: { l4: 1, a100: 1 } }, { input: 1, output: 1, weights: { a100: 1 } }],
      pools: [
        { name: 'l4', gpuType: 'L4', backends: ['http://127.0.0.1:9002'] },
        { name: 'a100', gpuType: 'A100-80GB', discovery: { namespace: 'ns', service: 'chat-a100' } },
        { name: 'h100', gpuType: 'H100', backends: ['http://127.0.0.1:9003'] },
      ],
    });
    const d = diffConfig(a, b);
    expect(d).toMatchObject({ unchanged: false, splitChanged: ['0/0', '1/1'], poolsAdded: ['h100'], poolsRemoved: [], poolSourceChanged: ['l4'], inputEdgesChanged: false });
    const c = ok({ ...base, buckets: { inputEdges: [100, 2000], outputEdges: [50, 500] }, routing: { strategy: 'random' } });
    expect(diffConfig(a, c)).toMatchObject({ inputEdgesChanged: true, outputEdgesChanged: false, routingChanged: true });
  });
});
