import type { V1Deployment } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { KUBE_VERSION } from '../support/control-plane.js';
import { testEnv } from '../support/env.js';
import { expectApiError, httpStatusOf, kubeStatusOf, makeClients, ssa } from '../support/kube.js';
import { useTestNamespace } from '../support/namespace.js';

const deployment = (namespace: string, replicas: number): V1Deployment => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'ssa-demo', namespace },
  spec: {
    replicas,
    selector: { matchLabels: { app: 'ssa-demo' } },
    template: {
      metadata: { labels: { app: 'ssa-demo' } },
      spec: { containers: [{ name: 'main', image: 'registry.invalid/melange/noop:1' }] },
    },
  },
});

describe('real control plane', () => {
  const ns = useTestNamespace('cp');

  it('serves /version with the pinned release (real version ldflags)', async () => {
    const { version } = makeClients(ns.kc);
    const info = await version.getCode();
    expect(info.gitVersion).toBe(KUBE_VERSION);
    expect(info.major).toBe('1');
    expect(info.minor).toBe(KUBE_VERSION.split('.')[1]);
    expect(testEnv().apiUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it('enforces server-side apply field ownership: conflict without force, ownership moves with force', async () => {
    const { apps } = makeClients(ns.kc);
    const name = 'ssa-demo';
    const namespace = ns.name;

    const created = await apps.patchNamespacedDeployment(
      { name, namespace, body: deployment(namespace, 1), fieldManager: 'manager-a', fieldValidation: 'Strict' },
      ssa(),
    );
    expect(created.spec?.replicas).toBe(1);

    // Manager B applies a different value for a field manager A owns: 409 Conflict.
    const err = await expectApiError(() =>
      apps.patchNamespacedDeployment({ name, namespace, body: deployment(namespace, 3), fieldManager: 'manager-b' }, ssa()),
    );
    expect(httpStatusOf(err)).toBe(409);
    const status = kubeStatusOf(err);
    expect(status?.reason).toBe('Conflict');
    expect(status?.message ?? '').toContain('manager-a');
    expect(status?.details?.causes?.some((c) => c.field === '.spec.replicas')).toBe(true);
    expect((await apps.readNamespacedDeployment({ name, namespace })).spec?.replicas).toBe(1);

    // With force, B wins and becomes the (only) owner of spec.replicas.
    const forced = await apps.patchNamespacedDeployment(
      { name, namespace, body: deployment(namespace, 3), fieldManager: 'manager-b', force: true },
      ssa(),
    );
    expect(forced.spec?.replicas).toBe(3);
    const owners = (forced.metadata?.managedFields ?? [])
      .filter((m) => m.operation === 'Apply')
      .filter((m) => JSON.stringify(m.fieldsV1 ?? {}).includes('"f:replicas"'))
      .map((m) => m.manager);
    expect(owners).toEqual(['manager-b']);
  });
});
