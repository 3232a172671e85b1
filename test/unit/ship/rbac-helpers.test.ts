// The one-verb-removed matrix (test/integration/ship-lifecycle.test.ts) trusts these two helpers: removing a
// verb must take away exactly one (group, resource, verb) and nothing else.
import { describe, expect, it } from 'vitest';
import { LEADER_ELECTION_RULES, OPERATOR_CLUSTER_RULES } from '../../../src/controller/rbac.js';
import { accessTriples, withoutVerb, type Rule } from './helpers.js';

const rules = (): Rule[] => structuredClone([...OPERATOR_CLUSTER_RULES]) as Rule[];

describe('RBAC rule helpers', () => {
  it('accessTriples lists 18 LLMService-path cluster + 3 lease accesses of the operator', () => {
    expect(accessTriples(rules())).toHaveLength(18);
    expect(accessTriples(rules())).toContain('|secrets|get');
    expect(accessTriples([...LEADER_ELECTION_RULES] as Rule[])).toEqual(['coordination.k8s.io|leases|create', 'coordination.k8s.io|leases|get', 'coordination.k8s.io|leases|update']);
  });

  it.each(accessTriples(rules()))('withoutVerb removes exactly %s', (triple) => {
    const [group, resource, verb] = triple.split('|') as [string, string, string];
    const after = accessTriples(withoutVerb(rules(), group, resource, verb));
    expect(after).toEqual(accessTriples(rules()).filter((t) => t !== triple));
  });

  it('a rule shared by several resources is split, not emptied', () => {
    const r = withoutVerb(rules(), 'melange.dev', 'gpupools', 'watch');
    expect(r).toContainEqual({ apiGroups: ['melange.dev'], resources: ['llmservices', 'gpuprofiles'], verbs: ['list', 'watch'] });
    expect(r).toContainEqual({ apiGroups: ['melange.dev'], resources: ['gpupools'], verbs: ['list'] });
  });
});
