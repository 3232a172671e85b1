/**
 * `melangectl router --workers 2` as a real process tree on 127.0.0.1: two workers on one port in front of a
 * real emulator, the primary serving their metrics summed, a killed worker replaced, SIGTERM draining all.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { synthesizeText } from '../../../src/common/tokens.js';
import { routerCommand } from '../../../src/cli/router.js';
import { startEmulator, type RunningEmulator } from '../../../src/emulator/index.js';
import { REPO_ROOT, repoPath } from '../../support/paths.js';
import { waitFor } from '../../support/wait.js';

interface LogLine { msg?: string; pid?: number; url?: string; metricsUrl?: string }

/** One request on a fresh connection (no keep-alive), so the primary hands each one to a worker in turn. */
function complete(url: string): Promise<number> {
  const body = JSON.stringify({ model: 'meta-llama/Llama-2-7b-hf', prompt: synthesizeText(30), max_tokens: 5 });
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/v1/completions`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const metricValue = (text: string, re: RegExp): number | undefined => {
  const m = re.exec(text);
  return m ? Number(m[1]) : undefined;
};

describe('melangectl router --workers', () => {
  let dir: string;
  let emu: RunningEmulator;
  let config: string;
  let child: ChildProcess;
  const lines: LogLine[] = [];
  let exited: Promise<number | null>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'melange-workers-'));
    emu = await startEmulator({ gpu: 'L4', speed: 50, logger: pino({ level: 'silent' }) });
    config = join(dir, 'router.yaml');
    writeFileSync(config, stringify({
      service: { namespace: 'demo', name: 'workers' },
      buckets: { inputEdges: [100], outputEdges: [50] },
      split: [{ input: 0, output: 0, weights: { l4: 1 } }],
      pools: [{ name: 'l4', gpuType: 'L4', backends: [emu.url] }],
    }));
    // A script file, not `node -e`: cluster.fork() starts the workers from process.argv[1].
    const entry = join(dir, 'entry.mjs');
    writeFileSync(entry, `import { main } from ${JSON.stringify(pathToFileURL(repoPath('src', 'cli', 'main.ts')).href)};\n` +
      'main(process.argv.slice(2)).then((c) => { process.exitCode = c; }, (e) => { console.error(e); process.exitCode = 1; });\n');
    child = spawn(process.execPath, ['--import', 'tsx', entry, 'router', '--config', config, '--host', '127.0.0.1', '--port', '0',
      '--metrics-port', '0', '--workers', '2', '--shutdown-grace-ms', '2000'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    createInterface({ input: child.stdout! }).on('line', (l) => {
      try { lines.push(JSON.parse(l) as LogLine); } catch { /* not JSON */ }
    });
  });
  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const l of lines) if (l.msg === 'router listening' && l.pid) try { process.kill(l.pid, 'SIGKILL'); } catch { /* gone */ }
    await emu?.close({ drainMs: 0 });
    rmSync(dir, { recursive: true, force: true });
  });

  const listening = () => lines.filter((l) => l.msg === 'router listening');
  const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

  it('serves through both workers on one port, sums their metrics, replaces a dead worker and drains on SIGTERM', async () => {
    await waitFor(() => (listening().length >= 2 && lines.some((l) => l.metricsUrl) ? true : undefined), { what: 'two workers and the primary', timeoutMs: 30_000 });
    const [a, b] = listening();
    expect(a!.pid).not.toBe(b!.pid);
    expect(a!.url).toBe(b!.url);
    const url = a!.url!;
    const metricsUrl = lines.find((l) => l.msg === 'router primary started')!.metricsUrl!;

    const codes = await Promise.all(Array.from({ length: 20 }, () => complete(url)));
    expect(codes.every((c) => c === 200)).toBe(true);
    // the main port serves no /metrics of a single worker
    expect(await fetch(`${url}/metrics`).then((r) => r.status)).toBe(404);
    const text = await (await fetch(metricsUrl)).text();
    const labels = 'namespace="demo",service="workers"';
    expect(metricValue(text, new RegExp(`melange_router_requests_total\\{${labels},input_le="100",output_le="50",pool="l4",code="200"\\} (\\d+)`))).toBe(20);
    // one config load per worker: both workers' registries are in the sum
    expect(metricValue(text, /melange_router_config_reloads_total\{result="success"\} (\d+)/)).toBe(2);
    // the same split and backends in both: taken once, not doubled
    expect(metricValue(text, new RegExp(`melange_router_split_weight\\{${labels},input_le="100",output_le="50",pool="l4"\\} ([\\d.]+)`))).toBe(1);
    expect(metricValue(text, new RegExp(`melange_router_backends\\{${labels},pool="l4"\\} (\\d+)`))).toBe(1);

    process.kill(a!.pid!, 'SIGKILL');
    await waitFor(() => (listening().length >= 3 ? true : undefined), { what: 'a replacement worker', timeoutMs: 30_000 });
    expect(lines.some((l) => l.msg === 'router worker died; started a replacement')).toBe(true);
    const again = await Promise.all(Array.from({ length: 6 }, () => complete(url)));
    expect(again).toEqual([200, 200, 200, 200, 200, 200]);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    for (const l of listening()) expect(alive(l.pid!)).toBe(false);
  });

  it('refuses --workers without --metrics-port, and a bad config before forking', async () => {
    const err: string[] = [];
    const io = { out: () => undefined, err: (s: string) => { err.push(s); } };
    await expect(routerCommand(['--config', config, '--workers', '2'], io)).rejects.toThrow(/--workers: .*--metrics-port/);
    await expect(routerCommand(['--config', config, '--workers', '0', '--metrics-port', '0'], io)).rejects.toThrow(/--workers: must be an integer in \[1, 64\]/);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'service: {namespace: a, name: b}\nbuckets: {inputEdges: [100], outputEdges: [50]}\npools: []\n');
    expect(await routerCommand(['--config', bad, '--workers', '2', '--metrics-port', '0'], io)).toBe(2);
    expect(err.join('\n')).toMatch(/bad\.yaml: pools: /);
  });
});
