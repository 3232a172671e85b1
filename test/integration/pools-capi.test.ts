/**
 * Issue 6 (P5 · GPU pools), provider ClusterAPI end to end (full profile): fixture CRDs of Cluster API's
 * MachineDeployment and Karpenter's NodePool; a test "cloud" turns MachineDeployment replicas into kwok GPU
 * Nodes. An LLMService needing N GPUs of a pool → the GPUPool reconciler scales the MachineDeployment through
 * /scale → Nodes appear → GPUPool status follows → the model-server pods run. maxNodes below the demand →
 * the LLMService is Ready=False/CapacityExhausted with the numbers, and an event.
 * The GPUPool reconciler runs in-process (runPoolController): the operator binary does not enable it yet.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyCrdsFromDir } from '../support/crds.js';
import { testEnv } from '../support/env.js';
import { ignoreNotFound, loadKubeConfig, makeClients, mergePatch, ssa } from '../support/kube.js';
import { uniqueName, useTestNamespace } from '../support/namespace.js';
import { applyCr, conditionOf, deploymentsOf, waitForService } from '../support/operator-fixtures.js';
import { tinyService } from '../support/operator-objects.js';
import { startOperator, stopOperators, type OperatorProcess } from '../support/operator-process.js';
import { repoPath } from '../support/paths.js';
import { CAPI, KARP, GP, CLOUD_GPUS_ANNOTATION, CLOUD_PRODUCT_ANNOTATION, runPoolController, startTestCloud, type PoolControllerRun, type TestCloud } from '../support/pools-cloud.js';
import { waitFor } from '../support/wait.js';

const env = testEnv();
type Obj = Record<string, any>;

describe.skipIf(env.profile !== 'full')('GPU pools: ClusterAPI MachineDeployment → kwok nodes → pods', () => {
  const ns = useTestNamespace('pools-capi');
  const suffix = uniqueName('pc').slice(3);
  const tiny = tinyService('svc', suffix, 5); // ceil(5 × 1.1) = 6 replicas × 1 GPU
  const md = `md-${suffix}`.slice(0, 40);
  const nodePool = `np-${suffix}`.slice(0, 40);
  let kc: KubeConfig;
  let cloud: TestCloud | undefined;
  let pools: PoolControllerRun | undefined;
  const ops: OperatorProcess[] = [];

  const pool = async () => (await makeClients(kc).custom.getClusterCustomObject({ ...GP, name: tiny.poolName })) as Obj;
  const mdObj = async () => (await makeClients(kc).custom.getNamespacedCustomObject({ ...CAPI, namespace: ns.name, name: md })) as Obj;

  beforeAll(async () => {
    kc = loadKubeConfig(env.kubeconfig);
    await applyCrdsFromDir(kc, repoPath('crds'));
    await applyCrdsFromDir(kc, repoPath('test', 'fixtures', 'crds'));
    const { custom } = makeClients(kc);
    await custom.createNamespacedCustomObject({
      ...CAPI,
      namespace: ns.name,
      body: {
        apiVersion: 'cluster.x-k8s.io/v1beta1',
        kind: 'MachineDeployment',
        metadata: { name: md, namespace: ns.name, annotations: { [CLOUD_PRODUCT_ANNOTATION]: tiny.product, [CLOUD_GPUS_ANNOTATION]: '2' } },
        spec: {
          clusterName: 'test',
          replicas: 0,
          selector: { matchLabels: { 'cluster.x-k8s.io/deployment-name': md } },
          template: { metadata: { labels: { 'cluster.x-k8s.io/deployment-name': md } }, spec: { clusterName: 'test', version: 'v1.36.3' } },
        },
      },
    });
    const p = structuredClone(tiny.pool) as Obj;
    p.spec.gpusPerNode = 2;
    p.spec.provider = { type: 'ClusterAPI', clusterAPI: { namespace: ns.name, name: md } };
    await applyCr(kc, p);
    await applyCr(kc, tiny.profile, ns.name);
    cloud = startTestCloud(kc, ns.name);
    pools = runPoolController(kc, { pools: [tiny.poolName], namespace: ns.name, intervalMs: 300 });
    ops.push(await startOperator({ kubeconfig: env.kubeconfig, leaseNamespace: ns.name, watchNamespace: ns.name, logDir: `${env.runDir}/logs`, name: 'op-pools', leaderElect: false }));
  });
  afterAll(async () => {
    await stopOperators(ops);
    await pools?.stop();
    await cloud?.stop();
    if (kc) {
      await ignoreNotFound(() => makeClients(kc).custom.deleteClusterCustomObject({ ...GP, name: tiny.poolName }));
      await ignoreNotFound(() => makeClients(kc).custom.deleteClusterCustomObject({ ...KARP, name: nodePool }));
    }
  });

  it('6 GPUs demanded → MachineDeployment scaled to 3 nodes via /scale → nodes Ready → status follows → pods run', async () => {
    const p0 = await pool();
    expect(p0.status).toMatchObject({ demandedGPUs: 0, desiredNodes: 0, readyNodes: 0 });
    await applyCr(kc, tiny.service, ns.name);
    await waitForService(kc, ns.name, 'svc', (s) => s.status?.allocation?.[0]?.replicas === 6, 'planned 6 replicas', 60_000);
    await waitFor(async () => (await mdObj()).spec.replicas === 3 || undefined, { what: 'MachineDeployment scaled to 3', timeoutMs: 30_000 });
    await waitFor(async () => ((await cloud!.nodesOf(ns.name, md)).length === 3) || undefined, { what: '3 cloud nodes', timeoutMs: 60_000 });
    const st = await waitFor(async () => {
      const s = (await pool()).status;
      return s?.readyNodes === 3 ? s : undefined;
    }, { what: 'GPUPool readyNodes 3', timeoutMs: 30_000 });
    expect(st).toMatchObject({ desiredNodes: 3, readyNodes: 3, demandedGPUs: 6, allocatableGPUs: 6 });
    expect(st.conditions.find((c: Obj) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'NodesReady' });
    const deps = await waitFor(async () => {
      const d = (await deploymentsOf(kc, ns.name, 'svc')).get(tiny.poolName);
      return d?.status?.readyReplicas === 6 ? d : undefined;
    }, { what: '6 model-server pods ready on the cloud nodes', timeoutMs: 90_000 });
    expect(deps.status?.readyReplicas).toBe(6);
    const pods = await makeClients(kc).core.listNamespacedPod({ namespace: ns.name, labelSelector: `melange.dev/service=svc` });
    const onCloud = pods.items.filter((x) => x.status?.phase === 'Running' && x.spec?.nodeName?.startsWith(md));
    expect(onCloud).toHaveLength(6);
  });

  it('maxNodes below the demand → LLMService Ready=False CapacityExhausted with the numbers, an event; pool capped', async () => {
    await makeClients(kc).custom.patchClusterCustomObject({ ...GP, name: tiny.poolName, body: { spec: { maxNodes: 2 } } }, mergePatch());
    const s = await waitForService(kc, ns.name, 'svc', (x) => conditionOf(x, 'Ready')?.reason === 'CapacityExhausted', 'CapacityExhausted', 60_000);
    expect(conditionOf(s, 'Ready')).toMatchObject({ status: 'False' });
    // 5 req/s with the default 10% headroom: 5.5 req/s need 6 replicas; maxNodes 2 × 2 GPUs caps the pool at 4.
    expect(conditionOf(s, 'Ready')?.message).toMatch(/≤ 4\) cannot carry 5\.500 req\/s under the SLO\. Keeping the last allocation \(6xTINY\)/);
    const ev = await waitFor(async () => {
      const list = await makeClients(kc).events.listNamespacedEvent({ namespace: ns.name });
      return list.items.find((e) => e.reason === 'CapacityExhausted' && e.regarding?.name === 'svc');
    }, { what: 'a CapacityExhausted event', timeoutMs: 30_000 });
    expect(ev.type).toBe('Warning');
    // Best effort: the last allocation (6 replicas) keeps running where it can; the pool is held at maxNodes.
    await waitFor(async () => (await mdObj()).spec.replicas === 2 || undefined, { what: 'MachineDeployment capped at 2', timeoutMs: 30_000 });
    const st = await waitFor(async () => {
      const x = (await pool()).status;
      return x?.conditions?.find((c: Obj) => c.type === 'Ready')?.reason === 'CapacityExhausted' && x.readyNodes === 2 ? x : undefined;
    }, { what: 'GPUPool CapacityExhausted at 2 nodes', timeoutMs: 60_000 });
    expect(st.conditions.find((c: Obj) => c.type === 'Ready').message).toBe('demand 6 GPUs needs 3 nodes of 2 GPUs; maxNodes is 2');
    expect(pools!.events).toContain('Warning CapacityExhausted: demand 6 GPUs needs 3 nodes of 2 GPUs; maxNodes is 2');
  });

  it('Karpenter: only spec.limits["nvidia.com/gpu"] is applied on the NodePool; other fields and managers are kept', async () => {
    const { custom } = makeClients(kc);
    await custom.patchClusterCustomObject(
      {
        ...KARP,
        name: nodePool,
        fieldManager: 'karpenter-admin',
        force: true,
        body: {
          apiVersion: 'karpenter.sh/v1',
          kind: 'NodePool',
          metadata: { name: nodePool },
          spec: {
            limits: { cpu: '1000' },
            template: { spec: { nodeClassRef: { group: 'karpenter.k8s.aws', kind: 'EC2NodeClass', name: 'default' }, requirements: [{ key: 'karpenter.k8s.aws/instance-gpu-name', operator: 'In', values: ['a10g'] }] } },
          },
        },
      },
      ssa(),
    );
    await custom.patchClusterCustomObject({ ...GP, name: tiny.poolName, body: { spec: { maxNodes: null, provider: { type: 'Karpenter', clusterAPI: null, karpenter: { nodePool } } } } }, mergePatch());
    const np = await waitFor(async () => {
      const o = (await custom.getClusterCustomObject({ ...KARP, name: nodePool })) as Obj;
      return o.spec.limits['nvidia.com/gpu'] === '6' ? o : undefined;
    }, { what: 'NodePool nvidia.com/gpu limit 6 (3 nodes × 2 GPUs)', timeoutMs: 30_000 });
    expect(np.spec.limits.cpu).toBe('1000');
    expect(np.spec.template.spec.requirements).toHaveLength(1);
    const ours = (np.metadata.managedFields as Obj[]).find((m) => m.manager === 'melange-operator');
    expect(JSON.stringify(ours!.fieldsV1)).toBe(JSON.stringify({ 'f:spec': { 'f:limits': { 'f:nvidia.com/gpu': {} } } }));
  });

  it('Scale: any kind with a /scale subresource, plural found by discovery (here the MachineDeployment again)', async () => {
    const { custom } = makeClients(kc);
    await custom.patchClusterCustomObject(
      { ...GP, name: tiny.poolName, body: { spec: { provider: { type: 'Scale', karpenter: null, scale: { apiVersion: 'cluster.x-k8s.io/v1beta1', kind: 'MachineDeployment', namespace: ns.name, name: md } } } } },
      mergePatch(),
    );
    // maxNodes was lifted: 6 GPUs → 3 nodes again, through the generic /scale path.
    await waitFor(async () => (await mdObj()).spec.replicas === 3 || undefined, { what: 'MachineDeployment back at 3 via Scale', timeoutMs: 30_000 });
    const st = await waitFor(async () => {
      const x = (await pool()).status;
      return x?.readyNodes === 3 && x.conditions?.find((c: Obj) => c.type === 'Ready')?.status === 'True' ? x : undefined;
    }, { what: 'GPUPool Ready with 3 nodes', timeoutMs: 60_000 });
    expect(st).toMatchObject({ desiredNodes: 3, readyNodes: 3, demandedGPUs: 6, allocatableGPUs: 6 });
  });
});
