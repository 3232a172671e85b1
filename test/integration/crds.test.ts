/**
 * The project's CRDs (crds/*.yaml, group melange.dev) against a real API server: they install and
 * become Established, the example LLMService round-trips, the status subresource works, and the
 * CEL validation rules are enforced by the server (422 with the rule's message).
 */
import type { KubeConfig, V1CustomResourceDefinition } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { applyCrdsFromDir, readCrdManifests, readYamlDocuments, yamlFilesIn } from '../support/crds.js';
import { httpStatusOf, kubeStatusOf, makeClients, mergePatch } from '../support/kube.js';
import { useTestNamespace } from '../support/namespace.js';
import { repoPath } from '../support/paths.js';

const GROUP = 'melange.dev';
const EXPECTED_PLURALS = ['gpupools', 'gpuprofiles', 'llmservices'];
const EXAMPLE = repoPath('examples', 'llmservice-chat.yaml');

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const clone = <T>(v: T): T => structuredClone(v);

/** Every x-kubernetes-validations message in a raw (wire-format) schema; rules without a message count by their expression. */
function celMessages(schema: unknown, out: string[] = []): string[] {
  if (Array.isArray(schema)) {
    for (const s of schema) celMessages(s, out);
    return out;
  }
  if (!isObj(schema)) return out;
  const rules = schema['x-kubernetes-validations'];
  if (Array.isArray(rules)) {
    for (const r of rules) if (isObj(r)) out.push(String(r.message ?? r.rule));
  }
  for (const [k, v] of Object.entries(schema)) if (k !== 'x-kubernetes-validations') celMessages(v, out);
  return out;
}

interface Mutation {
  description: string;
  apply(spec: Obj): boolean;
}

/** Finds the first object (depth-first) satisfying `pred` and mutates it. */
function mutateFirst(node: unknown, pred: (o: Obj) => boolean, mutate: (o: Obj) => void): boolean {
  if (Array.isArray(node)) return node.some((n) => mutateFirst(n, pred, mutate));
  if (!isObj(node)) return false;
  if (pred(node)) {
    mutate(node);
    return true;
  }
  return Object.values(node).some((v) => mutateFirst(v, pred, mutate));
}

/** Ways to break a CEL rule of LLMService, tried in order against the example's spec. */
const MUTATIONS: Mutation[] = [
  {
    description: 'minReplicas > maxReplicas',
    apply: (spec) =>
      mutateFirst(
        spec,
        (o) => typeof o.maxReplicas === 'number',
        (o) => {
          o.minReplicas = (o.maxReplicas as number) + 1;
        },
      ),
  },
  {
    description: 'bucket edges not strictly increasing',
    apply: (spec) =>
      mutateFirst(
        spec,
        (o) => Object.entries(o).some(([k, v]) => /Edges$/.test(k) && Array.isArray(v) && v.length >= 2 && v.every((x) => typeof x === 'number')),
        (o) => {
          const [key] = Object.entries(o).find(([k, v]) => /Edges$/.test(k) && Array.isArray(v) && v.length >= 2) ?? [];
          if (key) {
            const edges = [...(o[key] as number[])];
            edges[1] = edges[0] ?? 0; // duplicate: not strictly increasing
            o[key] = edges;
          }
        },
      ),
  },
];

