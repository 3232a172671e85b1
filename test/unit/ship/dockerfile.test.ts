// Static checks of the Dockerfile and .dockerignore (no Docker engine on the build machines). The production
// stage itself is replayed in a clean directory by test/integration/ship-image.test.ts.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROUTER_ENTRYPOINT } from '../../../src/controller/router.js';
import { REPO_ROOT } from '../../support/paths.js';
import { byKind, parseDocs } from './helpers.js';

const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
const dockerignore = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8');

interface Instruction {
  op: string;
  args: string;
}
/** Instructions with line continuations joined and comments dropped. */
function instructions(text: string): Instruction[] {
  const joined = text
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const m = /^(\S+)\s*(.*)$/.exec(l)!;
      return { op: m[1]!.toUpperCase(), args: m[2]! };
    });
}
const all = instructions(dockerfile);
const stages: Array<{ from: string; name?: string; body: Instruction[] }> = [];
for (const i of all) {
  if (i.op === 'FROM') {
    const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(i.args)!;
    stages.push({ from: m[1]!, ...(m[2] ? { name: m[2] } : {}), body: [] });
  } else stages.at(-1)?.body.push(i);
}
const stage = (name: string) => stages.find((s) => s.name === name)!;
const runtime = stages.at(-1)!;

/** .dockerignore semantics for top-level entries: the last matching pattern wins, `!` re-includes. */
function included(path: string): boolean {
  const top = path.replace(/^\.\//, '').split('/')[0]!;
  let inc = true;
  for (const raw of dockerignore.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const neg = line.startsWith('!');
    const pat = (neg ? line.slice(1) : line).replace(/\/$/, '');
    const re = new RegExp(`^${pat.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`);
    if (re.test(top)) inc = neg;
  }
  return inc;
}

describe('Dockerfile', () => {
  it('every stage builds FROM the one Node 22 base image, pinned by a sha256 digest', () => {
    const arg = all.find((i) => i.op === 'ARG' && i.args.startsWith('NODE_IMAGE='))!;
    expect(arg.args).toMatch(/^NODE_IMAGE=node:22-bookworm-slim@sha256:[0-9a-f]{64}$/);
    expect(stages.map((s) => s.name)).toEqual(['build', 'prod-deps', 'runtime']);
    for (const s of stages) expect(s.from).toBe('${NODE_IMAGE}');
    // The comment says where the digest came from and how to re-pin it.
    expect(dockerfile).toMatch(/docker buildx imagetools inspect node:22-bookworm-slim/);
  });

  it('build: npm ci without install scripts (prepare would run tsc before the sources exist), then tsc', () => {
    const runs = stage('build').body.filter((i) => i.op === 'RUN').map((i) => i.args);
    expect(runs[0]).toMatch(/^npm ci --ignore-scripts\b/);
    expect(runs).toContain('npm run build');
  });

  it('prod-deps: runtime dependencies only, no install scripts (tsc is a dev dependency)', () => {
    const run = stage('prod-deps').body.find((i) => i.op === 'RUN')!.args;
    expect(run).toMatch(/npm ci --omit=dev --ignore-scripts/);
  });

  it('runtime: non-root 65532, node as PID 1 (no npm, no shell), no dev tree, npm removed', () => {
    const body = runtime.body;
    expect(body.filter((i) => i.op === 'USER').map((i) => i.args)).toEqual(['65532:65532']);
    // USER comes after every RUN/COPY: nothing of the app tree is owned by the runtime user.
    const userAt = body.findIndex((i) => i.op === 'USER');
    expect(body.slice(userAt + 1).some((i) => i.op === 'RUN' || i.op === 'COPY')).toBe(false);
    expect(body.find((i) => i.op === 'CMD')?.args).toBe('["node", "bin/melangectl.js", "controller"]');
    expect(body.find((i) => i.op === 'ENTRYPOINT')?.args).toBe('[]');
    expect(body.find((i) => i.op === 'WORKDIR')?.args).toBe('/app');
    const copies = body.filter((i) => i.op === 'COPY').map((i) => i.args);
    expect(copies).toEqual([
      '--from=prod-deps /app/node_modules ./node_modules',
      '--from=build /src/dist ./dist',
      'package.json ./',
      'bin ./bin',
      'LICENSE ./',
    ]);
    expect(body.find((i) => i.op === 'RUN')?.args).toMatch(/rm -rf \/usr\/local\/lib\/node_modules\/npm/);
    expect(dockerfile).not.toMatch(/npm (start|run start)/);
  });

  it('the chart and deploy/ start the image the way the Dockerfile lays it out (/app/bin/melangectl.js)', () => {
    const deploy = parseDocs(readFileSync(join(REPO_ROOT, 'deploy', '20-operator.yaml'), 'utf8'));
    const c = byKind(deploy, 'Deployment')[0]!.spec.template.spec.containers[0];
    expect(c.command).toEqual(['node', '/app/bin/melangectl.js', 'controller']);
    expect(readFileSync(join(REPO_ROOT, 'charts/melange-operator/templates/deployment.yaml'), 'utf8')).toContain('command: [node, /app/bin/melangectl.js, controller]');
    expect(existsSync(join(REPO_ROOT, 'bin', 'melangectl.js'))).toBe(true);
    // The router Deployments the operator creates run the same file of the same image layout.
    expect(ROUTER_ENTRYPOINT.slice(0, 2)).toEqual(c.command.slice(0, 2));
  });
});

describe('.dockerignore', () => {
  it('is an allow-list: everything is excluded unless named', () => {
    const lines = dockerignore.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
    expect(lines[0]).toBe('*');
    for (const p of ['node_modules', 'dist', '.git', '.run', 'test', 'charts', 'deploy', '.env', 'kubeconfig']) expect(included(p), p).toBe(false);
  });

  it('lets in every path the Dockerfile copies from the build context, and each exists', () => {
    const sources = all
      .filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(4);
    for (const s of sources) {
      expect(included(s), `${s} is excluded by .dockerignore`).toBe(true);
      expect(existsSync(join(REPO_ROOT, s)), `${s} does not exist`).toBe(true);
    }
  });
});
