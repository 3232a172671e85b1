import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { main } from '../../../src/cli/main.js';
import type { PlanReport } from '../../../src/cli/plan-report.js';

async function run(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const tmp = mkdtempSync(join(tmpdir(), 'melange-plan-'));
const write = (name: string, text: string) => { const p = join(tmp, name); writeFileSync(p, text); return p; };

const minimalService = () => `apiVersion: melange.dev/v1alpha1
kind: LLMService
metadata: { name: tiny, namespace: ml }
spec:
  model: m
  slo: { tpotMillis: 120 }
  buckets: { inputEdges: [1000], outputEdges: [500] }
  gpus:
    - { pool: a100, profile: p-a100 }
    - { pool: a10g, profile: p-a10g }
  workload: { source: Static, static: { requestsPerSecond: 4.3, distribution: [[1]] } }
  template: { spec: { containers: [ { name: server, image: vllm } ] } }
`;

const oneBucketRefs = `apiVersion: melange.dev/v1alpha1
kind: GPUPool
metadata: { name: a100 }
spec: { gpuType: A100, costPerGPUHour: "3.67", gpusPerNode: 8 }
---
apiVersion: melange.dev/v1alpha1
kind: GPUPool
metadata: { name: a10g }
spec: { gpuType: A10G, costPerGPUHour: "1.01", gpusPerNode: 1 }
---
apiVersion: melange.dev/v1alpha1
kind: GPUProfile
metadata: { name: p-a100, namespace: ml }
spec: { model: m, gpuType: A100, slo: { tpotMillis: 120 }, buckets: { inputEdges: [1000], outputEdges: [500] }, maxThroughput: [[2.0]] }
---
apiVersion: melange.dev/v1alpha1
kind: GPUProfile
metadata: { name: p-a10g, namespace: ml }
spec: { model: m, gpuType: A10G, slo: { tpotMillis: 120 }, buckets: { inputEdges: [1000], outputEdges: [500] }, maxThroughput: [[0.37]] }
`;

describe('melangectl plan', () => {
  it('plans the chat example with the built-in catalog and says it is illustrative', async () => {
    const r = await run(['plan', '-f', 'examples/llmservice-chat.yaml']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/NOTE: built-in catalog: Illustrative/);
    expect(r.out).toMatch(/^Mix \S+: \$\d+\.\d+\/h$/m);
    expect(r.out).toMatch(/Best single type: \w+ at \$[\d.]+\/h; savings [\d.]+%/);
    expect(r.out).toContain('Bucket split');
  });

  it('-o json gives the documented shape and the paper\'s one-bucket mix with explicit profiles', async () => {
    // No headroom, so the paper's 4.3 req/s is planned exactly.
    const svc = write('svc.yaml', minimalService().replace('  template:', '  policy: { headroomPercent: 0 }\n  template:'));
    const refs = write('refs.yaml', oneBucketRefs);
    const r = await run(['plan', '-f', svc, '--profiles', refs, '-o', 'json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out) as PlanReport;
    expect(report.kind).toBe('Plan');
    expect(report.profiles).toEqual({ source: 'files', illustrative: false });
    expect(report.status).toBe('optimal');
    expect(Object.fromEntries(report.allocation.map((a) => [a.pool, a.replicas]))).toEqual({ a100: 2, a10g: 1 });
    expect(report.workload.headroomPercent).toBe(0);
    expect(report.costPerHour).toBe('8.35');
    expect(report.mix).toBe('2xA100+1xA10G');
    expect(report.split[0]!.inputMaxTokens).toBe(1000);
  });

  it('--rate overrides the static rate; yaml output parses', async () => {
    const svc = write('svc-norate.yaml', minimalService());
    const refs = write('refs2.yaml', oneBucketRefs);
    const r = await run(['plan', '-f', svc, '--profiles', refs, '--rate', '0.3', '-o', 'yaml']);
    expect(r.code).toBe(0);
    const report = parse(r.out) as PlanReport;
    expect(report.workload.requestsPerSecond).toBe(0.3);
    expect(report.mix).toBe('1xA10G');
  });

  it('a bad manifest gives one line naming the file, the field and the problem, and exit code 2', async () => {
    const bad = write('bad.yaml', minimalService().replace('tpotMillis: 120', 'tpotMillis: -5'));
    const r = await run(['plan', '-f', bad]);
    expect(r.code).toBe(2);
    expect(r.err.split('\n')).toContainEqual(expect.stringMatching(new RegExp(`^${bad}: spec\\.slo\\.tpotMillis: .+`)));
  });

  it('a missing profile reference is reported against the LLMService field', async () => {
    const svc = write('svc-missing.yaml', minimalService().replace('profile: p-a10g', 'profile: nope'));
    const refs = write('refs3.yaml', oneBucketRefs);
    const r = await run(['plan', '-f', svc, '--profiles', refs]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${svc}: spec.gpus[1].profile: GPUProfile "nope" not found`);
  });

  it('unreadable files, YAML errors, bad flags → exit 2 with a clear line', async () => {
    expect((await run(['plan', '-f', join(tmp, 'absent.yaml')])).err).toMatch(/absent\.yaml: cannot read: ENOENT/);
    const broken = write('broken.yaml', 'kind: [unclosed');
    const y = await run(['plan', '-f', broken]);
    expect(y.code).toBe(2);
    expect(y.err).toMatch(/broken\.yaml: invalid YAML/);
    const f = await run(['plan', '-f', 'examples/llmservice-chat.yaml', '--rate', 'fast']);
    expect(f.code).toBe(2);
    expect(f.err).toMatch(/--rate: must be a number/);
    expect((await run(['plan', '--bogus'])).code).toBe(2);
    expect((await run(['plan'])).err).toMatch(/-f <LLMService manifest> is required/);
  });

  it('an unservable workload exits 1 and names the bucket', async () => {
    const svc = write('svc-unservable.yaml', minimalService());
    const refs = write('refs4.yaml', oneBucketRefs.replace('maxThroughput: [[2.0]]', 'maxThroughput: [[0]]').replace('maxThroughput: [[0.37]]', 'maxThroughput: [[0]]'));
    const r = await run(['plan', '-f', svc, '--profiles', refs]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/No plan: BucketUnservable: bucket \(input ≤ 1000 tokens, output ≤ 500 tokens\)/);
  });

  it('the installed bin runs from a built tree (npm ci builds dist/ via prepare)', () => {
    const r = spawnSync(process.execPath, ['bin/melangectl.js', 'plan', '-f', 'examples/llmservice-chat.yaml', '-o', 'json'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as PlanReport).status).toBe('optimal');
  });
});
