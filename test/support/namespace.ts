/** One fresh namespace per test (file or case), created through client-node. */
import { randomBytes } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll } from 'vitest';
import { testEnv } from './env.js';
import { ignoreNotFound, loadKubeConfig, makeClients } from './kube.js';

/** A unique DNS-1123 label: `<prefix>-<time>-<random>`, at most 63 chars. */
export function uniqueName(prefix = 't'): string {
  const clean = prefix.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 't';
  return `${clean}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** Creates a namespace with a unique name (labelled melange.dev/test=true) and returns the name. */
export async function createTestNamespace(kc: KubeConfig, prefix = 't'): Promise<string> {
  const name = uniqueName(prefix);
  await makeClients(kc).core.createNamespace({ body: { metadata: { name, labels: { 'melange.dev/test': 'true' } } } });
  return name;
}

/**
 * Deletes a namespace without waiting (with the full profile KCM finishes the deletion; with the api
 * profile namespaces stay Terminating, which is harmless because names are unique).
 */
export async function deleteTestNamespace(kc: KubeConfig, name: string): Promise<void> {
  if (process.env.MELANGE_TEST_KEEP_NAMESPACES === '1') return;
  await ignoreNotFound(() => makeClients(kc).core.deleteNamespace({ name, propagationPolicy: 'Background' }));
}

export interface TestNamespace {
  /** The namespace name (available from beforeAll on). */
  readonly name: string;
  readonly kc: KubeConfig;
}

/**
 * Registers beforeAll/afterAll hooks that create a unique namespace for the enclosing describe/file
 * and delete it afterwards. Set MELANGE_TEST_KEEP_NAMESPACES=1 to keep them for debugging.
 *
 *   const ns = useTestNamespace('my-feature');
 *   it('...', async () => { await apps.createNamespacedDeployment({ namespace: ns.name, body }) });
 */
export function useTestNamespace(prefix = 't'): TestNamespace {
  let name: string | undefined;
  let kc: KubeConfig | undefined;
  beforeAll(async () => {
    kc = loadKubeConfig(testEnv().kubeconfig);
    name = await createTestNamespace(kc, prefix);
  });
  afterAll(async () => {
    if (kc && name) await deleteTestNamespace(kc, name);
  });
  return {
    get name() {
      if (!name) throw new Error('useTestNamespace: the namespace exists only from beforeAll on');
      return name;
    },
    get kc() {
      if (!kc) throw new Error('useTestNamespace: the kubeconfig is loaded in beforeAll');
      return kc;
    },
  };
}
