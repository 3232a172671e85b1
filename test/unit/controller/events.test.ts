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

describe('EventRecorder in the background', () => {
  const ref = { apiVersion: 'melange.dev/v1alpha1', kind: 'LLMService', name: 'chat', namespace: 'ml', uid: 'u1' };

  it('bounds the writes in flight: beyond the limit events are dropped and reported; flush waits for the rest', async () => {
    const release: Array<() => void> = [];
    let created = 0;
    const api = {
      createNamespacedEvent: () =>
        new Promise<void>((r) => {
          release.push(() => {
            created++;
            r();
          });
        }),
    } as unknown as EventsV1Api;
    const errors: string[] = [];
    const r = new EventRecorder(api, 'c', 'i', (e) => errors.push(String(e)), Date.now, 300_000, 2);
    const a = r.emit(ref, 'Normal', 'A', 'x', 'a');
    void r.emit(ref, 'Normal', 'B', 'x', 'b');
    await r.emit(ref, 'Normal', 'C', 'x', 'c'); // over the limit: resolves at once, dropped
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/event C for ml\/chat dropped: 2 event writes already in flight/);
    const flushed = r.flush(5_000);
    for (const f of release) f();
    await flushed;
    await a;
    expect(created).toBe(2);
    // The dropped event was not remembered as sent: the next transition may try again.
    void r.emit(ref, 'Normal', 'C', 'x', 'c');
    release.at(-1)?.();
    expect(release).toHaveLength(3);
  });

  it('flush gives up after its timeout when a write hangs', async () => {
    const api = { createNamespacedEvent: () => new Promise<void>(() => {}) } as unknown as EventsV1Api;
    const r = new EventRecorder(api, 'c', 'i');
    void r.emit(ref, 'Normal', 'A', 'x', 'a');
    await expect(r.flush(20)).resolves.toBeUndefined();
  });
});
