import { describe, expect, it } from 'vitest';
import { appliedHash, buildDeployment, canonicalJson, labelValue } from '../../../src/controller/desired.js';
import { POOLS, pool, service } from './fixtures.js';

const small = POOLS[0]!;

describe('buildDeployment (desired state of one service × pool)', () => {
  const d = buildDeployment({ service: service(), pool: small, gpusPerReplica: 2, replicas: 3 });

  it('names it <service>-<pool>, in the service namespace, owned by the LLMService as controller', () => {
    expect(d.metadata.name).toBe('chat-small');
    expect(d.metadata.namespace).toBe('ml');
    expect(d.metadata.ownerReferences).toEqual([
      { apiVersion: 'melange.dev/v1alpha1', kind: 'LLMService', name: 'chat', uid: 'uid-chat', controller: true, blockOwnerDeletion: true },
    ]);
    expect(d.spec.replicas).toBe(3);
  });

  it('labels with app.kubernetes.io/* and selects by service + pool only', () => {
    expect(d.metadata.labels).toEqual({
      'app.kubernetes.io/name': 'chat',
      'app.kubernetes.io/instance': 'chat',
      'app.kubernetes.io/component': 'model-server',
      'app.kubernetes.io/part-of': 'melange',
      'app.kubernetes.io/managed-by': 'melange-operator',
      'melange.dev/gpu-type': 'A10G',
      'melange.dev/service': 'chat',
      'melange.dev/pool': 'small',
    });
    expect(d.spec.selector.matchLabels).toEqual({ 'melange.dev/service': 'chat', 'melange.dev/pool': 'small' });
    const podLabels = d.spec.template.metadata.labels as Record<string, string>;
    expect(podLabels).toMatchObject({ team: 'ml', ...d.spec.selector.matchLabels });
    expect(d.spec.template.metadata.annotations).toEqual({ note: 'x' });
  });

  it('adds the pool node selector, tolerations and GPU resource to the model-server container only', () => {
    const spec = d.spec.template.spec as { nodeSelector: unknown; tolerations: unknown; containers: Array<{ resources?: unknown; image: string }>; priorityClassName: string };
    expect(spec.nodeSelector).toEqual({ 'nvidia.com/gpu.product': 'NVIDIA-A10G' });
    expect(spec.tolerations).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(spec.containers[0]?.resources).toEqual({ limits: { 'nvidia.com/gpu': '2' }, requests: { 'nvidia.com/gpu': '2' } });
    expect(spec.containers[1]?.resources).toBeUndefined();
    expect(spec.priorityClassName).toBe('high'); // unknown PodSpec fields pass through
  });

  it('merges with the user template instead of replacing it, and never mutates the service', () => {
    const svc = service({
      spec: {
        template: {
          spec: {
            nodeSelector: { zone: 'a' },
            tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }, { key: 'spot', operator: 'Exists' }],
            containers: [{ name: 'vllm', image: 'v', resources: { limits: { memory: '8Gi' }, requests: { cpu: '2' } } }],
          },
        },
      },
    });
    const before = JSON.stringify(svc);
    const m = buildDeployment({ service: svc, pool: small, gpusPerReplica: 1, replicas: 1 });
    const spec = m.spec.template.spec as { nodeSelector: unknown; tolerations: unknown[]; containers: Array<{ resources: unknown }> };
    expect(spec.nodeSelector).toEqual({ zone: 'a', 'nvidia.com/gpu.product': 'NVIDIA-A10G' });
    expect(spec.tolerations).toHaveLength(2); // the pool's toleration was already there: not duplicated
    expect(spec.containers[0]?.resources).toEqual({ limits: { memory: '8Gi', 'nvidia.com/gpu': '1' }, requests: { cpu: '2', 'nvidia.com/gpu': '1' } });
    expect(JSON.stringify(svc)).toBe(before);
  });

  it('uses the pool resource name (e.g. amd.com/gpu)', () => {
    const amd = pool('mi300', 'MI300X', '3.00', { resourceName: 'amd.com/gpu' });
    const spec = buildDeployment({ service: service(), pool: amd, gpusPerReplica: 8, replicas: 1 }).spec.template.spec as { containers: Array<{ resources: unknown }> };
    expect(spec.containers[0]?.resources).toEqual({ limits: { 'amd.com/gpu': '8' }, requests: { 'amd.com/gpu': '8' } });
  });

  it('stamps a hash of everything but replicas, so identical applies can be skipped', () => {
    const a = buildDeployment({ service: service(), pool: small, gpusPerReplica: 2, replicas: 3 });
    const b = buildDeployment({ service: service(), pool: small, gpusPerReplica: 2, replicas: 7 });
    const c = buildDeployment({ service: service(), pool: small, gpusPerReplica: 1, replicas: 3 });
    expect(a.metadata.annotations['melange.dev/applied-hash']).toBe(b.metadata.annotations['melange.dev/applied-hash']);
    expect(a.metadata.annotations['melange.dev/applied-hash']).not.toBe(c.metadata.annotations['melange.dev/applied-hash']);
    expect(appliedHash(a)).toBe(a.metadata.annotations['melange.dev/applied-hash']);
  });
});

describe('labelValue / canonicalJson', () => {
  it('keeps valid values and shortens or cleans the rest deterministically', () => {
    expect(labelValue('A100-80GB')).toBe('A100-80GB');
    const long = 'x'.repeat(80);
    expect(labelValue(long)).toHaveLength(63);
    expect(labelValue(long)).toBe(labelValue(long));
    expect(labelValue(long)).not.toBe(labelValue(`${'x'.repeat(79)}y`));
    expect(labelValue('H100 80GB/SXM')).toMatch(/^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/);
  });
  it('ignores key order', () => {
    expect(canonicalJson({ b: 1, a: [{ y: 2, x: 1 }] })).toBe(canonicalJson({ a: [{ x: 1, y: 2 }], b: 1 }));
  });
});
