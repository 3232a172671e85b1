/** Installing CustomResourceDefinitions from YAML files into the test cluster. */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { KubeConfig, V1CustomResourceDefinition } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { makeClients, ssa } from './kube.js';
import { waitFor } from './wait.js';

export const TEST_FIELD_MANAGER = 'melange-test';

/** All YAML documents of a file (empty documents skipped). */
export async function readYamlDocuments(file: string): Promise<unknown[]> {
  const docs = parseAllDocuments(await readFile(file, 'utf8'));
  const out: unknown[] = [];
  for (const d of docs) {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    const v: unknown = d.toJSON();
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

/** *.yaml / *.yml files of a directory, sorted ([] if the directory does not exist). */
export async function yamlFilesIn(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  return names.filter((n) => /\.ya?ml$/.test(n)).sort().map((n) => join(dir, n));
}

/** Raw (wire-format) CRD documents found in the YAML files of `dir`. */
export async function readCrdManifests(dir: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (const file of await yamlFilesIn(dir)) for (const doc of await readYamlDocuments(file)) if (isCrd(doc)) out.push(doc as Record<string, unknown>);
  return out;
}

const isCrd = (o: unknown): boolean =>
  typeof o === 'object' && o !== null && (o as { kind?: unknown }).kind === 'CustomResourceDefinition';

/**
 * Server-side applies one CRD (force, field manager melange-test). `manifest` is the raw wire-format
 * object as parsed from YAML: patch bodies go out verbatim (see `fromManifest` in kube.ts).
 */
export async function applyCrd(kc: KubeConfig, manifest: Record<string, unknown>): Promise<V1CustomResourceDefinition> {
  const meta = manifest.metadata;
  const name = typeof meta === 'object' && meta !== null ? (meta as { name?: unknown }).name : undefined;
  if (typeof name !== 'string' || !name) throw new Error('CRD without metadata.name');
  return makeClients(kc).apiext.patchCustomResourceDefinition(
    { name, body: manifest, fieldManager: TEST_FIELD_MANAGER, force: true, fieldValidation: 'Strict' },
    ssa(),
  );
}

/** Waits until the CRD's Established condition is True (and NamesAccepted is not False). */
export async function waitForCrdEstablished(kc: KubeConfig, name: string, timeoutMs = 30_000): Promise<V1CustomResourceDefinition> {
  const { apiext } = makeClients(kc);
  return waitFor(
    async () => {
      const crd = await apiext.readCustomResourceDefinition({ name });
      const conds = crd.status?.conditions ?? [];
      const rejected = conds.find((c) => c.type === 'NamesAccepted' && c.status === 'False');
      if (rejected) throw new Error(`CRD ${name} names not accepted: ${rejected.message ?? ''}`);
      return conds.some((c) => c.type === 'Established' && c.status === 'True') ? crd : undefined;
    },
    { what: `CRD ${name} Established`, timeoutMs, intervalMs: 200 },
  );
}

/**
 * Applies every CustomResourceDefinition found in the YAML files of `dir` and waits until all are
 * Established. Returns the established CRDs (empty if the directory has none).
 */
export async function applyCrdsFromDir(kc: KubeConfig, dir: string, timeoutMs = 30_000): Promise<V1CustomResourceDefinition[]> {
  const applied: V1CustomResourceDefinition[] = [];
  for (const raw of await readCrdManifests(dir)) applied.push(await applyCrd(kc, raw));
  return Promise.all(applied.map((c) => waitForCrdEstablished(kc, c.metadata?.name ?? '', timeoutMs)));
}
