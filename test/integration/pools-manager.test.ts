/**
 * Issue 6 (P5 · GPU pools): the GPUPool reconciler as wired into the Manager (ManagerOptions.gpuPools),
 * fed by the Manager's own informer caches. One Manager in-process (leader election off) reconciles the
 * LLMService and the GPUPool: 3 GPUs of demand → MachineDeployment scaled to 2 nodes of 2 GPUs → the test
 * cloud's kwok nodes → GPUPool status; the Manager stops cleanly.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyCrdsFromDir } from '../support/crds.js';
import { startInProcessManager, type InProcessManager } from '../support/in-process-manager.js';
import { testEnv } from '../support/env.js';
import { ignoreNotFound, loadKubeConfig, makeClients } from '../support/kube.js';
import { uniqueName, useTestNamespace } from '../support/namespace.js';
import { applyCr, waitForService } from '../support/operator-fixtures.js';
import { tinyService } from '../support/operator-objects.js';
import { repoPath } from '../support/paths.js';
import { CAPI, GP, CLOUD_GPUS_ANNOTATION, CLOUD_PRODUCT_ANNOTATION, startTestCloud, type TestCloud } from '../support/pools-cloud.js';
import { waitFor } from '../support/wait.js';

const env = testEnv();
type Obj = Record<string, any>;

describe.skipIf(env.profile !== 'full')('GPU pools: the Manager runs the GPUPool reconciler when enabled', () => {
  const ns = useTestNamespace('pools-mgr');
  const suffix = uniqueName('pm').slice(3);
  const tiny = tinyService('svc', suffix, 2.5); // ceil(2.5 × 1.1) = 3 replicas × 1 GPU
  const md = `md-${suffix}`.slice(0, 40);
  let kc: KubeConfig;
  let cloud: TestCloud | undefined;
  let manager: InProcessManager | undefined;

  beforeAll(async () => {
    kc = loadKubeConfig(env.kubeconfig);
    await applyCrdsFromDir(kc, repoPath('crds'));
    await applyCrdsFromDir(kc, repoPath('test', 'fixtures', 'crds'));
    await makeClients(kc).custom.createNamespacedCustomObject({
      ...CAPI,
      namespace: ns.name,
      body: {
        apiVersion: 'cluster.x-k8s.io/v1beta1',
        kind: 'MachineDeployment',
        metadata: { name: md, namespace: ns.name, annotations: { [CLOUD_PRODUCT_ANNOTATION]: tiny.product, [CLOUD_GPUS_ANNOTATION]: '2' } },
        spec: { clusterName: 'test', replicas: 0, selector: { matchLabels: { md } }, template: { metadata: { labels: { md } } } },
      },
    });
    const p = structuredClone(tiny.pool) as Obj;
    p.spec.gpusPerNode = 2;
    p.spec.provider = { type: 'ClusterAPI', clusterAPI: { namespace: ns.name, name: md } };
    await applyCr(kc, p);
    await applyCr(kc, tiny.profile, ns.name);
    cloud = startTestCloud(kc, ns.name);
    manager = await startInProcessManager(kc, ns.name, 'pools-mgr-test', { gpuPools: { resyncMs: 300 } });
  });
  afterAll(async () => {
    await manager?.stop();
    await cloud?.stop();
    if (kc) await ignoreNotFound(() => makeClients(kc).custom.deleteClusterCustomObject({ ...GP, name: tiny.poolName }));
  });

  it('demand → MachineDeployment replicas → nodes → GPUPool status, then a clean stop', async () => {
    await applyCr(kc, tiny.service, ns.name);
    await waitForService(kc, ns.name, 'svc', (s) => s.status?.allocation?.[0]?.replicas === 3, 'planned 3 replicas', 60_000);
    await waitFor(async () => ((await makeClients(kc).custom.getNamespacedCustomObject({ ...CAPI, namespace: ns.name, name: md })) as Obj).spec.replicas === 2 || undefined, {
      what: 'MachineDeployment scaled to 2 by the Manager',
      timeoutMs: 30_000,
    });
    const st = await waitFor(async () => {
      const s = ((await makeClients(kc).custom.getClusterCustomObject({ ...GP, name: tiny.poolName })) as Obj).status;
      return s?.readyNodes === 2 ? s : undefined;
    }, { what: 'GPUPool readyNodes 2', timeoutMs: 60_000 });
    expect(st).toMatchObject({ desiredNodes: 2, readyNodes: 2, demandedGPUs: 3, allocatableGPUs: 4 });
    expect(await manager!.stop()).toBe(0);
  });
});
