import { ApiException, type CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LeaderElector } from '../../../src/controller/leader.js';

/** An in-memory Lease API that behaves like the API server where it matters: resourceVersion and MicroTime. */
class FakeLeases {
  lease: Record<string, unknown> | undefined;
  rv = 0;
  writes: string[] = [];
  fail = false;
  private check(body: V1Lease): Record<string, unknown> {
    const wire = JSON.parse(JSON.stringify(body)) as { spec?: Record<string, unknown> };
    for (const f of ['renewTime', 'acquireTime']) {
      const v = wire.spec?.[f];
      if (v !== undefined && !/\.\d{6}Z$/.test(String(v))) throw new ApiException(400, `spec.${f}: must be a MicroTime`, '{}', {});
    }
    return wire as Record<string, unknown>;
  }
  api = {
    readNamespacedLease: async () => {
      if (this.fail) throw new Error('connection refused');
      if (!this.lease) throw new ApiException(404, 'not found', '{}', {});
      return structuredClone(this.lease) as V1Lease;
    },
    createNamespacedLease: async ({ body }: { body: V1Lease }) => {
      if (this.lease) throw new ApiException(409, 'exists', '{}', {});
      const wire = this.check(body);
      this.lease = { ...wire, metadata: { ...(wire.metadata as object), resourceVersion: String(++this.rv) } };
      this.writes.push('create');
      return this.lease as V1Lease;
    },
    replaceNamespacedLease: async ({ body }: { body: V1Lease }) => {
      if (this.fail) throw new Error('connection refused');
      const wire = this.check(body);
      if ((wire.metadata as { resourceVersion?: string }).resourceVersion !== (this.lease?.metadata as { resourceVersion?: string }).resourceVersion) {
        throw new ApiException(409, 'conflict', '{}', {});
      }
      this.lease = { ...wire, metadata: { ...(wire.metadata as object), resourceVersion: String(++this.rv) } };
      this.writes.push('replace');
      return this.lease as V1Lease;
    },
  } as unknown as CoordinationV1Api;
  get spec() {
    return (this.lease?.spec ?? {}) as { holderIdentity?: string; leaseTransitions?: number; leaseDurationSeconds?: number; renewTime?: string };
  }
}

afterEach(() => vi.useRealTimers());

describe('LeaderElector', () => {
  it('creates the lease with MicroTime stamps, blocks a second candidate while the leader renews', async () => {
    const store = new FakeLeases();
    let t = 1_000_000;
    const now = () => t;
    const a = new LeaderElector({ api: store.api, namespace: 'ns', name: 'l', identity: 'a', now });
    const b = new LeaderElector({ api: store.api, namespace: 'ns', name: 'l', identity: 'b', now });
    expect(await a.tryAcquireOrRenew()).toBe(true);
    expect(store.spec).toMatchObject({ holderIdentity: 'a', leaseDurationSeconds: 15, leaseTransitions: 0 });
    expect(store.spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    for (let i = 0; i < 10; i++) {
      t += 2_000;
      expect(await a.tryAcquireOrRenew()).toBe(true);
      expect(await b.tryAcquireOrRenew()).toBe(false);
    }
  });

  it('takes over 15 s after it last saw the record change (its own clock), counting the transition', async () => {
    const store = new FakeLeases();
    let t = 0;
    const a = new LeaderElector({ api: store.api, namespace: 'ns', name: 'l', identity: 'a', now: () => t });
    const b = new LeaderElector({ api: store.api, namespace: 'ns', name: 'l', identity: 'b', now: () => t });
    await a.tryAcquireOrRenew();
    t = 1_000;
    expect(await b.tryAcquireOrRenew()).toBe(false); // first sighting at t=1 s
    t = 15_999;
    expect(await b.tryAcquireOrRenew()).toBe(false);
    t = 16_000;
    expect(await b.tryAcquireOrRenew()).toBe(true);
    expect(store.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
  });

  it('a stale write loses with 409 (counted as "not leader"), never overwriting the winner', async () => {
    const store = new FakeLeases();
    const a = new LeaderElector({ api: store.api, namespace: 'ns', name: 'l', identity: 'a' });
    await a.tryAcquireOrRenew();
    const stale = structuredClone(store.lease) as V1Lease;
    await a.tryAcquireOrRenew(); // rv moves on
    await expect(store.api.replaceNamespacedLease({ name: 'l', namespace: 'ns', body: stale })).rejects.toMatchObject({ code: 409 });
  });

  it('run(): leads, then reports "lost" when renewals fail for the renew deadline', async () => {
    vi.useFakeTimers();
    const store = new FakeLeases();
    const e = new LeaderElector({ api: store.api, namespace: 'ns', name: 'l', identity: 'a', retryMs: 2_000, renewDeadlineMs: 10_000 });
    let started = false;
    const ac = new AbortController();
    const end = e.run(ac.signal, () => (started = true));
    await vi.advanceTimersByTimeAsync(10);
    expect(started && e.isLeader()).toBe(true);
    store.fail = true;
    await vi.advanceTimersByTimeAsync(9_000);
    expect(e.isLeader()).toBe(true);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(await end).toBe('lost');
    expect(e.isLeader()).toBe(false);
  });

  it('release(): empty holder and 1 s duration, so a standby takes over on its next round', async () => {
    vi.useFakeTimers();
    const store = new FakeLeases();
    const a = new LeaderElector({ api: store.api, namespace: 'ns', name: 'l', identity: 'a' });
    const b = new LeaderElector({ api: store.api, namespace: 'ns', name: 'l', identity: 'b' });
    const ac = new AbortController();
    const endA = a.run(ac.signal, () => {});
    await vi.advanceTimersByTimeAsync(10);
    const bc = new AbortController();
    let bLeads = false;
    void b.run(bc.signal, () => (bLeads = true));
    await vi.advanceTimersByTimeAsync(4_000);
    expect(bLeads).toBe(false);
    ac.abort();
    expect(await endA).toBe('stopped');
    expect(await a.release()).toBe(true);
    expect(store.spec).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1 });
    await vi.advanceTimersByTimeAsync(2_100);
    expect(bLeads).toBe(true);
    expect(store.spec.holderIdentity).toBe('b');
    bc.abort();
  });

  it('a Date instead of a MicroTime would be rejected by the API server (the bug this guards against)', async () => {
    const store = new FakeLeases();
    await expect(store.api.createNamespacedLease({ namespace: 'ns', body: { metadata: { name: 'l' }, spec: { renewTime: new Date() as never } } })).rejects.toMatchObject({ code: 400 });
  });
});
