/**
 * Issue 6 (P5 · GPU pools), least privilege: the GPUPool reconciler's provider and status calls work as a
 * user bound to exactly GPUPOOL_CLUSTER_RULES (src/controller/rbac.ts), and removing any one verb of those
 * rules makes the scenario fail (every granted verb is needed). Pools and LLMServices are handed to the
 * reconciler directly (in the Manager they come from its informers, covered by OPERATOR_CLUSTER_RULES).
 */
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CAPI, KARP, GP } from '../support/pools-cloud.js';
import { parseGPUPool, type GPUPool } from '../../src/api/index.js';
import { GPUPoolController, kubeGPUPoolClient } from '../../src/controller/gpupool-controller.js';
import { createLogger } from '../../src/controller/logger.js';
import { GPUPOOL_CLUSTER_RULES, type PolicyRule } from '../../src/controller/rbac.js';
import { applyCrdsFromDir } from '../support/crds.js';
import { testEnv } from '../support/env.js';
import { ignoreNotFound, loadKubeConfig, makeClients, mergePatch, ssa } from '../support/kube.js';
import { uniqueName, useTestNamespace } from '../support/namespace.js';
import { applyCr } from '../support/operator-fixtures.js';
import { tinyService } from '../support/operator-objects.js';
import { repoPath } from '../support/paths.js';
import { pkiPaths, signClientCert, writeKubeconfig } from '../support/pki.js';
import { delay } from '../support/wait.js';

const env = testEnv();
type Obj = Record<string, any>;

