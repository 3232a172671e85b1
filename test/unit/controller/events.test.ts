import type { EventsV1Api } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { EventRecorder } from '../../../src/controller/events.js';

describe('EventRecorder', () => {
  const ref = { apiVersion: 'melange.dev/v1alpha1', kind: 'LLMService', name: 'chat', namespace: 'ml', uid: 'u1' };

  it('writes events.k8s.io/v1 Events with a valid name, MicroTime and reporting fields; drops repeats', async () => {
    const bodies: any[] = [];
    const api = { createNamespacedEvent: async ({ body }: { body: unknown }) => bodies.push(JSON.parse(JSON.stringify(body))) } as unknown as EventsV1Api;
    let t = Date.parse('2026-11-28T10:00:00.123Z');
    const r = new EventRecorder(api, 'melange.dev/melange-operator', 'pod-1', () => {}, () => t);
    await r.emit(ref, 'Warning', 'BucketUnservable', 'Solve', 'bucket (input ≤ 12000 tokens, output ≤ 100 tokens)');
    await r.emit(ref, 'Warning', 'BucketUnservable', 'Solve', 'bucket (input ≤ 12000 tokens, output ≤ 100 tokens)');
    expect(bodies).toHaveLength(1);
    const b = bodies[0];
    expect(b.metadata.name).toMatch(/^chat\.[0-9a-f]+$/);
    expect(b.metadata.generateName).toBeUndefined(); // "chat." would fail DNS-subdomain validation
    expect(b.eventTime).toBe('2026-11-28T10:00:00.123000Z');
    expect(b).toMatchObject({ reportingController: 'melange.dev/melange-operator', reportingInstance: 'pod-1', type: 'Warning', reason: 'BucketUnservable', action: 'Solve', regarding: ref });
    t += 301_000;
    await r.emit(ref, 'Warning', 'BucketUnservable', 'Solve', 'bucket (input ≤ 12000 tokens, output ≤ 100 tokens)');
    expect(bodies).toHaveLength(2);
  });

  it('is best effort: an API error is reported, never thrown, and the event can be retried', async () => {
    const errors: unknown[] = [];
    let calls = 0;
    const api = { createNamespacedEvent: async () => { calls++; throw new Error('forbidden'); } } as unknown as EventsV1Api;
    const r = new EventRecorder(api, 'c', 'i', (e) => errors.push(e));
    await expect(r.emit(ref, 'Normal', 'AllocationChanged', 'Scale', 'x')).resolves.toBeUndefined();
    await r.emit(ref, 'Normal', 'AllocationChanged', 'Scale', 'x');
    expect(errors).toHaveLength(2);
    expect(calls).toBe(2);
  });
});
