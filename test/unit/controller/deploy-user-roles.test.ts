import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { readYamlDocuments } from '../../support/crds.js';
import { repoPath } from '../../support/paths.js';

type Role = { metadata: { name: string; labels: Record<string, string> }; rules: unknown[] };

/** The chart template with its template lines dropped and names made static, parsed as YAML. */
function chartRoles(): Role[] {
  const text = readFileSync(repoPath('charts', 'melange-operator', 'templates', 'aggregated-roles.yaml'), 'utf8')
    .split('\n').filter((l) => !/^\s*\{\{-?\s*(if|end|include)/.test(l) && !/\{\{-? include/.test(l)).join('\n')
    .replace(/\{\{ include "melange-operator.fullname" \. \}\}/g, 'melange-operator');
  return parseAllDocuments(text).map((d) => d.toJS() as Role).filter((r) => r?.rules);
}

describe('deploy/15-user-roles.yaml', () => {
  it('has the chart\'s aggregated viewer and editor rules', async () => {
    const deploy = (await readYamlDocuments(repoPath('deploy', '15-user-roles.yaml'))) as Role[];
    const chart = chartRoles();
    expect(deploy.map((r) => r.metadata.name)).toEqual(['melange-operator-viewer', 'melange-operator-editor']);
    expect(deploy.map((r) => r.rules)).toEqual(chart.map((r) => r.rules));
  });

  it('viewer only reads; editor never writes GPUPools; both aggregate into the built-in roles', async () => {
    const [viewer, editor] = (await readYamlDocuments(repoPath('deploy', '15-user-roles.yaml'))) as Role[];
    expect(JSON.stringify(viewer!.rules)).not.toMatch(/create|update|patch|delete/);
    expect(JSON.stringify(editor!.rules)).not.toContain('gpupools');
    expect(viewer!.metadata.labels['rbac.authorization.k8s.io/aggregate-to-view']).toBe('true');
    expect(editor!.metadata.labels['rbac.authorization.k8s.io/aggregate-to-edit']).toBe('true');
  });
});
