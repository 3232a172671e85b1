/**
 * `melangectl profile` flags, the dry run (no endpoint contacted) and exit codes, in process (no sockets).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { parseDuration, resolveBuckets } from '../../../src/cli/profile-args.js';
import { DEFAULT_SEARCH, DEFAULT_SIZING } from '../../../src/profiler/index.js';
import { newState, writeStateAtomic } from '../../../src/profiler/state.js';

async function run(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const tmp = mkdtempSync(join(tmpdir(), 'melange-profile-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('melangectl profile: flags', () => {
  it('--help', async () => {
    const r = await run(['profile', '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Usage: melangectl profile --url/);
  });

  it('missing or bad flags exit 2 with one line', async () => {
    expect((await run(['profile', '--buckets', 'paper', '--slo-tpot-ms', '120'])).err).toMatch(/--gpu-type is required/);
    expect((await run(['profile', '--gpu-type', 'A10G', '--buckets', '100,50/25', '--slo-tpot-ms', '120'])).code).toBe(2);
    expect((await run(['profile', '--gpu-type', 'A10G', '--buckets', 'paper'])).err).toMatch(/--slo-tpot-ms is required/);
    expect((await run(['profile', '--gpu-type', 'A10G', '--buckets', 'paper', '--slo-tpot-ms', '12.5'])).err).toMatch(/--slo-tpot-ms: must be an integer/);
    expect((await run(['profile', '--gpu-type', 'A10G', '--buckets', 'paper', '--slo-tpot-ms', '120', '--max-duration', '10x'])).err).toMatch(/not a duration/);
    expect((await run(['profile', '--gpu-type', 'A10G', '--buckets', 'paper', '--slo-tpot-ms', '120'])).err).toMatch(/--url is required/);
    // What the profile would carry is checked against the schema up front, by field, dry run included.
    const name = await run(['profile', '--dry-run', '--gpu-type', 'A10G', '--buckets', 'paper', '--slo-tpot-ms', '120', '--name', 'Not_A_Name']);
    expect(name.code).toBe(2);
    expect(name.err).toMatch(/^melangectl profile: metadata\.name: must be a DNS subdomain/);
    const remote = await run(['profile', '--gpu-type', 'A10G', '--buckets', 'paper', '--slo-tpot-ms', '120', '--url', 'http://10.9.9.9:8000']);
    expect(remote.code).toBe(2);
    expect(remote.err).toMatch(/not a loopback address/);
  });

  it('durations and bucket specs', async () => {
    expect(parseDuration('90s')).toBe(90);
    expect(parseDuration('10m')).toBe(600);
    expect(parseDuration('1h30m')).toBe(5400);
    expect(parseDuration('45')).toBe(45);
    expect((await resolveBuckets('100,250,12000/25,50')).buckets).toEqual({ inputEdges: [100, 250, 12000], outputEdges: [25, 50] });
    expect((await resolveBuckets('paper')).buckets.inputEdges).toHaveLength(10);
    // an LLMService file gives its buckets, SLO and model
    const svc = await resolveBuckets('examples/llmservice-chat.yaml');
    expect(svc).toMatchObject({ slo: 120, model: 'meta-llama/Llama-2-7b-hf' });
    expect(svc.buckets.outputEdges).toHaveLength(6);
  });
});

describe('melangectl profile --dry-run', () => {
  it('prints the plan, the bounds and the expected duration from the GPU model, without contacting anything', async () => {
    const r = await run(['profile', '--dry-run', '--gpu-type', 'A10G', '--buckets', '100,250,12000/25,50', '--slo-tpot-ms', '120', '--time-scale', '10', '--max-duration', '30m']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Plan: profile A10G at mean TPOT <= 120 ms over 6 buckets \(3 input x 2 output ranges\)/);
    expect(r.out).toMatch(new RegExp(`Upper bound: ${6 * (1 + DEFAULT_SEARCH.maxProbes)} probes`));
    expect(r.out).toMatch(/Expected: \d+ probes, about \S+ at time scale 10/);
    expect(r.out).toMatch(/12000\s+25\s+1\s+0s\s+cannot serve/); // the context limit, known to the model
    expect(r.out).toMatch(new RegExp(`${DEFAULT_SIZING.lifetimes} request lifetimes`));
  });

  it('for an unknown GPU type the expected duration is unknown, the bounds remain', async () => {
    const r = await run(['profile', '--dry-run', '--gpu-type', 'TPU-v9', '--buckets', '100/25', '--slo-tpot-ms', '50']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/Expected duration: unknown for GPU type "TPU-v9"/);
    expect(r.out).toMatch(/Upper bound: 13 probes/);
  });

  it('with a state file it shows what is already done', async () => {
    const path = join(tmp, 'state.json');
    const s = newState({
      model: 'm', gpuType: 'A10G', buckets: { inputEdges: [100], outputEdges: [25] }, sloTpotMillis: 120, api: 'chat', seed: 1,
      search: { ...DEFAULT_SEARCH, sloTpotMillis: 120 }, sizing: DEFAULT_SIZING,
    }, new Date(0));
    s.buckets['100x25'] = { input: 100, output: 25, probes: [{ kind: 'alone', nominalRate: 0, outcome: 'rejected', error: 'http_400: too long', requests: { sent: 1, completed: 0, errors: 1, incomplete: 0, window: 0 }, timing: 'client', wallSeconds: 0, at: '' }] };
    await writeStateAtomic(path, s);
    const r = await run(['profile', '--dry-run', '--gpu-type', 'A10G', '--buckets', '100/25', '--slo-tpot-ms', '120', '--state', path]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/1 buckets done, 1 probes recorded/);
    expect(r.out).toMatch(/Upper bound: 0 probes/);
    writeFileSync(join(tmp, 'bad.json'), 'nope');
    expect((await run(['profile', '--dry-run', '--gpu-type', 'A10G', '--buckets', '100/25', '--slo-tpot-ms', '120', '--state', join(tmp, 'bad.json')])).code).toBe(2);
  });
});
