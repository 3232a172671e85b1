// The user docs cannot silently fall behind the code: every condition reason the operator can set is
// explained in docs/troubleshooting.md, every metric it or the router registers is in docs/metrics.md, every
// relative link resolves, the README links every doc, and the manifests shown in examples/README.md and
// test/e2e/kind.sh validate against the API schemas and reference objects that exist in examples/.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { LLMServiceConditionTypes, validateManifest } from '../../../src/api/index.js';
import { REPO_ROOT } from '../../support/paths.js';

const read = (p: string) => readFileSync(join(REPO_ROOT, p), 'utf8');
const src = (dir: string) =>
  readdirSync(join(REPO_ROOT, dir))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => read(join(dir, f)))
    .join('\n');
const matches = (text: string, re: RegExp) => [...text.matchAll(re)].map((m) => m[1]!);
const block = (text: string, start: string) => {
  const i = text.indexOf(start);
  if (i < 0) throw new Error(`not found: ${start}`);
  return text.slice(i, text.indexOf('\n}', i) > 0 ? text.indexOf(';\n', i) + 1 || undefined : undefined);
};

/** Every reason string the operator can put into a condition or an event, collected from the sources. */
function operatorReasons(): string[] {
  const controller = src('src/controller');
  // `reason: 'X'` and `reason: cond ? 'X' : 'Y'`
  const reasons = new Set(matches(controller, /reason: ([^,\n]+)/g).flatMap((expr) => matches(expr, /'([A-Z][A-Za-z]+)'/g)));
  // classifyReferenceErrors: PoolNotFound, ProfileNotFound, ...
  const planner = read('src/controller/planner.ts');
  const classify = planner.slice(planner.indexOf('export function classifyReferenceErrors'));
  for (const r of matches(classify.slice(0, classify.indexOf('\n}')), /'([A-Z][A-Za-z]+)'/g)) reasons.add(r);
  // Solver failures become the Solved condition's reason.
  for (const r of matches(block(read('src/solver/types.ts'), 'export type FailureReason'), /'([A-Z][A-Za-z]+)'/g)) reasons.add(r);
  // The measured workload source's reasons (MetricsAvailable), success and failure.
  const workload = read('src/workload/source.ts');
  for (const r of matches(block(workload, 'export type WorkloadFailureReason'), /'([A-Z][A-Za-z]+)'/g)) reasons.add(r);
  for (const r of matches(block(workload, 'const SUCCESS_REASON'), /: '([A-Z][A-Za-z]+)'/g)) reasons.add(r);
  return [...reasons].sort();
}

/** Metric names registered with prom-client in a source tree. */
function metricNames(text: string): string[] {
  return [...new Set(matches(text, /name: '([a-z_:]+)'/g).filter((n) => n.includes('_')))].sort();
}

describe('docs/troubleshooting.md', () => {
  const doc = read('docs/troubleshooting.md');
  const reasons = operatorReasons();

  it('finds the reasons in the sources (sanity: the extraction still works)', () => {
    for (const r of ['Ready', 'Optimal', 'WaitingForReplicas', 'ApplyFailed', 'PoolNotFound', 'CapacityExhausted', 'NoData', 'StaticWorkload', 'AllocationChanged']) {
      expect(reasons).toContain(r);
    }
    expect(reasons.length).toBeGreaterThan(30);
  });

  it('explains every condition reason and event reason the operator sets', () => {
    const missing = reasons.filter((r) => !doc.includes(`\`${r}\``));
    expect(missing, `add these reasons to docs/troubleshooting.md: ${missing.join(', ')}`).toEqual([]);
  });

  it('has a section for every condition type', () => {
    for (const t of Object.values(LLMServiceConditionTypes)) expect(doc).toMatch(new RegExp(`^## ${t}$`, 'm'));
  });
});

describe('docs/metrics.md', () => {
  const doc = read('docs/metrics.md');
  it.each([
    ['operator', 'src/controller/metrics.ts', 11],
    ['router', 'src/router/metrics.ts', 12],
  ])('documents every %s metric', (_what, file, atLeast) => {
    const text = read(file);
    const names = [...metricNames(text), ...matches(text, /: '(melange_router_[a-z_]+)'/g)];
    const unique = [...new Set(names)];
    expect(unique.length).toBeGreaterThanOrEqual(atLeast);
    const missing = unique.filter((n) => !doc.includes(`\`${n}\``));
    expect(missing, `add to docs/metrics.md: ${missing.join(', ')}`).toEqual([]);
  });
});

