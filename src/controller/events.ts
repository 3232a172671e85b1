import { V1MicroTime, type EventsV1Api, type V1ObjectReference } from '@kubernetes/client-node';

// events.k8s.io/v1 Events, best effort: a failed event never fails a reconcile. The reconciler emits on
// transitions (allocation changed, solve started failing); the recorder additionally drops an identical
// event for the same object within `dedupeMs`, a crude stand-in for client-go's event series.

export type EventType = 'Normal' | 'Warning';

export interface EventSink {
  emit(regarding: V1ObjectReference, type: EventType, reason: string, action: string, note: string): Promise<void>;
}

export class EventRecorder implements EventSink {
  private readonly recent = new Map<string, number>();

  constructor(
    private readonly api: EventsV1Api,
    private readonly controller: string,
    private readonly instance: string,
    private readonly onError: (e: unknown) => void = () => {},
    private readonly now: () => number = Date.now,
    private readonly dedupeMs = 300_000,
  ) {}

  async emit(regarding: V1ObjectReference, type: EventType, reason: string, action: string, note: string): Promise<void> {
    const now = this.now();
    const key = `${regarding.uid ?? ''}|${type}|${reason}|${note}`;
    if ((this.recent.get(key) ?? -Infinity) > now - this.dedupeMs) return;
    this.recent.set(key, now);
    if (this.recent.size > 10_000) this.prune(now);
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
