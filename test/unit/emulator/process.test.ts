/**
 * The real CLI as separate processes, from the TypeScript source (node --import tsx, so never a stale dist/):
 * `melangectl emulate` on 127.0.0.1 with a free port it reports in its log, a streamed chat completion over
 * a real socket, /metrics moving, `melangectl load` against it, and a graceful SIGTERM. Needs no cluster.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SseParser } from '../../../src/loadgen/sse.js';
import { synthesizeText } from '../../../src/common/tokens.js';

const root = join(import.meta.dirname, '..', '..', '..');
const cli = join(import.meta.dirname, 'fixtures', 'melangectl.ts');
const nodeArgs = ['--import', 'tsx', cli];

function metric(text: string, name: string, filter = ''): number {
  let v = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    const key = line.slice(0, sp);
    if ((key === name || key.startsWith(`${name}{`)) && key.includes(filter)) v += Number(line.slice(sp + 1));
  }
  return v;
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('melangectl emulate + load as real processes', () => {
  let emu: ChildProcess | undefined;
  let url = '';
  const logLines: Array<Record<string, unknown>> = [];
  let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  beforeAll(async () => {
    const child = spawn(process.execPath, [...nodeArgs, 'emulate', '--gpu', 'A10G', '--port', '0', '--speed', '20'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    emu = child;
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    url = await new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout! });
      rl.on('line', (line) => {
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          logLines.push(rec);
          if (typeof rec.msg === 'string' && rec.msg.startsWith('listening on ')) resolve(String(rec.url));
        } catch {
          // not a log line
        }
      });
      child.on('exit', (code) => reject(new Error(`emulator exited (${code}) before listening: ${stderr}`)));
    });
  }, 60_000);

  afterAll(() => {
    if (emu && emu.exitCode === null && emu.signalCode === null) emu.kill('SIGKILL');
  });

  it('reports where it listens, on 127.0.0.1, and says it is an emulator', () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(logLines.some((l) => l.emulator === true && String(l.msg).includes('EMULATOR') && l.gpuType === 'A10G')).toBe(true);
  });

  it('streams a chat completion over a real socket with usage and the emulator header', async () => {
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: synthesizeText(200) }], max_tokens: 12, stream: true, stream_options: { include_usage: true } }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-melange-emulator')).toBe('A10G');
    const parser = new SseParser();
    const events: string[] = [];
    const dec = new TextDecoder();
    for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) events.push(...parser.push(dec.decode(c, { stream: true })));
    expect(events.at(-1)).toBe('[DONE]');
    const usage = (JSON.parse(events.at(-2)!) as { usage: unknown }).usage;
    expect(usage).toEqual({ prompt_tokens: 206, completion_tokens: 12, total_tokens: 218 });
    const m = await (await fetch(`${url}/metrics`)).text();
    expect(metric(m, 'vllm:request_success_total')).toBe(1);
    expect(metric(m, 'vllm:request_generation_tokens_sum')).toBe(12);
    expect(metric(m, 'vllm:time_to_first_token_seconds_count')).toBe(1);
  });

  it('`melangectl load` runs a bounded Poisson load against it and reports percentiles and SLO attainment', async () => {
    const before = await (await fetch(`${url}/metrics`)).text();
    const r = await run([
      'load', '--url', url, '--rate', '2', '--requests', '30', '--duration', '60', '--seed', '3',
      '--distribution', 'examples/workloads/short-chat.yaml', '--slo-tpot-ms', '120', '-o', 'json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as {
      sent: number; completed: number; errors: number; incomplete: number; errorKinds: Record<string, number>;
      timeScale: { value: number; source: string }; target: { emulator: string };
      tpotMs: { p50: number; p90: number; p99: number; count: number }; ttftMs: { p50: number; count: number };
      slo: { tpotMillis: number; attainmentPercent: number; metric: string };
      throughput: { requestsPerSecond: number };
    };
    expect(report.sent).toBe(30);
    expect(report.incomplete).toBe(0);
    expect(report.completed + report.errors).toBe(30);
    // the only acceptable errors are prompts too long for an A10G (12k+ buckets), refused like vLLM does
    expect(Object.keys(report.errorKinds).every((k) => k === 'http_400')).toBe(true);
    expect(report.completed).toBeGreaterThan(20);
    expect(report.timeScale).toEqual({ value: 20, source: 'emulator-header' });
    expect(report.target.emulator).toBe('A10G');
    expect(report.ttftMs.count).toBe(report.completed);
    expect(report.tpotMs.p50).toBeGreaterThan(0);
    expect(report.tpotMs.p50).toBeLessThanOrEqual(report.tpotMs.p90);
    expect(report.tpotMs.p90).toBeLessThanOrEqual(report.tpotMs.p99);
    expect(report.slo.tpotMillis).toBe(120);
    expect(report.slo.attainmentPercent).toBeGreaterThanOrEqual(0);
    expect(report.slo.attainmentPercent).toBeLessThanOrEqual(100);
    expect(report.throughput.requestsPerSecond).toBeGreaterThan(0);
    // the server saw exactly the completed requests
    const after = await (await fetch(`${url}/metrics`)).text();
    expect(metric(after, 'vllm:request_success_total') - metric(before, 'vllm:request_success_total')).toBe(report.completed);
    expect(metric(after, 'vllm:e2e_request_latency_seconds_count') - metric(before, 'vllm:e2e_request_latency_seconds_count')).toBe(report.completed);
  }, 120_000);

  it('`melangectl load` refuses a non-loopback target with exit code 2', async () => {
    const r = await run(['load', '--url', 'http://10.0.0.1:8000', '--input', '10', '--output', '10']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not a loopback address/);
  }, 60_000);

  it('exits 0 on SIGTERM after a graceful shutdown', async () => {
    emu!.kill('SIGTERM');
    const { code, signal } = await exited;
    expect(signal).toBeNull();
    expect(code).toBe(0);
    expect(logLines.some((l) => l.msg === 'emulator stopped')).toBe(true);
  }, 30_000);
});

describe('melangectl emulate flags', () => {
  it('rejects an unknown GPU type with exit code 2', async () => {
    const r = await run(['emulate', '--gpu', 'TPUv9']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown GPU type "TPUv9"/);
  }, 60_000);
});