describe('melange.dev CRDs against a real API server', () => {
  const ns = useTestNamespace('crds');
  let kc: KubeConfig;
  let crds: V1CustomResourceDefinition[] = [];
  let llmCrd: V1CustomResourceDefinition | undefined;
  let version = 'v1alpha1';

  beforeAll(async () => {
    kc = ns.kc;
    const files = await yamlFilesIn(repoPath('crds'));
    // No CRDs is a failure, not a skip: the CRDs are a deliverable.
    expect(files, 'crds/ contains no *.yaml files').not.toHaveLength(0);
    crds = await applyCrdsFromDir(kc, repoPath('crds'));
    llmCrd = crds.find((c) => c.spec.group === GROUP && c.spec.names.plural === 'llmservices');
    version = llmCrd?.spec.versions.find((v) => v.storage)?.name ?? version;
  });

  it('installs every CRD in crds/ and each becomes Established', () => {
    expect(crds.length).toBeGreaterThan(0);
    const plurals = crds.filter((c) => c.spec.group === GROUP).map((c) => c.spec.names.plural).sort();
    expect(plurals).toEqual(expect.arrayContaining(EXPECTED_PLURALS));
    for (const c of crds) expect(c.status?.conditions?.find((x) => x.type === 'Established')?.status).toBe('True');
  });

  const example = async (): Promise<Obj> => {
    const docs = await readYamlDocuments(EXAMPLE);
    const svc = docs.find((d) => isObj(d) && d.kind === 'LLMService');
    if (!isObj(svc)) throw new Error(`${EXAMPLE} has no LLMService document`);
    return svc;
  };

  it('round-trips the example LLMService and writes status through the status subresource', async () => {
    expect(llmCrd, 'no llmservices.melange.dev CRD in crds/').toBeDefined();
    const { custom } = makeClients(kc);
    const svc = await example();
    const name = 'chat-roundtrip';
    const body = { ...clone(svc), metadata: { ...(isObj(svc.metadata) ? svc.metadata : {}), name, namespace: ns.name } };
    delete (body as Obj).status;
    const ref = { group: GROUP, version, namespace: ns.name, plural: 'llmservices', name };

    const created = (await custom.createNamespacedCustomObject({ ...ref, body, fieldValidation: 'Strict' })) as Obj;
    const read = (await custom.getNamespacedCustomObject(ref)) as Obj;
    // Everything the example says is kept (the server may add defaults, never drop or change fields).
    expect(read.spec).toMatchObject(svc.spec as Obj);
    expect(read.spec).toEqual(created.spec);
    const generation = (read.metadata as Obj).generation;

    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const status = {
      observedGeneration: generation,
      conditions: [{ type: 'Ready', status: 'False', reason: 'IntegrationTest', message: 'set by crds.test.ts', observedGeneration: generation, lastTransitionTime: now }],
    };
    const patched = (await custom.patchNamespacedCustomObjectStatus({ ...ref, body: { status } }, mergePatch())) as Obj;
    expect(patched.status).toMatchObject(status);
    const after = (await custom.getNamespacedCustomObject(ref)) as Obj;
    expect(after.status).toMatchObject(status);
    expect(after.spec).toEqual(read.spec);
    // A status write is not a spec change.
    expect((after.metadata as Obj).generation).toBe(generation);

    // And the main resource ignores status.
    const spec2 = (await custom.patchNamespacedCustomObject({ ...ref, body: { status: { observedGeneration: 999 } } }, mergePatch())) as Obj;
    expect((spec2.status as Obj).observedGeneration).toBe(generation);
  });

  it('rejects an LLMService violating a CEL rule with 422 and the rule message', async () => {
    expect(llmCrd, 'no llmservices.melange.dev CRD in crds/').toBeDefined();
    // Messages from the raw CRD file (wire names; client-node's model renames x-kubernetes-* fields).
    const raw = (await readCrdManifests(repoPath('crds'))).find((c) => JSON.stringify(c).includes('"plural":"llmservices"'));
    const versions = isObj(raw?.spec) && Array.isArray(raw.spec.versions) ? (raw.spec.versions as unknown[]) : [];
    const messages = [...new Set(celMessages(versions.find((v) => isObj(v) && v.name === version)))];
    expect(messages.length, 'the llmservices CRD has no x-kubernetes-validations (CEL) rules').toBeGreaterThan(0);

    const svc = await example();
    const { custom } = makeClients(kc);
    const outcomes: string[] = [];
    let rejected = false;
    for (const [i, m] of MUTATIONS.entries()) {
      const spec = clone(svc.spec) as Obj;
      if (!m.apply(spec)) continue;
      const name = `chat-invalid-${i}`;
      const ref = { group: GROUP, version, namespace: ns.name, plural: 'llmservices' };
      const body = { apiVersion: svc.apiVersion, kind: 'LLMService', metadata: { name, namespace: ns.name }, spec };
      let err: unknown;
      try {
        await custom.createNamespacedCustomObject({ ...ref, body });
        outcomes.push(`${m.description}: accepted`);
        await custom.deleteNamespacedCustomObject({ ...ref, name });
        continue;
      } catch (e) {
        err = e;
      }
      const status = kubeStatusOf(err);
      const text = status?.message ?? String(err);
      outcomes.push(`${m.description}: HTTP ${String(httpStatusOf(err))} ${text}`);
      expect(httpStatusOf(err), `expected 422 for ${m.description}: ${text}`).toBe(422);
      expect(status?.reason).toBe('Invalid');
      const matched = messages.filter((msg) => text.includes(msg));
      expect(matched, `rejection "${text}" quotes none of the CEL messages ${JSON.stringify(messages)}`).not.toHaveLength(0);
      rejected = true;
    }
    expect(
      rejected,
      `no CEL rejection; tried: ${outcomes.join(' | ') || `nothing applicable in the example (${MUTATIONS.map((m) => m.description).join(', ')})`}`,
    ).toBe(true);
  });
});
