/**
 * Fixtures shared by the operator integration tests: the examples applied to a namespace, kwok GPU nodes
 * matching the example pools, kubectl, typed reads of LLMServices and their Deployments, and the expected
 * plan computed offline with the same mapping and solver the operator uses.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { KubeConfig, V1Deployment } from '@kubernetes/client-node';
import { GROUP, VERSION, parseLLMService, parseGPUPool, parseGPUProfile, type GPUPool, type GPUProfile, type LLMService } from '../../src/api/index.js';
import { instanceFromService } from '../../src/solver/from-api.js';
import { isSuccess, loadHighsEngine, solve, type SolveSuccess } from '../../src/solver/index.js';
import { readYamlDocuments } from './crds.js';
import { makeClients, mergePatch, ssa } from './kube.js';
import { createGpuNode, deleteNode } from './kwok-nodes.js';
import { repoPath } from './paths.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);
export const FIXTURE_MANAGER = 'melange-test';
type Obj = Record<string, unknown>;

export const crRef = (namespace: string, plural: string) => ({ group: GROUP, version: VERSION, namespace, plural });

/** The raw documents of an example file. */
export async function exampleDocs(file: string): Promise<Obj[]> {
  return (await readYamlDocuments(repoPath('examples', file))) as Obj[];
}

/** Server-side applies a melange.dev object (namespaced unless it is a GPUPool). */
export async function applyCr(kc: KubeConfig, doc: Obj, namespace?: string): Promise<Obj> {
  const { custom } = makeClients(kc);
  const kind = doc.kind as string;
  const meta = { ...(doc.metadata as Obj) };
  const name = meta.name as string;
  if (kind === 'GPUPool') {
    return (await custom.patchClusterCustomObject(
      { group: GROUP, version: VERSION, plural: 'gpupools', name, body: { ...doc, metadata: meta }, fieldManager: FIELD(), force: true },
      ssa(),
    )) as Obj;
  }
  const ns = namespace ?? (meta.namespace as string);
  meta.namespace = ns;
  const plural = kind === 'LLMService' ? 'llmservices' : 'gpuprofiles';
  return (await custom.patchNamespacedCustomObject(
    { ...crRef(ns, plural), name, body: { ...doc, metadata: meta }, fieldManager: FIELD(), force: true },
    ssa(),
  )) as Obj;
}
const FIELD = () => FIXTURE_MANAGER;

/** JSON merge patch of an LLMService's spec; returns the new generation. */
export async function patchServiceSpec(kc: KubeConfig, namespace: string, name: string, spec: Obj): Promise<number> {
  const { custom } = makeClients(kc);
  const r = (await custom.patchNamespacedCustomObject({ ...crRef(namespace, 'llmservices'), name, body: { spec } }, mergePatch())) as Obj;
  return Number((r.metadata as Obj).generation);
}

export async function getService(kc: KubeConfig, namespace: string, name: string): Promise<LLMService> {
  const raw = await makeClients(kc).custom.getNamespacedCustomObject({ ...crRef(namespace, 'llmservices'), name });
  const r = parseLLMService(raw, { strict: false });
  if (!r.ok) throw new Error(`LLMService ${namespace}/${name} does not parse: ${JSON.stringify(r.errors)}`);
  return r.value;
}

export const conditionOf = (s: LLMService, type: string) => s.status?.conditions?.find((c) => c.type === type);

/** Polls the LLMService until `pred` holds. */
export function waitForService(kc: KubeConfig, namespace: string, name: string, pred: (s: LLMService) => boolean, what: string, timeoutMs = 120_000): Promise<LLMService> {
  return waitFor(
    async () => {
      const s = await getService(kc, namespace, name);
      return pred(s) ? s : undefined;
    },
    { what: `LLMService ${namespace}/${name}: ${what}`, timeoutMs, intervalMs: 250 },
  );
}

/** Deployments controlled by the named LLMService, by pool label. */
export async function deploymentsOf(kc: KubeConfig, namespace: string, service: string): Promise<Map<string, V1Deployment>> {
  const list = await makeClients(kc).apps.listNamespacedDeployment({ namespace, labelSelector: `melange.dev/service=${service}` });
  return new Map(list.items.map((d) => [d.metadata?.labels?.['melange.dev/pool'] ?? '', d]));
}

export function replicasByPool(deps: Map<string, V1Deployment>): Record<string, number> {
  return Object.fromEntries([...deps].map(([p, d]) => [p, d.spec?.replicas ?? 0]));
}

/** The plan `melangectl plan` makes for this service: the operator must land on the same replicas. */
export async function expectedPlan(service: unknown, profiles: unknown[], pools: unknown[]): Promise<SolveSuccess & { replicas: Record<string, number> }> {
  const svc = parseLLMService(service, { strict: false });
  if (!svc.ok) throw new Error(JSON.stringify(svc.errors));
  const ps = profiles.map((p) => parseGPUProfile(p, { strict: false })).flatMap((r) => (r.ok ? [r.value] : [])) as GPUProfile[];
  const gs = pools.map((p) => parseGPUPool(p, { strict: false })).flatMap((r) => (r.ok ? [r.value] : [])) as GPUPool[];
  const inst = instanceFromService(svc.value, { profiles: ps, pools: gs });
  if (!inst.ok) throw new Error(JSON.stringify(inst.errors));
  const r = solve(inst.value.input, await loadHighsEngine());
  if (!isSuccess(r)) throw new Error(`expected plan failed: ${r.message}`);
  return { ...r, replicas: Object.fromEntries(r.allocation.map((a) => [a.id, a.replicas])) };
}

export interface NodeSpec {
  name: string;
  product: string;
  gpus: number;
}

/** kwok GPU nodes, tainted nvidia.com/gpu:NoSchedule like real GPU nodes (the pools tolerate it). */
export async function createGpuNodes(kc: KubeConfig, nodes: NodeSpec[]): Promise<void> {
  await Promise.all(
    nodes.map((n) => createGpuNode(kc, { ...n, taints: [{ key: 'nvidia.com/gpu', value: 'present', effect: 'NoSchedule' }] })),
  );
}

export async function deleteGpuNodes(kc: KubeConfig, nodes: NodeSpec[]): Promise<void> {
  await Promise.all(nodes.map((n) => deleteNode(kc, n.name)));
}

/** Runs the kubectl of the test binaries against `kubeconfig`; resolves with stdout (rejects on failure). */
export async function kubectl(binDir: string, kubeconfig: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const { stdout } = await run(join(binDir, 'kubectl'), [`--kubeconfig=${kubeconfig}`, ...args], { timeout: timeoutMs, encoding: 'utf8' });
  return stdout;
}
