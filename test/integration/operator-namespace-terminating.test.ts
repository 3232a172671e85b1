/**
 * A namespace being deleted refuses every new object in it (403, cause NamespaceTerminating). The operator
 * must recognise that refusal from the real API server — through its own pooled clients and its server-side
 * apply writer — so that a reconcile racing a namespace deletion is neither logged as an error nor retried
 * with backoff (reconciler.ts), and an event into such a namespace is not a warning (manager.ts).
 * The namespace is held in Terminating by a ConfigMap with a finalizer of this test, released at the end.
 */
import { V1MicroTime } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiMessageOf, httpStatusOf, isNamespaceTerminating, makeClients } from '../../src/controller/kube.js';
import { KubeWriter } from '../../src/controller/writer.js';
import { testEnv } from '../support/env.js';
import { ignoreNotFound, loadKubeConfig, mergePatch } from '../support/kube.js';
import { createTestNamespace } from '../support/namespace.js';
import { waitFor } from '../support/wait.js';

const env = testEnv();
const HOLD = 'melange.dev/test-hold';

async function refusal(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected the API server to refuse the write');
}

describe('operator: the API server refuses new objects in a namespace being deleted', () => {
  const kc = loadKubeConfig(env.kubeconfig);
  const clients = makeClients(kc);
  let ns = '';

  beforeAll(async () => {
    ns = await createTestNamespace(kc, 'ns-terminating');
    await clients.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'hold', finalizers: [HOLD] }, data: { why: 'keeps the namespace Terminating' } } });
    await clients.core.deleteNamespace({ name: ns });
    await waitFor(async () => (await clients.core.readNamespace({ name: ns })).status?.phase === 'Terminating', { what: `namespace ${ns} Terminating`, timeoutMs: 30_000 });
  });

  afterAll(async () => {
    if (!ns) return;
    await ignoreNotFound(() => clients.core.patchNamespacedConfigMap({ namespace: ns, name: 'hold', body: { metadata: { finalizers: null } } }, mergePatch()));
    clients.agents.destroy();
  });

  it("the operator's server-side apply of a router object, and a Deployment create: 403 NamespaceTerminating", async () => {
    const writer = new KubeWriter(clients, clients.core);
    const labels = { 'app.kubernetes.io/managed-by': 'melange-operator' };
    const cm = await refusal(writer.applyCore!({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'svc-router', namespace: ns, labels, annotations: {} }, data: { 'router.yaml': '{}' } } as never));
    expect(httpStatusOf(cm)).toBe(403);
    expect(isNamespaceTerminating(cm)).toBe(true);
    expect(apiMessageOf(cm)).toMatch(/being terminated/);
    const dep = await refusal(clients.apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name: 'svc-l4' },
        spec: { replicas: 1, selector: { matchLabels: { app: 'x' } }, template: { metadata: { labels: { app: 'x' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } },
      },
    }));
    expect(isNamespaceTerminating(dep)).toBe(true);
  });

  it('an event: the same refusal, recognised', async () => {
    const ev = await refusal(clients.events.createNamespacedEvent({
      namespace: ns,
      body: {
        metadata: { name: `svc.${Date.now().toString(16)}`, namespace: ns },
        eventTime: new V1MicroTime(new Date()),
        reportingController: 'melange.dev/operator',
        reportingInstance: 'test',
        regarding: { kind: 'LLMService', apiVersion: 'melange.dev/v1alpha1', name: 'svc', namespace: ns },
        type: 'Normal',
        reason: 'AllocationChanged',
        action: 'Plan',
        note: 'test',
      },
    }));
    expect(isNamespaceTerminating(ev)).toBe(true);
  });

  it('an update of an existing object there is still allowed (only creation is refused)', async () => {
    const cm = await clients.core.patchNamespacedConfigMap({ namespace: ns, name: 'hold', body: { data: { why: 'still writable' } } }, mergePatch());
    expect(cm.data?.why).toBe('still writable');
  });

  it('a 404 is not mistaken for it', async () => {
    const err = await refusal(clients.core.readNamespacedConfigMap({ namespace: ns, name: 'absent' }));
    expect(httpStatusOf(err)).toBe(404);
    expect(isNamespaceTerminating(err)).toBe(false);
  });
});
