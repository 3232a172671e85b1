/**
 * Issue 4 acceptance: "a conflicting write (409) is retried". The operator talks to the real kube-apiserver
 * through a pass-through proxy (test/support/conflict-proxy.ts) that, just before forwarding the operator's
 * first status write, changes the LLMService itself — so the API server answers that write with a real 409
 * (stale resourceVersion). The operator must re-read, retry, and end with the right status, without
 * restarting and without losing the change someone else made.
 */
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConflictProxy, type ConflictProxy } from '../support/conflict-proxy.js';
import { applyCrdsFromDir } from '../support/crds.js';
import { testEnv } from '../support/env.js';
import { ignoreNotFound, loadKubeConfig, makeClients, mergePatch } from '../support/kube.js';
import { uniqueName, useTestNamespace } from '../support/namespace.js';
import { applyCr, conditionOf, crRef, waitForService } from '../support/operator-fixtures.js';
import { tinyReplicas, tinyService } from '../support/operator-objects.js';
import { startOperator, stopOperators, type OperatorProcess } from '../support/operator-process.js';
import { repoPath } from '../support/paths.js';
import { pkiPaths, writeKubeconfig } from '../support/pki.js';
import { waitFor } from '../support/wait.js';

const env = testEnv();

describe('operator: a 409 on the status write is retried', () => {
  const ns = useTestNamespace('op-conflict');
  const suffix = uniqueName('c').slice(2);
  const tiny = tinyService('svc', `conflict-${suffix}`, 2);
  let kc: KubeConfig;
  let proxy: ConflictProxy | undefined;
  let op: OperatorProcess | undefined;

  beforeAll(async () => {
    kc = loadKubeConfig(env.kubeconfig);
    await applyCrdsFromDir(kc, repoPath('crds'));
    await applyCr(kc, tiny.pool);
    await applyCr(kc, tiny.profile, ns.name);
    const pki = pkiPaths(join(env.runDir, 'pki'));
    proxy = await startConflictProxy(env.apiUrl, pki);
    const opKubeconfig = join(env.runDir, `conflict-${suffix}.kubeconfig`);
    await writeKubeconfig(opKubeconfig, proxy.url, pki.caCrt, pki.adminCrt, pki.adminKey);
    op = await startOperator({ kubeconfig: opKubeconfig, leaseNamespace: ns.name, watchNamespace: ns.name, logDir: `${env.runDir}/logs`, name: 'op-conflict' });
  });

  afterAll(async () => {
    await stopOperators([op]);
    await proxy?.close();
    if (kc) {
      const { custom } = makeClients(kc);
      await ignoreNotFound(() => custom.deleteClusterCustomObject({ group: 'melange.dev', version: 'v1alpha1', plural: 'gpupools', name: tiny.poolName }));
    }
  });

  it('the API server rejects the first status write with 409; the operator retries and converges', async () => {
    const statusPath = `/apis/melange.dev/v1alpha1/namespaces/${ns.name}/llmservices/svc/status`;
    const { custom } = makeClients(kc);
    let interfered = false;
    proxy!.conflictOn(
      (method, path) => method === 'PATCH' && path.split('?')[0] === statusPath,
      async () => {
        // Someone else's write lands between the operator's read and its status patch.
        await custom.patchNamespacedCustomObject(
          { ...crRef(ns.name, 'llmservices'), name: 'svc', body: { metadata: { labels: { 'example.com/touched': 'yes' } } } },
          mergePatch(),
        );
        interfered = true;
      },
    );
    await applyCr(kc, tiny.service, ns.name);
    const svc = await waitForService(
      kc,
      ns.name,
      'svc',
      (s) => s.status?.observedGeneration === s.metadata.generation && conditionOf(s, 'Solved')?.status === 'True',
      'solved status written despite the conflict',
      60_000,
    );
    expect(interfered).toBe(true);
    // The API server commits the retried write (what waitForService saw) a moment before the proxy logs its answer.
    const statusWrites = () => proxy!.log.filter((r) => r.method === 'PATCH' && r.path.split('?')[0] === statusPath);
    await waitFor(() => statusWrites().some((w, i) => i > 0 && w.status === 200), { what: 'the retried status write answered', timeoutMs: 10_000, intervalMs: 50 });
    const writes = statusWrites();
    expect(writes[0]?.status).toBe(409); // a genuine Conflict from the API server
    expect(writes.some((w, i) => i > 0 && w.status === 200)).toBe(true); // then a successful retry
    expect(svc.status?.allocation?.map((a) => [a.pool, a.replicas])).toEqual([[tiny.poolName, tinyReplicas(2)]]);
    expect(svc.metadata.labels?.['example.com/touched']).toBe('yes'); // the other writer's change survives
    // Counted as an API error of the reconcile, and handled without a restart.
    const metrics = await op!.metrics();
    expect(metrics).toMatch(/melange_operator_api_errors_total\{[^}]*code="409"[^}]*\} [1-9]/);
    expect(op!.alive()).toBe(true);
  });
});