describe('links', () => {
  const docs = ['README.md', 'examples/README.md', ...readdirSync(join(REPO_ROOT, 'docs')).map((f) => `docs/${f}`)].filter((f) => f.endsWith('.md'));
  const mine = ['README.md', 'examples/README.md', 'docs/concepts.md', 'docs/install.md', 'docs/troubleshooting.md', 'docs/metrics.md', 'docs/design-decisions.md'];

  it.each(mine)('%s: every relative link resolves', (file) => {
    const text = read(file);
    const broken = matches(text, /\]\((?!https?:|#|mailto:)([^)\s#]+)(?:#[^)]*)?\)/g).filter((target) => {
      try {
        statSync(resolve(REPO_ROOT, dirname(file), target));
        return false;
      } catch {
        return true;
      }
    });
    expect(broken).toEqual([]);
  });

  it('README links every doc and the examples walk-through', () => {
    const readme = read('README.md');
    for (const f of docs.filter((d) => d !== 'README.md')) expect(readme, f).toContain(`](${f})`);
  });
});

describe('walk-through manifests', () => {
  const pools = parseAllDocuments(read('examples/gpupools.yaml')).map((d) => d.toJSON() as { metadata: { name: string }; spec: { nodeSelector: Record<string, string> } });
  const profiles = parseAllDocuments(read('examples/gpuprofiles-llama2-7b.yaml')).map((d) => d.toJSON() as { metadata: { name: string } });
  const check = (svc: { spec: { gpus: Array<{ pool: string; profile: string }> } }) => {
    const r = validateManifest(svc, undefined, { strict: true });
    expect(r.ok, JSON.stringify(r.ok ? [] : r.errors)).toBe(true);
    for (const g of svc.spec.gpus) {
      expect(pools.map((p) => p.metadata.name)).toContain(g.pool);
      expect(profiles.map((p) => p.metadata.name)).toContain(g.profile);
    }
  };

  it('examples/README.md: every melange.dev manifest validates (strict) and references example pools and profiles', () => {
    const blocks = matches(read('examples/README.md'), /```yaml\n([\s\S]*?)```/g).map((b) => parse(b) as Record<string, any>);
    const services = blocks.filter((b) => b?.kind === 'LLMService');
    expect(services.length).toBeGreaterThanOrEqual(1);
    for (const s of services) check(s as never);
  });

  it('test/e2e/kind.sh: its LLMService validates and its fake GPU nodes match the example pools', () => {
    const script = read('test/e2e/kind.sh');
    const heredoc = /<<YAML\n([\s\S]*?)\nYAML\n/.exec(script)![1]!.replace(/\$\{IMAGE\}/g, 'melange-operator:e2e').replace(/\\\$/g, '$');
    const svc = parse(heredoc) as Record<string, any>;
    check(svc as never);
    for (const product of matches(script, /gpu_node "\$\{WORKERS\[\d\]\}" (\S+)/g)) {
      expect(pools.some((p) => p.spec.nodeSelector['nvidia.com/gpu.product'] === product), product).toBe(true);
    }
  });
});

describe('test/e2e/kind.sh', () => {
  const path = join(REPO_ROOT, 'test', 'e2e', 'kind.sh');

  it('parses (bash -n) and is executable', () => {
    execFileSync('bash', ['-n', path]);
    expect(statSync(path).mode & 0o111).not.toBe(0);
  });

  it('is documented as not run in CI, and covers build, load, install, examples and the Ready wait', () => {
    const s = read('test/e2e/kind.sh');
    expect(s).toMatch(/NOT run in this project's CI/);
    for (const step of ['kind create cluster', 'docker build', 'kind load docker-image', 'helm upgrade --install melange-operator charts/melange-operator', 'examples/gpupools.yaml', 'examples/gpuprofiles-llama2-7b.yaml', '--for=condition=Ready']) {
      expect(s).toContain(step);
    }
    expect(s).toMatch(/^set -euo pipefail$/m);
    expect(s).toMatch(/trap cleanup EXIT/);
  });
});
