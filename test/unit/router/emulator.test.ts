/**
 * The router in front of the real emulator (src/emulator, another component) on 127.0.0.1: two emulated GPU
 * types, requests of two sizes land where the split says, streams arrive whole, and the router counts the
 * emulator's actual usage (its prompt counting is the router's estimator, so no input mismatch).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../support/paths.js';
import { estimateTokens, synthesizeText } from '../../../src/common/tokens.js';
import { startEmulator, type RunningEmulator } from '../../../src/emulator/index.js';
import { startRouter, type RouterHandle } from '../../../src/router/server.js';

const silent = pino({ level: 'silent' });

describe('router → emulator', () => {
  let small: RunningEmulator;
  let big: RunningEmulator;
  let router: RouterHandle;
  beforeAll(async () => {
    // speed: emulated seconds per real second, so the test does not wait on emulated GPU time
    small = await startEmulator({ gpu: 'A10G', speed: 50, logger: silent });
    big = await startEmulator({ gpu: 'A100-80GB', speed: 50, logger: silent });
    router = await startRouter({
      logger: silent,
      config: {
        service: { namespace: 'demo', name: 'llama' },
        buckets: { inputEdges: [100, 2000], outputEdges: [50, 500] },
        split: [
          { input: 0, output: 0, weights: { a10g: 1 } },
          { input: 1, output: 1, weights: { a100: 1 } },
        ],
        pools: [
          { name: 'a10g', gpuType: 'A10G', backends: [small.url] },
          { name: 'a100', gpuType: 'A100-80GB', backends: [big.url] },
        ],
      },
    });
  });
  afterAll(async () => {
    await router?.close({ graceMs: 1000 });
    await small?.close({ drainMs: 0 });
    await big?.close({ drainMs: 0 });
  });

  it('routes by size to the emulated GPU types, streams whole, counts the emulator\'s usage', async () => {
    const shortReq = { model: 'meta-llama/Llama-2-7b-hf', prompt: synthesizeText(40), max_tokens: 20 };
    const r1 = await fetch(`${router.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(shortReq) });
    expect(r1.status).toBe(200);
    expect(r1.headers.get('x-melange-emulator')).toBe('A10G');
    const b1 = (await r1.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
    expect(b1.usage.prompt_tokens).toBe(40);
    expect(b1.usage.completion_tokens).toBe(20);

    const longReq = { model: 'meta-llama/Llama-2-7b-hf', messages: [{ role: 'user', content: synthesizeText(1000) }], max_tokens: 300, stream: true };
    const r2 = await fetch(`${router.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(longReq) });
    expect(r2.status).toBe(200);
    expect(r2.headers.get('x-melange-emulator')).toBe('A100-80GB');
    const events = (await r2.text()).split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice('data: '.length)) as { choices: { delta?: { content?: string } }[]; usage?: unknown });
    // the usage chunk the router asked for is not passed on
    expect(chunks.every((c) => c.choices.length > 0)).toBe(true);
    // the emulator may put several tokens in one chunk; each token is 4 ASCII chars (one estimated token)
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    expect(estimateTokens(text)).toBe(300);

    const metrics = await (await fetch(router.metricsUrl)).text();
    expect(metrics).toContain('melange_router_requests_total{namespace="demo",service="llama",input_le="100",output_le="50",pool="a10g",code="200"} 1');
    expect(metrics).toContain('melange_router_requests_total{namespace="demo",service="llama",input_le="2000",output_le="500",pool="a100",code="200"} 1');
    expect(metrics).not.toContain('melange_router_usage_estimated_total{namespace="demo",service="llama"} 1');
    expect(metrics).not.toMatch(/melange_router_bucket_mismatch_total\{[^}]*dimension="input"\} [1-9]/);
    expect(metrics).toMatch(/melange_router_ttft_seconds_count\{namespace="demo",service="llama",pool="a100"\} 1/);
  });
});

/** `melangectl <args>` from source (tsx) as a child process; resolves with the URL from its first JSON log line that has one. */
function startCli(args: string[]): { child: ChildProcess; url: Promise<string>; exited: Promise<number | null> } {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '-e', "import('./src/cli/main.ts').then(async (m) => { process.exitCode = await m.main(process.argv.slice(1)); })", ...args],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const rec = JSON.parse(line) as { url?: unknown };
        if (typeof rec.url === 'string') resolve(rec.url);
      } catch {
        // not a JSON line
      }
    });
    child.once('exit', (code) => reject(new Error(`melangectl ${args[0]} exited (${code}) before listening: ${stderr}`)));
  });
  return { child, url, exited };
}

describe('router → emulator process (melangectl emulate)', () => {
  it('routes to the emulator process and counts its usage', async () => {
    const emu = startCli(['emulate', '--gpu', 'l4', '--speed', '50', '--port', '0', '--host', '127.0.0.1']);
    let router: RouterHandle | undefined;
    try {
      const url = await emu.url;
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      router = await startRouter({
        logger: silent,
        config: {
          service: { namespace: 'demo', name: 'proc' },
          buckets: { inputEdges: [100, 2000], outputEdges: [50, 500] },
          split: [{ input: 0, output: 0, weights: { l4: 1 } }],
          pools: [{ name: 'l4', gpuType: 'L4', backends: [url] }],
        },
      });
      const res = await fetch(`${router.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'meta-llama/Llama-2-7b-hf', messages: [{ role: 'user', content: synthesizeText(30) }], max_tokens: 10, stream: true }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-melange-emulator')).toBe('L4');
      const body = await res.text();
      expect(body.trimEnd().endsWith('data: [DONE]')).toBe(true);
      const models = (await (await fetch(`${router.url}/v1/models`)).json()) as { data: { owned_by: string }[] };
      expect(models.data[0]?.owned_by).toBe('melange-emulator');
      const metrics = await (await fetch(router.metricsUrl)).text();
      expect(metrics).toContain('melange_router_requests_total{namespace="demo",service="proc",input_le="100",output_le="50",pool="l4",code="200"} 1');
      expect(metrics).not.toMatch(/melange_router_usage_estimated_total\{[^}]*\} [1-9]/);
      emu.child.kill('SIGTERM');
      expect(await emu.exited).toBe(0);
    } finally {
      await router?.close({ graceMs: 0 });
      if (emu.child.exitCode === null && emu.child.signalCode === null) emu.child.kill('SIGKILL');
    }
  });
});
