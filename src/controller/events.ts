import { V1MicroTime, type EventsV1Api, type V1ObjectReference } from '@kubernetes/client-node';

// events.k8s.io/v1 Events, best effort: a failed event never fails a reconcile. The reconciler emits on
// transitions (allocation changed, solve started failing); the recorder additionally drops an identical
// event for the same object within `dedupeMs`, a crude stand-in for client-go's event series.
// Like client-go's broadcaster, sending is asynchronous: the reconciler does not wait for the write (an
// event costs a round trip, and a reconcile that just wrote status has nothing to gain from waiting), at
// most `maxInFlight` writes are outstanding (beyond that events are dropped and reported, never queued
// without bound), and flush() lets a graceful shutdown deliver what is in flight.

export type EventType = 'Normal' | 'Warning';

export interface EventSink {
  /** Resolves once the event is sent or dropped; never rejects. Callers need not await it. */
  emit(regarding: V1ObjectReference, type: EventType, reason: string, action: string, note: string): Promise<void>;
}

export class EventRecorder implements EventSink {
  private readonly recent = new Map<string, number>();
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly api: EventsV1Api,
    private readonly controller: string,
    private readonly instance: string,
    private readonly onError: (e: unknown) => void = () => {},
    private readonly now: () => number = Date.now,
    private readonly dedupeMs = 300_000,
    private readonly maxInFlight = 100,
  ) {}

  emit(regarding: V1ObjectReference, type: EventType, reason: string, action: string, note: string): Promise<void> {
    const now = this.now();
    const key = `${regarding.uid ?? ''}|${type}|${reason}|${note}`;
    if ((this.recent.get(key) ?? -Infinity) > now - this.dedupeMs) return Promise.resolve();
    if (this.inFlight.size >= this.maxInFlight) {
      this.onError(new Error(`event ${reason} for ${regarding.namespace ?? ''}/${regarding.name ?? ''} dropped: ${this.maxInFlight} event writes already in flight`));
      return Promise.resolve();
    }
    this.recent.set(key, now);
    if (this.recent.size > 10_000) this.prune(now);
    const sent = this.send(key, now, regarding, type, reason, action, note);
    this.inFlight.add(sent);
    void sent.finally(() => this.inFlight.delete(sent));
    return sent;
  }

  /** Waits (at most `timeoutMs`) for the event writes in flight. */
  async flush(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((r) => {
      timer = setTimeout(r, timeoutMs);
    });
    await Promise.race([Promise.all([...this.inFlight]), timeout]);
    clearTimeout(timer);
  }

  private async send(key: string, now: number, regarding: V1ObjectReference, type: EventType, reason: string, action: string, note: string): Promise<void> {
    const namespace = regarding.namespace ?? 'default';
    try {
      await this.api.createNamespacedEvent({
        namespace,
        body: {
          // client-go's naming: <object>.<hex time>; generateName would end in "." and fail validation.
          metadata: { name: `${(regarding.name ?? 'object').slice(0, 200)}.${now.toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`, namespace },
          eventTime: new V1MicroTime(now),
          reportingController: this.controller,
          reportingInstance: this.instance.slice(0, 128),
          regarding,
          type,
          reason,
          action,
          note: note.length > 1024 ? `${note.slice(0, 1021)}...` : note,
        },
      });
    } catch (err) {
      this.recent.delete(key); // let the next transition try again
      this.onError(err);
    }
  }

  private prune(now: number): void {
    for (const [k, t] of this.recent) if (t <= now - this.dedupeMs) this.recent.delete(k);
  }
}
