/**
 * Issue 4 acceptance, least privilege: the operator runs as the ServiceAccount identity bound to exactly
 * the rules in deploy/10-rbac.yaml (client cert minted by the harness PKI for
 * system:serviceaccount:<ns>:melange-operator) and does its whole job; removing a verb it needs breaks
 * exactly the step that uses it.
 */
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyCrdsFromDir, readYamlDocuments } from '../support/crds.js';
import { testEnv } from '../support/env.js';
import { ignoreNotFound, loadKubeConfig, makeClients, ssa } from '../support/kube.js';
import { uniqueName, useTestNamespace } from '../support/namespace.js';
import { applyCr, conditionOf, createGpuNodes, deleteGpuNodes, deploymentsOf, getService, waitForService } from '../support/operator-fixtures.js';
import { tinyService } from '../support/operator-objects.js';
import { startOperator, stopOperators, type LogLine, type OperatorProcess } from '../support/operator-process.js';
import { repoPath } from '../support/paths.js';
import { pkiPaths, signClientCert, writeKubeconfig } from '../support/pki.js';
import { delay, waitFor } from '../support/wait.js';

const env = testEnv();
const full = env.profile === 'full';
type Obj = Record<string, unknown>;
type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };

describe('operator: runs with exactly the deploy/ RBAC', () => {
  const ns = useTestNamespace('op-rbac');
  const suffix = uniqueName('rb').slice(3);
  const clusterRoleName = `melange-operator-${suffix}`;
  const tiny = tinyService('svc', suffix);
  const node = { name: `tiny-0-${suffix}`, product: tiny.product, gpus: 8 };
  const ops: OperatorProcess[] = [];
  let kc: KubeConfig;
  let docs: Obj[];
  let opKubeconfig: string;

  /** deploy/10-rbac.yaml moved into the test namespace, cluster-scoped names suffixed; optionally with rules edited. */
  const rbacDocs = (editRules?: (kind: string, rules: Rule[]) => Rule[]): Obj[] =>
    docs.map((d0) => {
      const d = structuredClone(d0);
      const meta = d.metadata as Obj;
      if (d.kind === 'ClusterRole' || d.kind === 'ClusterRoleBinding') meta.name = clusterRoleName;
      else meta.namespace = ns.name;
      if (d.kind === 'ClusterRoleBinding') (d.roleRef as Obj).name = clusterRoleName;
      for (const s of (d.subjects as Obj[] | undefined) ?? []) s.namespace = ns.name;
      if (editRules && Array.isArray(d.rules)) d.rules = editRules(String(d.kind), d.rules as Rule[]);
      return d;
    });

  const applyRbac = async (objs: Obj[]) => {
    const { core, rbac } = makeClients(kc);
    const opts = (name: string, body: Obj) => ({ name, body, fieldManager: 'melange-test', force: true });
    for (const d of objs) {
      const meta = d.metadata as { name: string; namespace?: string };
      if (d.kind === 'ServiceAccount') await core.patchNamespacedServiceAccount({ ...opts(meta.name, d), namespace: ns.name }, ssa());
      else if (d.kind === 'ClusterRole') await rbac.patchClusterRole(opts(meta.name, d), ssa());
      else if (d.kind === 'ClusterRoleBinding') await rbac.patchClusterRoleBinding(opts(meta.name, d), ssa());
      else if (d.kind === 'Role') await rbac.patchNamespacedRole({ ...opts(meta.name, d), namespace: ns.name }, ssa());
      else if (d.kind === 'RoleBinding') await rbac.patchNamespacedRoleBinding({ ...opts(meta.name, d), namespace: ns.name }, ssa());
      else throw new Error(`unexpected kind ${String(d.kind)} in deploy/10-rbac.yaml`);
    }
  };
  const without = (group: string, resource: string, verb: string) => (_kind: string, rules: Rule[]) =>
    rules
      .map((r) => (r.apiGroups.includes(group) && r.resources.includes(resource) ? { ...r, verbs: r.verbs.filter((v) => v !== verb) } : r))
      .filter((r) => r.verbs.length > 0);
  /** Lets the authorizer's RBAC cache see a change, verified through a SubjectAccessReview-free probe: time. */
  const settle = () => delay(1_500);

  beforeAll(async () => {
    kc = loadKubeConfig(env.kubeconfig);
    await applyCrdsFromDir(kc, repoPath('crds'));
    docs = (await readYamlDocuments(repoPath('deploy', '10-rbac.yaml'))) as Obj[];
    await applyRbac(rbacDocs());
    const pki = pkiPaths(join(env.runDir, 'pki'));
    const user = `system:serviceaccount:${ns.name}:melange-operator`;
    const cert = await signClientCert(pki, `op-${suffix}`, user, ['system:serviceaccounts', `system:serviceaccounts:${ns.name}`]);
    opKubeconfig = join(env.runDir, `op-${suffix}.kubeconfig`);
    await writeKubeconfig(opKubeconfig, env.apiUrl, pki.caCrt, cert.crt, cert.key);
    await applyCr(kc, tiny.pool);
    await applyCr(kc, tiny.profile, ns.name);
    if (full) await createGpuNodes(kc, [node]);
  });
  afterAll(async () => {
    await stopOperators(ops);
    if (!kc) return;
    const { rbac, custom } = makeClients(kc);
    await ignoreNotFound(() => rbac.deleteClusterRoleBinding({ name: clusterRoleName }));
    await ignoreNotFound(() => rbac.deleteClusterRole({ name: clusterRoleName }));
    await ignoreNotFound(() => custom.deleteClusterCustomObject({ group: 'melange.dev', version: 'v1alpha1', plural: 'gpupools', name: tiny.poolName }));
    if (full) await deleteGpuNodes(kc, [node]);
  });

  // Cluster-wide, the operator also sees other files' leftovers; writes into a namespace that is being deleted
  // are refused with 403 too, which says nothing about RBAC.
  const terminating = (l: LogLine) => /because it is being terminated/.test(String(l.err ?? ''));
  const forbidden = (op: OperatorProcess, key: string) => op.logs().filter((l) => l.code === 403 && !terminating(l) && (l.llmservice === key || key === '*'));

  it('does its whole job as the ServiceAccount bound to deploy/10-rbac.yaml (cluster-wide, no extra rights)', async () => {
    // No --watch-namespace: the deploy manifests' cluster-wide mode.
    const op = await startOperator({ kubeconfig: opKubeconfig, leaseNamespace: ns.name, logDir: `${env.runDir}/logs`, name: 'op-rbac' });
    ops.push(op);
    await applyCr(kc, tiny.service, ns.name);
    const svc = await waitForService(kc, ns.name, 'svc', (s) => s.status?.observedGeneration === 1 && (!full || conditionOf(s, 'Ready')?.status === 'True'), 'reconciled (Ready with kwok)', 90_000);
    expect(svc.status?.allocation?.[0]?.replicas).toBe(3);
    expect((await deploymentsOf(kc, ns.name, 'svc')).size).toBe(1);
    const { events, coordination } = makeClients(kc);
    const ev = await waitFor(async () => (await events.listNamespacedEvent({ namespace: ns.name })).items.find((e) => e.reason === 'AllocationChanged'), { what: 'AllocationChanged event', timeoutMs: 10_000 });
    expect(ev.regarding?.name).toBe('svc');
    const lease = await coordination.readNamespacedLease({ name: 'melange-operator-leader', namespace: ns.name });
    expect(lease.spec?.holderIdentity).toBe(op.identity);
    expect(forbidden(op, '*')).toEqual([]);
    expect(op.logs().filter((l) => l.msg === 'could not record an event' && !terminating(l))).toEqual([]);
  });

  it('without patch on llmservices/status: Deployments are applied but status writes fail (403), retried', async () => {
    const op = ops[0]!;
    await applyRbac(rbacDocs(without('melange.dev', 'llmservices/status', 'patch')));
    await settle();
    await applyCr(kc, { ...tiny.service, metadata: { name: 'svc2' } }, ns.name);
    await op.waitForLog((l) => l.code === 403 && l.llmservice === `${ns.name}/svc2` && l.msg === 'reconcile failed; retrying', '403 on svc2', 30_000);
    expect((await deploymentsOf(kc, ns.name, 'svc2')).size).toBe(1);
    expect((await getService(kc, ns.name, 'svc2')).status).toBeUndefined();
    await applyRbac(rbacDocs()); // restored: the per-key backoff retries and succeeds without a restart
    await waitForService(kc, ns.name, 'svc2', (s) => s.status?.observedGeneration === 1, 'status written after the verb came back', 60_000);
  });

  it('without create on deployments: no Deployment for a new service (403 on server-side apply)', async () => {
    const op = ops[0]!;
    await applyRbac(rbacDocs(without('apps', 'deployments', 'create')));
    await settle();
    await applyCr(kc, { ...tiny.service, metadata: { name: 'svc3' } }, ns.name);
    await op.waitForLog((l) => l.code === 403 && l.llmservice === `${ns.name}/svc3`, '403 on svc3', 30_000);
    await delay(1_000);
    expect((await deploymentsOf(kc, ns.name, 'svc3')).size).toBe(0);
    await applyRbac(rbacDocs());
  });

  it('without update on leases: the operator cannot renew its lease and exits', async () => {
    await applyRbac(rbacDocs(without('coordination.k8s.io', 'leases', 'update')));
    await settle();
    const op = await startOperator({
      kubeconfig: opKubeconfig,
      leaseNamespace: ns.name,
      logDir: `${env.runDir}/logs`,
      name: 'op-rbac-nolease',
      extraArgs: ['--leader-election-id=rbac-probe', '--lease-duration=6s', '--renew-deadline=4s', '--retry-period=1s'],
    });
    ops.push(op);
    await waitFor(() => !op.alive(), { what: 'operator to exit after failing to renew', timeoutMs: 30_000, intervalMs: 200 });
    expect(op.exit?.code).toBe(1);
    expect(op.logs().some((l) => l.msg === 'started leading; reconciling')).toBe(true); // create was allowed
    await applyRbac(rbacDocs());
  });
});
