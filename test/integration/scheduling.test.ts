import type { KubeConfig, V1Deployment, V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../support/env.js';
import { ignoreNotFound, makeClients } from '../support/kube.js';
import { createGpuNode, deleteNode, GPU_PRODUCT_LABEL, GPU_RESOURCE } from '../support/kwok-nodes.js';
import { uniqueName, useTestNamespace } from '../support/namespace.js';
import { waitFor } from '../support/wait.js';

// Needs kube-scheduler, kube-controller-manager and kwok: the `full` profile.
const full = testEnv().profile === 'full';

describe.skipIf(!full)('scheduling onto fake GPU nodes (kwok, full profile)', () => {
  const ns = useTestNamespace('sched');
  const suffix = uniqueName('p').slice(2);
  // Unique product names per run so other test files' nodes never match these selectors.
  const productA = `TEST-A100-${suffix}`;
  const productB = `TEST-L4-${suffix}`;
  const nodes = [
    { name: `gpu-a-0-${suffix}`, product: productA, gpus: 8 },
    { name: `gpu-b-0-${suffix}`, product: productB, gpus: 4 },
    { name: `gpu-b-1-${suffix}`, product: productB, gpus: 4 },
  ];
  let kc: KubeConfig;

  beforeAll(async () => {
    kc = ns.kc;
    await Promise.all(nodes.map((n) => createGpuNode(kc, n)));
  });
  afterAll(async () => {
    if (kc) await Promise.all(nodes.map((n) => deleteNode(kc, n.name)));
  });

  const gpuDeployment = (name: string, product: string): V1Deployment => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns.name },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          nodeSelector: { [GPU_PRODUCT_LABEL]: product },
          containers: [{ name: 'server', image: 'registry.invalid/melange/model-server:1', resources: { limits: { [GPU_RESOURCE]: '1' } } }],
        },
      },
    },
  });

  const podsOf = async (app: string): Promise<V1Pod[]> =>
    (await makeClients(kc).core.listNamespacedPod({ namespace: ns.name, labelSelector: `app=${app}` })).items;

  it('schedules a GPU pod onto a node of the requested type and it reaches Running', async () => {
    const { apps } = makeClients(kc);
    await apps.createNamespacedDeployment({ namespace: ns.name, body: gpuDeployment('on-b', productB) });
    const pod = await waitFor(
      async () => (await podsOf('on-b')).find((p) => p.status?.phase === 'Running' && p.spec?.nodeName),
      { what: 'pod of deployment on-b Running', timeoutMs: 90_000, intervalMs: 500 },
    );
    const bNodes = nodes.filter((n) => n.product === productB).map((n) => n.name);
    expect(bNodes).toContain(pod.spec?.nodeName);
    expect(pod.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    // kwok assigns a fake pod IP from its CIDR: data only, never dialled.
    expect(pod.status?.podIP).toMatch(/^10\.244\./);
    await waitFor(async () => ((await apps.readNamespacedDeployment({ name: 'on-b', namespace: ns.name })).status?.readyReplicas ?? 0) === 1, {
      what: 'deployment on-b readyReplicas=1',
      timeoutMs: 60_000,
      intervalMs: 500,
    });
  });

  it('leaves a pod for an absent GPU type Pending with a FailedScheduling event', async () => {
    const { apps, core } = makeClients(kc);
    await apps.createNamespacedDeployment({ namespace: ns.name, body: gpuDeployment('absent', `TEST-ABSENT-${suffix}`) });
    const pod = await waitFor(async () => (await podsOf('absent'))[0], { what: 'pod of deployment absent created', timeoutMs: 60_000, intervalMs: 500 });
    const podName = pod.metadata?.name ?? '';
    const event = await waitFor(
      async () =>
        (await core.listNamespacedEvent({ namespace: ns.name, fieldSelector: `involvedObject.name=${podName}` })).items.find(
          (e) => e.reason === 'FailedScheduling',
        ),
      { what: `FailedScheduling event for ${podName}`, timeoutMs: 60_000, intervalMs: 500 },
    );
    expect(event.message ?? '').toMatch(/didn't match Pod's node affinity\/selector|Insufficient nvidia\.com\/gpu/);
    const again = await core.readNamespacedPod({ name: podName, namespace: ns.name });
    expect(again.status?.phase).toBe('Pending');
    expect(again.spec?.nodeName).toBeUndefined();
    expect(again.status?.conditions?.find((c) => c.type === 'PodScheduled')?.status).toBe('False');
  });

  it('garbage-collects owned objects when the owner is deleted', async () => {
    const { apps, core } = makeClients(kc);
    // Deployment -> ReplicaSet -> Pod
    await apps.createNamespacedDeployment({ namespace: ns.name, body: gpuDeployment('gc', productA) });
    await waitFor(async () => (await podsOf('gc')).some((p) => p.status?.phase === 'Running'), { what: 'gc pod Running', timeoutMs: 90_000, intervalMs: 500 });
    const rsBefore = (await apps.listNamespacedReplicaSet({ namespace: ns.name, labelSelector: 'app=gc' })).items;
    expect(rsBefore).toHaveLength(1);
    await apps.deleteNamespacedDeployment({ name: 'gc', namespace: ns.name, propagationPolicy: 'Background' });
    await waitFor(
      async () =>
        (await apps.listNamespacedReplicaSet({ namespace: ns.name, labelSelector: 'app=gc' })).items.length === 0 && (await podsOf('gc')).length === 0,
      { what: 'ReplicaSet and pods of deleted deployment gc collected', timeoutMs: 90_000, intervalMs: 500 },
    );

    // ConfigMap owning another ConfigMap (no controller involved but the garbage collector).
    const owner = await core.createNamespacedConfigMap({ namespace: ns.name, body: { metadata: { name: 'owner' }, data: { a: '1' } } });
    await core.createNamespacedConfigMap({
      namespace: ns.name,
      body: {
        metadata: {
          name: 'owned',
          ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata?.uid ?? '' }],
        },
        data: { b: '2' },
      },
    });
    await core.deleteNamespacedConfigMap({ name: 'owner', namespace: ns.name });
    await waitFor(async () => (await ignoreNotFound(() => core.readNamespacedConfigMap({ name: 'owned', namespace: ns.name }))) === undefined, {
      what: 'owned ConfigMap collected',
      timeoutMs: 60_000,
      intervalMs: 500,
    });
  });
});
