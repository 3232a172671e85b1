/**
 * The SLO guard: the pure decision, its configuration errors, and the router in front of two real emulators on
 * 127.0.0.1 moving a small-output / long-prompt request off the slow GPU type the split chose.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aloneTpotMillis, type LatencyModel } from '../../../src/api/latency.js';
import { synthesizeText } from '../../../src/common/tokens.js';
import { startEmulator, type RunningEmulator } from '../../../src/emulator/index.js';
import { validateConfig, type RouterConfigInput } from '../../../src/router/config.js';
import { startRouter, type RouterHandle } from '../../../src/router/server.js';
import { guardPool, poolLatencyModels } from '../../../src/router/slo-guard.js';

// Coefficients of the shape `melangectl profile` fits to the emulator's L4 and H100 (docs/profiling.md).
const L4: LatencyModel = { overheadMillis: 30, prefillMillisPerToken: 0.462, decodeStepMillis: 53, decodeMillisPerContextToken: 0.00333 };
const A100: LatencyModel = { overheadMillis: 29.7, prefillMillisPerToken: 0.182, decodeStepMillis: 14.6, decodeMillisPerContextToken: 0.000491 };
const H100: LatencyModel = { overheadMillis: 29.6, prefillMillisPerToken: 0.067, decodeStepMillis: 12, decodeMillisPerContextToken: 0.000299 };
const models = new Map([['l4', L4], ['a100', A100], ['h100', H100]]);
const all = () => true;
const guard = { tpotMillis: 120, threshold: 0.5 };

describe('guardPool (pure)', () => {
  it('keeps the split\'s pick when an idle replica needs at most threshold x SLO', () => {
    // 40-token prompt, 200-token answer: ~53 ms per token on the L4, under 60
    expect(aloneTpotMillis(L4, 40, 200)).toBeLessThan(60);
    expect(guardPool({ picked: 'l4', input: 40, output: 200, models, eligible: all, guard })).toEqual({ pool: 'l4' });
  });

  it('moves a request that would need more to the pool where it is predicted fastest', () => {
    // 900-token prompt, 3-token answer: the prefill carried by 3 tokens
    expect(aloneTpotMillis(L4, 900, 3)).toBeGreaterThan(120);
    expect(guardPool({ picked: 'l4', input: 900, output: 3, models, eligible: all, guard })).toEqual({ pool: 'h100', redirectedFrom: 'l4' });
  });

  it('only among eligible pools, and never to a slower one', () => {
    const noH100 = (p: string) => p !== 'h100';
    expect(guardPool({ picked: 'l4', input: 900, output: 3, models, eligible: noH100, guard })).toEqual({ pool: 'a100', redirectedFrom: 'l4' });
    // already on the fastest pool: stays, even when predicted to miss
    expect(guardPool({ picked: 'h100', input: 15000, output: 1, models, eligible: all, guard })).toEqual({ pool: 'h100' });
    // no eligible alternative
    expect(guardPool({ picked: 'l4', input: 900, output: 3, models, eligible: (p) => p === 'l4', guard })).toEqual({ pool: 'l4' });
  });

  it('moves a request predicted to miss everywhere to where it is fastest (its best chance)', () => {
    expect(aloneTpotMillis(H100, 12000, 1)).toBeGreaterThan(guard.tpotMillis);
    expect(guardPool({ picked: 'a100', input: 12000, output: 1, models, eligible: all, guard })).toEqual({ pool: 'h100', redirectedFrom: 'a100' });
  });

  it('does nothing without a model for the picked pool or with fewer than two models', () => {
    expect(guardPool({ picked: 'l40s', input: 900, output: 3, models, eligible: all, guard })).toEqual({ pool: 'l40s' });
    expect(guardPool({ picked: 'l4', input: 900, output: 3, models: new Map([['l4', L4]]), eligible: all, guard })).toEqual({ pool: 'l4' });
  });

  it('a threshold of 1 moves only requests that miss even idle; equally fast pools are chosen by name', () => {
    const strict = { tpotMillis: 120, threshold: 1 };
    expect(aloneTpotMillis(L4, 300, 10)).toBeGreaterThan(60);
    expect(aloneTpotMillis(L4, 300, 10)).toBeLessThan(120);
    expect(guardPool({ picked: 'l4', input: 300, output: 10, models, eligible: all, guard: strict })).toEqual({ pool: 'l4' });
    const twins = new Map([['l4', L4], ['zeta', H100], ['alpha', H100]]);
    expect(guardPool({ picked: 'l4', input: 900, output: 3, models: twins, eligible: all, guard })).toEqual({ pool: 'alpha', redirectedFrom: 'l4' });
  });

  it('poolLatencyModels keeps only pools with a model', () => {
    expect([...poolLatencyModels([{ name: 'a', latency: L4 }, { name: 'b' }]).keys()]).toEqual(['a']);
  });
});

describe('sloGuard / latency configuration', () => {
  const base = (over: Partial<RouterConfigInput> = {}): RouterConfigInput => ({
    service: { namespace: 'demo', name: 'llama' },
    buckets: { inputEdges: [1000], outputEdges: [250] },
    pools: [{ name: 'l4', gpuType: 'L4', backends: ['http://127.0.0.1:1'], latency: L4 }],
    ...over,
  });

  it('defaults the threshold to 0.5 and the context term to 0', () => {
    const r = validateConfig(base({ routing: { sloGuard: { tpotMillis: 120 } }, pools: [{ name: 'l4', gpuType: 'L4', backends: ['http://127.0.0.1:1'], latency: { overheadMillis: 1, prefillMillisPerToken: 0.1, decodeStepMillis: 10 } }] }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.routing.sloGuard).toEqual({ tpotMillis: 120, threshold: 0.5 });
    expect(r.config.pools[0]!.latency?.decodeMillisPerContextToken).toBe(0);
  });

  it('names the field and the reason', () => {
    const r1 = validateConfig(base({ routing: { sloGuard: { tpotMillis: 120, threshold: 0 } } }));
    expect(r1.ok).toBe(false);
    if (!r1.ok) expect(r1.errors.join('\n')).toMatch(/^routing\.sloGuard\.threshold: .*>0/m);
    const r2 = validateConfig(base({ pools: [{ name: 'l4', gpuType: 'L4', backends: ['http://127.0.0.1:1'], latency: { ...L4, prefillMillisPerToken: -1 } }] }));
    expect(r2.ok).toBe(false);
    if (!r2.ok) expect(r2.errors.join('\n')).toMatch(/^pools\[0\]\.latency\.prefillMillisPerToken: /m);
    const r3 = validateConfig(base({ routing: { sloGuard: { tpotMillis: 0.5 } } }));
    expect(r3.ok).toBe(false);
    if (!r3.ok) expect(r3.errors.join('\n')).toMatch(/^routing\.sloGuard\.tpotMillis: /m);
  });
});

describe('router with the SLO guard in front of two emulators', () => {
  const silent = pino({ level: 'silent' });
  let l4: RunningEmulator;
  let h100: RunningEmulator;
  let router: RouterHandle;
  const config = (sloGuard: boolean): RouterConfigInput => ({
    service: { namespace: 'demo', name: 'llama' },
    buckets: { inputEdges: [1000], outputEdges: [250] },
    // the solver put the whole bucket on the L4
    split: [{ input: 0, output: 0, weights: { l4: 1 } }],
    pools: [
      { name: 'l4', gpuType: 'L4', backends: [l4.url], latency: L4 },
      { name: 'h100', gpuType: 'H100-80GB', backends: [h100.url], latency: H100 },
    ],
    routing: sloGuard ? { sloGuard: { tpotMillis: 120 } } : {},
  });
  const send = async (promptTokens: number, maxTokens: number) => {
    const res = await fetch(`${router.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'meta-llama/Llama-2-7b-hf', prompt: synthesizeText(promptTokens), max_tokens: maxTokens }),
    });
    await res.arrayBuffer();
    return { status: res.status, pool: res.headers.get('x-melange-pool'), emulator: res.headers.get('x-melange-emulator') };
  };
  const redirects = async () => {
    const text = await (await fetch(router.metricsUrl)).text();
    const m = /melange_router_slo_guard_redirects_total\{namespace="demo",service="llama",from_pool="l4",to_pool="h100"\} (\d+)/.exec(text);
    return m ? Number(m[1]) : 0;
  };

  beforeAll(async () => {
    l4 = await startEmulator({ gpu: 'L4', speed: 50, logger: silent });
    h100 = await startEmulator({ gpu: 'H100-80GB', speed: 50, logger: silent });
    router = await startRouter({ logger: silent, config: config(true) });
  });
  afterAll(async () => {
    await router?.close({ graceMs: 1000 });
    await l4?.close({ drainMs: 0 });
    await h100?.close({ drainMs: 0 });
  });

  it('keeps requests the L4 can serve there and moves the ones it cannot; off when the config drops it', async () => {
    expect(await send(40, 200)).toEqual({ status: 200, pool: 'l4', emulator: 'L4' });
    expect(await redirects()).toBe(0);
    expect(await send(900, 3)).toEqual({ status: 200, pool: 'h100', emulator: 'H100-80GB' });
    expect(await redirects()).toBe(1);

    const r = await router.applyConfig(config(false));
    expect(r.ok).toBe(true);
    expect(await send(900, 3)).toEqual({ status: 200, pool: 'l4', emulator: 'L4' });
    expect(await redirects()).toBe(1);
  });
});
