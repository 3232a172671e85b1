import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { REPO_ROOT } from '../../support/paths.js';
import { startFakeUpstream, type FakeUpstream } from './fake-upstream.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

describe('melangectl router', () => {
  let dir: string;
  let upstream: FakeUpstream;
  let configFile: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'melange-router-cli-'));
    upstream = await startFakeUpstream('only');
    configFile = join(dir, 'router.yaml');
    await writeFile(
      configFile,
      [
        'service: {namespace: demo, name: chat}',
        'buckets: {inputEdges: [100, 1000], outputEdges: [100, 1000]}',
        'split:',
        '  - {input: 0, output: 0, weights: {l4: 1}}',
        'pools:',
        `  - {name: l4, gpuType: L4, backends: ["${upstream.url}"]}`,
        '',
      ].join('\n'),
    );
  });
  afterAll(async () => {
    await upstream.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('usage errors exit 2 with one clear line', async () => {
    for (const [args, msg] of [
      [['router'], '--config FILE is required'],
      [['router', '--config', configFile, '--port', 'x'], '--port: must be an integer in [0, 65535], not "x"'],
      [['router', '--config', configFile, '--bogus'], 'Unknown option'],
      [['router', '--config', configFile, '--log-level', 'loud'], '--log-level: must be one of'],
    ] as const) {
      const c = capture();
      expect(await main([...args], c.io)).toBe(2);
      expect(c.err.join('\n')).toContain(msg);
    }
  });

  it('a name that is not a command (even an Object.prototype key) is refused with the usage, exit 2', async () => {
    for (const name of ['toString', 'constructor', '__proto__', 'routr']) {
      const c = capture();
      expect(await main([name], c.io)).toBe(2);
      expect(c.err.join('\n')).toContain(`unknown command "${name}"`);
    }
  });

  it('an invalid or missing config file exits 2 listing the problems', async () => {
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'service: {namespace: demo}\npools: []\n');
    const c = capture();
    expect(await main(['router', '--config', bad, '--port', '0', '--log-level', 'silent'], c.io)).toBe(2);
    expect(c.err).toContain(`melangectl router: ${bad}: service.name: Invalid input: expected string, received undefined`);
    const m = capture();
    expect(await main(['router', '--config', join(dir, 'missing.yaml'), '--port', '0', '--log-level', 'silent'], m.io)).toBe(2);
    expect(m.err[0]).toMatch(/missing\.yaml: ENOENT/);
  });

  it('--help prints the usage', async () => {
    const c = capture();
    expect(await main(['router', '--help'], c.io)).toBe(0);
    expect(c.out[0]).toMatch(/^Usage: melangectl router --config FILE/);
  });

  it('as a process: logs its URL as JSON, proxies, and exits 0 on SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '-e', "import('./src/cli/main.ts').then(async (m) => { process.exitCode = await m.main(process.argv.slice(1)); })", 'router', '--config', configFile, '--port', '0'],
      { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    try {
      const lines = createInterface({ input: child.stdout });
      const logs: Record<string, unknown>[] = [];
      const url = await new Promise<string>((resolve, reject) => {
        lines.on('line', (l) => {
          const rec = JSON.parse(l) as Record<string, unknown>;
          logs.push(rec);
          if (typeof rec.url === 'string') resolve(rec.url);
        });
        child.once('exit', () => reject(new Error(`router exited before listening: ${stderr}`)));
      });
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const r = await fetch(`${url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'hello', max_tokens: 2 }) });
      expect(r.status).toBe(200);
      expect(((await r.json()) as { backend: string }).backend).toBe('only');
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toContain('melange_router_requests_total{namespace="demo",service="chat",input_le="100",output_le="100",pool="l4",code="200"} 1');
      expect(metrics).toContain('melange_router_process_cpu_seconds_total');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(logs.some((l) => l.msg === 'router stopped')).toBe(true);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
