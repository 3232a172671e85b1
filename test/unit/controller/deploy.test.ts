import { describe, expect, it } from 'vitest';
import { DEPLOYED_CLUSTER_RULES, LEADER_ELECTION_RULES } from '../../../src/controller/rbac.js';
import { readYamlDocuments } from '../../support/crds.js';
import { repoPath } from '../../support/paths.js';

// deploy/ is what users install: it must grant exactly what the code uses (src/controller/rbac.ts), and the
// operator Deployment must carry the settings the controller relies on (leader election, probes, SIGTERM).
type Obj = Record<string, any>;
const docs = async (f: string) => (await readYamlDocuments(repoPath('deploy', f))) as Obj[];
const byKind = (ds: Obj[], kind: string) => ds.filter((d) => d.kind === kind);

describe('deploy/ manifests', () => {
  it('RBAC: the ClusterRole and the leader-election Role are exactly the rules the code declares', async () => {
    const rbac = await docs('10-rbac.yaml');
    expect(byKind(rbac, 'ClusterRole')[0]?.rules).toEqual(DEPLOYED_CLUSTER_RULES);
    expect(byKind(rbac, 'Role')[0]?.rules).toEqual(LEADER_ELECTION_RULES);
    const all = [...DEPLOYED_CLUSTER_RULES, ...LEADER_ELECTION_RULES];
    for (const r of all) {
      expect(r.verbs).not.toContain('*');
      expect(r.resources).not.toContain('*');
    }
    // Secrets: GET of a referenced Prometheus credential only — never list or watch (nothing enumerated or cached).
    const secretRules = all.filter((r) => r.resources.includes('secrets'));
    expect(secretRules).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }]);
  });

  it('RBAC: bindings tie the roles to the operator ServiceAccount; the Role lives in the operator namespace', async () => {
    const rbac = await docs('10-rbac.yaml');
    const sa = byKind(rbac, 'ServiceAccount')[0]!;
    const subject = { kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace };
    expect(byKind(rbac, 'ClusterRoleBinding')[0]).toMatchObject({ roleRef: { kind: 'ClusterRole', name: byKind(rbac, 'ClusterRole')[0]!.metadata.name }, subjects: [subject] });
    expect(byKind(rbac, 'RoleBinding')[0]).toMatchObject({ metadata: { namespace: sa.metadata.namespace }, roleRef: { kind: 'Role' }, subjects: [subject] });
    expect(byKind(rbac, 'Role')[0]?.metadata.namespace).toBe(sa.metadata.namespace);
  });

  it('operator Deployment: 2 replicas with leader election, probes on /healthz and /readyz, hardened, SIGTERM-friendly', async () => {
    const ops = await docs('20-operator.yaml');
    const d = byKind(ops, 'Deployment')[0]!;
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    const ns = (await docs('00-namespace.yaml'))[0]!.metadata.name;
    expect(d.metadata.namespace).toBe(ns);
    expect(d.spec.replicas).toBe(2);
    expect(pod.serviceAccountName).toBe('melange-operator');
    expect(c.command).toEqual(['node', '/app/bin/melangectl.js', 'controller']); // node as PID 1 gets SIGTERM itself
    expect(c.args).toContain('--leader-elect=true');
    expect(c.args).toContain('--health-addr=0.0.0.0:8081');
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'health' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'health' });
    expect(c.env.map((e: Obj) => e.name)).toEqual(['POD_NAME', 'POD_NAMESPACE']);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(10); // > the 10 s shutdown grace
    expect(byKind(ops, 'PodDisruptionBudget')[0]?.spec.minAvailable).toBe(1);
  });
});
