/**
 * GPU-pool test helpers (full profile):
 * - a small test "cloud": turns Cluster API MachineDeployment replicas into kwok GPU Nodes (one Node per
 *   replica, labelled with the MachineDeployment and the GPU product from its annotations) and reports
 *   status.replicas/readyReplicas back, like a CAPI infrastructure provider would;
 * - `runPoolController`: the operator's GPUPoolController run in-process (the operator binary does not
 *   enable it yet), fed by API reads of the GPUPools and LLMServices instead of informer caches.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { GROUP, VERSION, parseGPUPool, type GPUPool } from '../../src/api/index.js';
import { GPUPoolController, kubeGPUPoolClient, type EventSink } from '../../src/controller/index.js';
import { createLogger } from '../../src/controller/logger.js';
import { makeClients, mergePatch } from './kube.js';
import { createGpuNode, deleteNode } from './kwok-nodes.js';

export const MD_LABEL = 'melange-test/machinedeployment';
/** Annotations of a MachineDeployment the cloud reads: the GPU product label value and GPUs per node. */
export const CLOUD_PRODUCT_ANNOTATION = 'melange-test/gpu-product';
export const CLOUD_GPUS_ANNOTATION = 'melange-test/gpus-per-node';
/** Custom-object coordinates the pool tests use: Cluster API MachineDeployments, Karpenter NodePools, GPUPools. */
export const CAPI = { group: 'cluster.x-k8s.io', version: 'v1beta1', plural: 'machinedeployments' };
export const KARP = { group: 'karpenter.sh', version: 'v1', plural: 'nodepools' };
export const GP = { group: 'melange.dev', version: 'v1alpha1', plural: 'gpupools' };

type Obj = Record<string, any>;

export interface TestCloud {
  /** Nodes the cloud currently runs for a MachineDeployment. */
  nodesOf(namespace: string, name: string): Promise<string[]>;
  stop(): Promise<void>;
}

/** Reconciles every MachineDeployment of `namespace` to kwok Nodes every `intervalMs`. */
export function startTestCloud(kc: KubeConfig, namespace: string, intervalMs = 300): TestCloud {
  const { custom, core } = makeClients(kc);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const selectorOf = (name: string) => `${MD_LABEL}=${namespace}.${name}`;
  const nodesOf = async (ns: string, name: string) =>
    (await core.listNode({ labelSelector: `${MD_LABEL}=${ns}.${name}` })).items.map((n) => n.metadata?.name ?? '').sort();

  const pass = async () => {
    const mds = ((await custom.listNamespacedCustomObject({ ...CAPI, namespace })) as { items: Obj[] }).items;
    for (const md of mds) {
      const name = md.metadata.name as string;
      const want = Number(md.spec?.replicas ?? 0);
      const product = md.metadata.annotations?.[CLOUD_PRODUCT_ANNOTATION] as string;
      const gpus = Number(md.metadata.annotations?.[CLOUD_GPUS_ANNOTATION] ?? 1);
      const have = await nodesOf(namespace, name);
      if (have.length < want) {
        const used = new Set(have);
        const add: string[] = [];
        for (let i = 0; add.length < want - have.length; i++) if (!used.has(`${name}-${i}`)) add.push(`${name}-${i}`);
        await Promise.all(add.map((n) => createGpuNode(kc, { name: n, product, gpus, labels: { [MD_LABEL]: `${namespace}.${name}` } })));
      } else if (have.length > want) {
        // Scale down removes the newest (highest-index) machines first.
        const byIndex = have.sort((a, b) => Number(b.split('-').pop()) - Number(a.split('-').pop()));
        await Promise.all(byIndex.slice(0, have.length - want).map((n) => deleteNode(kc, n)));
      }
      const now = (await nodesOf(namespace, name)).length;
      if (md.status?.replicas !== now || md.status?.readyReplicas !== now) {
        await custom.patchNamespacedCustomObjectStatus(
          { ...CAPI, namespace, name, body: { status: { replicas: now, readyReplicas: now, selector: selectorOf(name) } } },
          mergePatch(),
        );
      }
    }
  };
  const tick = () => {
    if (stopped) return;
    running = pass()
      .catch(() => undefined)
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, intervalMs);
      });
  };
  tick();
  return {
    nodesOf,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
      const nodes = (await core.listNode({ labelSelector: MD_LABEL })).items.filter((n) => n.metadata?.labels?.[MD_LABEL]?.startsWith(`${namespace}.`));
      await Promise.all(nodes.map((n) => deleteNode(kc, n.metadata?.name ?? '')));
    },
  };
}

export interface PoolControllerRun {
  events: string[];
  stop(): Promise<void>;
}

/** Runs GPUPoolController passes every `intervalMs` over the named pools and the LLMServices of `namespace`. */
export function runPoolController(kc: KubeConfig, opts: { pools: string[]; namespace: string; intervalMs?: number }): PoolControllerRun {
  const { custom } = makeClients(kc);
  let pools: GPUPool[] = [];
  let services: unknown[] = [];
  const events: string[] = [];
  const sink: EventSink = { emit: async (_r, type, reason, _a, note) => void events.push(`${type} ${reason}: ${note}`) };
  const ctl = new GPUPoolController({ pools: () => pools, services: () => services, client: kubeGPUPoolClient(kc), events: sink, log: createLogger('silent') });
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  const pass = async () => {
    const raw = await Promise.all(opts.pools.map((name) => custom.getClusterCustomObject({ group: GROUP, version: VERSION, plural: 'gpupools', name })));
    pools = raw.flatMap((o) => {
      const r = parseGPUPool(o, { strict: false });
      return r.ok ? [r.value] : [];
    });
    services = ((await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: 'llmservices', namespace: opts.namespace })) as { items: unknown[] }).items;
    await ctl.reconcileAll();
  };
  const tick = () => {
    if (stopped) return;
    running = pass()
      .catch(() => undefined)
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, opts.intervalMs ?? 500);
      });
  };
  tick();
  return {
    events,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
