import { V1MicroTime, type CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import { isNotFound } from './kube.js';

// Lease-based leader election with client-go's rules (the JS client has no helper):
// - expiry is judged on OUR clock from when we last saw the record change, so skew between pods is harmless;
// - every write carries the resourceVersion it read, so a 409 means another candidate won the round;
// - a leader that cannot renew within renewDeadline reports the lease lost (the process then exits);
// - release on shutdown hands over at once: empty holder, 1 s duration.
// Lease times must be MicroTime (6 fractional digits); a Date serialises with 3 and the API server says 400.

export interface LeaderElectorConfig {
  api: CoordinationV1Api;
  namespace: string;
  name: string;
  identity: string;
  leaseMs?: number;
  renewDeadlineMs?: number;
  retryMs?: number;
  now?: () => number;
  /** A transient failure to read or write the lease (logged by the caller). */
  onError?: (err: unknown) => void;
}

export type LeadershipEnd = 'stopped' | 'lost';

export class LeaderElector {
  private observedKey = '';
  private observedAt = 0;
  /** When the lease held by someone else expires by our clock (0 = not held by another). */
  private otherExpiresAt = 0;
  private leading = false;

  constructor(private readonly cfg: LeaderElectorConfig) {}

  get identity(): string {
    return this.cfg.identity;
  }
  isLeader(): boolean {
    return this.leading;
  }
  private now(): number {
    return (this.cfg.now ?? Date.now)();
  }
  private get leaseMs() {
    return this.cfg.leaseMs ?? 15_000;
  }
  private get renewDeadlineMs() {
    return this.cfg.renewDeadlineMs ?? 10_000;
  }
  private get retryMs() {
    return this.cfg.retryMs ?? 2_000;
  }

  /** One round: create, renew, or take over an expired lease. True if we hold it afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const { api, namespace, name, identity } = this.cfg;
    const leaseSeconds = Math.max(1, Math.ceil(this.leaseMs / 1000));
    const t = new V1MicroTime(this.now());
    let cur: V1Lease;
    try {
      cur = await api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await api.createNamespacedLease({
        namespace,
        body: { metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds: leaseSeconds, acquireTime: t, renewTime: t, leaseTransitions: 0 } },
      });
      return true;
    }
    const spec = cur.spec ?? {};
    // renewTime is a string at runtime (client-node does not deserialise MicroTime).
    const key = `${spec.holderIdentity ?? ''}@${String(spec.renewTime ?? '')}`;
    if (key !== this.observedKey) {
      this.observedKey = key;
      this.observedAt = this.now();
    }
    const holder = spec.holderIdentity ?? '';
    const heldByOther = holder !== '' && holder !== identity;
    this.otherExpiresAt = heldByOther ? this.observedAt + (spec.leaseDurationSeconds ?? 0) * 1000 : 0;
    if (heldByOther && this.otherExpiresAt > this.now()) return false;
    const takeover = holder !== identity;
    await api.replaceNamespacedLease({
      name,
      namespace,
      body: {
        ...cur, // carries metadata.resourceVersion: a concurrent winner makes this a 409
        spec: {
          ...spec,
          holderIdentity: identity,
          leaseDurationSeconds: leaseSeconds,
          renewTime: t,
          ...(takeover ? { acquireTime: t, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
        },
      },
    });
    return true;
  }

  /**
   * Campaigns until elected, calls `onStartedLeading`, then renews every retry period. Resolves 'stopped'
   * when `signal` aborts (leadership is NOT released here: call release() after the work stopped), or
   * 'lost' when no renewal succeeded for renewDeadline.
   */
  async run(signal: AbortSignal, onStartedLeading: () => void): Promise<LeadershipEnd> {
    while (!signal.aborted) {
      if (await this.attempt()) break;
      // Poll every retry period, but if the holder's lease runs out before the next tick, try right then:
      // a crashed leader is replaced in leaseDuration (+ up to one retry of observation lag), not more.
      const untilExpiry = this.otherExpiresAt - this.now();
      await sleep(untilExpiry > 0 && untilExpiry < this.retryMs ? untilExpiry + 20 : this.retryMs, signal);
    }
    if (signal.aborted) return 'stopped';
    this.leading = true;
    onStartedLeading();
    let lastRenew = this.now();
    while (!signal.aborted) {
      await sleep(this.retryMs, signal);
      if (signal.aborted) break;
      if (await this.attempt()) lastRenew = this.now();
      else if (this.now() - lastRenew >= this.renewDeadlineMs) {
        this.leading = false;
        return 'lost';
      }
    }
    return 'stopped';
  }

  /** Gives the lease up if we hold it, so a standby takes over within its retry period. Never throws. */
  async release(): Promise<boolean> {
    if (!this.leading) return false;
    this.leading = false;
    const { api, namespace, name, identity } = this.cfg;
    try {
      const cur = await withTimeout(api.readNamespacedLease({ name, namespace }), this.renewDeadlineMs);
      if (cur.spec?.holderIdentity !== identity) return false;
      const t = new V1MicroTime(this.now());
      await withTimeout(
        api.replaceNamespacedLease({
          name,
          namespace,
          body: { ...cur, spec: { ...cur.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: t, acquireTime: t } },
        }),
        this.renewDeadlineMs,
      );
      return true;
    } catch (err) {
      this.cfg.onError?.(err);
      return false;
    }
  }

  /** One bounded round; errors (409 from a concurrent winner, an unreachable API server) count as "not now". */
  private async attempt(): Promise<boolean> {
    try {
      return await withTimeout(this.tryAcquireOrRenew(), Math.max(1000, this.renewDeadlineMs / 2));
    } catch (err) {
      this.cfg.onError?.(err);
      return false;
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Rejects after `ms`: a hung request must not stall renewal past the renew deadline. */
export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
