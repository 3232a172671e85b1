import { CONDITION_MESSAGE_MAX, type Condition, type ConditionStatus } from './meta.js';

/** A condition to set; lastTransitionTime is decided by setCondition. */
export type ConditionUpdate = Omit<Condition, 'lastTransitionTime'>;

/** metav1.Time serialises with second precision; matching it avoids a spurious diff on every status write. */
export const toKubeTime = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/**
 * Returns a new list with `update` applied (same semantics as apimachinery's meta.SetStatusCondition):
 * lastTransitionTime moves only when the status flips or the condition is new; reason, message and
 * observedGeneration always take the new values. Order is preserved and new types are appended, so an
 * unchanged input yields a deep-equal output (status is only written when it changed).
 */
export function setCondition(list: readonly Condition[] | undefined, update: ConditionUpdate, now: Date): Condition[] {
  const message =
    update.message.length > CONDITION_MESSAGE_MAX ? `${update.message.slice(0, CONDITION_MESSAGE_MAX - 3)}...` : update.message;
  const current = list ?? [];
  const existing = current.find((c) => c.type === update.type);
  const lastTransitionTime =
    existing && existing.status === update.status ? existing.lastTransitionTime : toKubeTime(now);
  const next: Condition = { ...update, message, lastTransitionTime };
  if (next.observedGeneration === undefined) delete next.observedGeneration;
  return existing ? current.map((c) => (c === existing ? next : c)) : [...current, next];
}

export function findCondition(list: readonly Condition[] | undefined, type: string): Condition | undefined {
  return list?.find((c) => c.type === type);
}

export function removeCondition(list: readonly Condition[] | undefined, type: string): Condition[] {
  return (list ?? []).filter((c) => c.type !== type);
}

export function conditionStatus(list: readonly Condition[] | undefined, type: string): ConditionStatus {
  return findCondition(list, type)?.status ?? 'Unknown';
}

export const isConditionTrue = (list: readonly Condition[] | undefined, type: string): boolean =>
  conditionStatus(list, type) === 'True';

/** True when the condition exists, is True and was computed from the given generation (kstatus "current"). */
export function isConditionCurrent(list: readonly Condition[] | undefined, type: string, generation: number): boolean {
  const c = findCondition(list, type);
  return c?.status === 'True' && c.observedGeneration === generation;
}
