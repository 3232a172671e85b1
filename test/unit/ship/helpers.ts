/**
 * Helpers of the P6 "ship it" tests (test/unit/ship/*.test.ts and test/integration/ship-*.test.ts): run the
 * real helm binary in a throwaway HOME, render the chart, compare RBAC rules, and start a private
 * etcd + kube-apiserver (for tests that must own the whole cluster: CRD install/uninstall, admission plugins).
 * Not a test file itself (vitest only collects *.test.ts).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { KUBE_VERSION, startControlPlane } from '../../support/control-plane.js';
import type { Pki } from '../../support/pki.js';
import { stopProcesses, type ProcessRecord } from '../../support/processes.js';
import { repoPath } from '../../support/paths.js';

export type Obj = Record<string, any>;
export interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

export const CHART_PATH = repoPath('charts', 'melange-operator');

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The helm of the test binaries, isolated: HOME and every HELM_* directory in a temp dir (no repo config,
 * cache or plugin of the machine is read or written), loopback never proxied.
 */
export class Helm {
  readonly home = mkdtempSync(join(tmpdir(), 'melange-helm-'));
  constructor(readonly binDir: string) {}

  run(args: string[], timeoutMs = 120_000): Promise<HelmResult> {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: this.home,
      HELM_CACHE_HOME: join(this.home, 'cache'),
      HELM_CONFIG_HOME: join(this.home, 'config'),
      HELM_DATA_HOME: join(this.home, 'data'),
      HELM_PLUGINS: join(this.home, 'plugins'),
      NO_PROXY: '127.0.0.1,localhost',
      no_proxy: '127.0.0.1,localhost',
    };
    return new Promise((resolve) => {
      execFile(join(this.binDir, 'helm'), args, { env, timeout: timeoutMs, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** Runs helm and throws with its stderr unless it exits 0. */
  async ok(args: string[], timeoutMs?: number): Promise<string> {
    const r = await this.run(args, timeoutMs);
    if (r.code !== 0) throw new Error(`helm ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** A values file in the helm home, for -f. */
  valuesFile(values: Obj): string {
    const f = join(this.home, `values-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(f, JSON.stringify(values));
    return f;
  }

  /** `helm template` of the chart; `--kube-version` because a helm built from Go modules defaults to v1.20. */
  async template(release: string, namespace: string, values: Obj = {}, extra: string[] = []): Promise<Obj[]> {
    const out = await this.ok(['template', release, CHART_PATH, '--namespace', namespace, '--kube-version', KUBE_VERSION, '-f', this.valuesFile(values), ...extra]);
    return parseDocs(out);
  }

  close(): void {
    rmSync(this.home, { recursive: true, force: true });
  }
}

export function parseDocs(text: string): Obj[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(d.errors.map((e) => e.message).join('; '));
      return d.toJSON() as Obj | null;
    })
    .filter((d): d is Obj => d !== null && typeof d === 'object');
}

export const byKind = (docs: Obj[], kind: string): Obj[] => docs.filter((d) => d.kind === kind);
export const oneOf = (docs: Obj[], kind: string, name?: string): Obj => {
  const found = docs.filter((d) => d.kind === kind && (name === undefined || d.metadata?.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
};

/** (group, resource, verb) triples of a rule list, sorted: equal sets of access regardless of grouping. */
export function accessTriples(rules: Rule[]): string[] {
  const out = new Set<string>();
  for (const r of rules) for (const g of r.apiGroups) for (const res of r.resources) for (const v of r.verbs) out.add(`${g}|${res}|${v}`);
  return [...out].sort();
}

/** The rules with one verb removed from one (group, resource); rules left with no verb are dropped. */
export function withoutVerb(rules: Rule[], group: string, resource: string, verb: string): Rule[] {
  const out: Rule[] = [];
  for (const r of rules) {
    if (!(r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb))) {
      out.push(r);
      continue;
    }
    // Split the rule so only (group, resource) loses the verb; the other resources of the rule keep it.
    const others = r.resources.filter((x) => x !== resource);
    if (others.length > 0) out.push({ ...r, resources: others });
    const verbs = r.verbs.filter((v) => v !== verb);
    if (verbs.length > 0) out.push({ apiGroups: [group], resources: [resource], verbs });
  }
  return out;
}

export interface PrivateCluster {
  kubeconfig: string;
  apiUrl: string;
  pki: Pki;
  dir: string;
  processes: ProcessRecord[];
  stop(): Promise<void>;
}

/**
 * A private etcd + kube-apiserver on 127.0.0.1 (the harness's `api` profile, with extra apiserver flags),
 * for tests that need a cluster to themselves: a CRD install/uninstall cycle would delete every custom
 * resource of the shared cluster. `stop()` stops exactly these two process groups.
 */
export async function startPrivateCluster(binDir: string, dir: string, extraApiserverArgs: string[] = []): Promise<PrivateCluster> {
  const cp = await startControlPlane({ binDir, profile: 'api', runDir: dir, extraApiserverArgs });
  return {
    kubeconfig: cp.kubeconfig,
    apiUrl: cp.apiUrl,
    pki: cp.pki,
    dir,
    processes: cp.processes,
    stop: async () => {
      await stopProcesses(cp.processes, 5_000);
    },
  };
}