describe('GPU pools: GPUPOOL_CLUSTER_RULES are sufficient and each verb is needed', () => {
  const ns = useTestNamespace('pools-rbac');
  const suffix = uniqueName('pr').slice(3);
  const capiPool = tinyService('svc', `c${suffix}`);
  const karpPool = tinyService('svc', `k${suffix}`);
  const md = `md-${suffix}`.slice(0, 40);
  const nodePool = `np-${suffix}`.slice(0, 40);
  const role = `melange-pools-${suffix}`.slice(0, 63);
  const user = `pools-rbac-${suffix}`;
  let kc: KubeConfig;
  let restricted: KubeConfig;

  const setRules = async (rules: readonly PolicyRule[]) => {
    const { rbac } = makeClients(kc);
    const body = { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: role }, rules };
    await rbac.patchClusterRole({ name: role, body, fieldManager: 'melange-test', force: true }, ssa());
  };
  const pool = async (name: string): Promise<GPUPool> => {
    const r = parseGPUPool(await makeClients(kc).custom.getClusterCustomObject({ ...GP, name }), { strict: false });
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    return r.value;
  };
  // 3 replicas × 1 GPU on each pool; gpusPerNode 2 → 2 nodes; Karpenter limit "4".
  const services = () => [capiPool, karpPool].map((t) => ({
    metadata: { namespace: ns.name, name: t.poolName },
    spec: { gpus: [{ pool: t.poolName }] },
    status: { allocation: [{ pool: t.poolName, replicas: 3 }] },
  }));

  /** Resets the provider objects, reconciles both pools as the restricted user; ok iff everything landed. */
  const scenario = async (): Promise<{ ok: boolean; how: string }> => {
    const { custom } = makeClients(kc);
    await custom.patchNamespacedCustomObject({ ...CAPI, namespace: ns.name, name: md, body: { spec: { replicas: 0 } } }, mergePatch());
    await custom.patchClusterCustomObject({ ...KARP, name: nodePool, body: { spec: { limits: { 'nvidia.com/gpu': '0' } } } }, mergePatch());
    for (const t of [capiPool, karpPool]) await custom.patchClusterCustomObjectStatus({ ...GP, name: t.poolName, body: { status: null } }, mergePatch());
    const ctl = new GPUPoolController({ pools: () => [], services, client: kubeGPUPoolClient(restricted), log: createLogger('silent') });
    try {
      for (const name of [capiPool.poolName, karpPool.poolName]) {
        await ctl.reconcile(await pool(name));
        const st = (await pool(name)).status;
        const ready = st?.conditions?.find((c) => c.type === 'Ready');
        if (ready?.reason === 'ProviderError') return { ok: false, how: `${name}: ${ready.message}` };
        if (st?.desiredNodes !== 2 || st.demandedGPUs !== 3) return { ok: false, how: `${name}: status not written (${JSON.stringify(st ?? null)})` };
      }
    } catch (err) {
      return { ok: false, how: `reconcile threw: ${String((err as Error).message).slice(0, 120)}` };
    }
    const replicas = ((await custom.getNamespacedCustomObject({ ...CAPI, namespace: ns.name, name: md })) as Obj).spec.replicas;
    const limit = ((await custom.getClusterCustomObject({ ...KARP, name: nodePool })) as Obj).spec.limits['nvidia.com/gpu'];
    return replicas === 2 && limit === '4' ? { ok: true, how: 'ok' } : { ok: false, how: `replicas ${replicas}, limit ${limit}` };
  };

  beforeAll(async () => {
    kc = loadKubeConfig(env.kubeconfig);
    await applyCrdsFromDir(kc, repoPath('crds'));
    await applyCrdsFromDir(kc, repoPath('test', 'fixtures', 'crds'));
    const { custom, rbac } = makeClients(kc);
    await custom.createNamespacedCustomObject({
      ...CAPI,
      namespace: ns.name,
      body: { apiVersion: 'cluster.x-k8s.io/v1beta1', kind: 'MachineDeployment', metadata: { name: md, namespace: ns.name }, spec: { clusterName: 'test', replicas: 0, selector: {}, template: {} } },
    });
    await custom.createClusterCustomObject({
      ...KARP,
      body: { apiVersion: 'karpenter.sh/v1', kind: 'NodePool', metadata: { name: nodePool }, spec: { template: { spec: { nodeClassRef: { group: 'x', kind: 'Y', name: 'z' }, requirements: [] } } } },
    });
    for (const [t, provider] of [
      [capiPool, { type: 'ClusterAPI', clusterAPI: { namespace: ns.name, name: md } }],
      [karpPool, { type: 'Karpenter', karpenter: { nodePool } }],
    ] as const) {
      const p = structuredClone(t.pool) as Obj;
      p.spec.gpusPerNode = 2;
      p.spec.provider = provider;
      await applyCr(kc, p);
    }
    await setRules(GPUPOOL_CLUSTER_RULES);
    await rbac.patchClusterRoleBinding(
      {
        name: role,
        body: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: role }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role }, subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }] },
        fieldManager: 'melange-test',
        force: true,
      },
      ssa(),
    );
    const pki = pkiPaths(join(env.runDir, 'pki'));
    const cert = await signClientCert(pki, `pools-${suffix}`, user);
    const file = join(env.runDir, `pools-${suffix}.kubeconfig`);
    await writeKubeconfig(file, env.apiUrl, pki.caCrt, cert.crt, cert.key);
    restricted = loadKubeConfig(file);
    await delay(1_500);
  });
  afterAll(async () => {
    if (!kc) return;
    const { rbac, custom } = makeClients(kc);
    await ignoreNotFound(() => rbac.deleteClusterRoleBinding({ name: role }));
    await ignoreNotFound(() => rbac.deleteClusterRole({ name: role }));
    for (const t of [capiPool, karpPool]) await ignoreNotFound(() => custom.deleteClusterCustomObject({ ...GP, name: t.poolName }));
    await ignoreNotFound(() => custom.deleteClusterCustomObject({ ...KARP, name: nodePool }));
  });

  it('works with exactly GPUPOOL_CLUSTER_RULES', async () => {
    const r = await scenario();
    expect(r, r.how).toEqual({ ok: true, how: 'ok' });
  });

  it('fails without any one of its verbs', async () => {
    const triples = GPUPOOL_CLUSTER_RULES.flatMap((r) => r.resources.flatMap((res) => r.verbs.map((v) => ({ group: r.apiGroups[0]!, resource: res, verb: v }))));
    expect(triples).toHaveLength(6);
    const results: string[] = [];
    try {
      for (const t of triples) {
        await setRules(
          GPUPOOL_CLUSTER_RULES.map((r) => (r.apiGroups.includes(t.group) && r.resources.includes(t.resource) ? { ...r, verbs: r.verbs.filter((v) => v !== t.verb) } : r)).filter((r) => r.verbs.length > 0),
        );
        await delay(1_500);
        const r = await scenario();
        results.push(`${r.ok ? 'STILL PASSES' : 'fails'} without ${t.verb} ${t.group}/${t.resource}: ${r.how}`);
      }
    } finally {
      await setRules(GPUPOOL_CLUSTER_RULES);
    }
    console.log(`[pools-rbac] one-verb-removed:\n${results.join('\n')}`);
    expect(results.filter((r) => r.startsWith('STILL PASSES'))).toEqual([]);
    await delay(1_500);
    const again = await scenario();
    expect(again, again.how).toEqual({ ok: true, how: 'ok' });
  });
});
