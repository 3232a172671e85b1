import { LLMServiceConditionTypes as C, findCondition, type LLMServiceStatus } from '../api/index.js';
import type { EventType } from './events.js';

// Which Events a status change deserves: transitions only (a new allocation, a failure starting or
// changing, capacity becoming ready), never one per reconcile. Pure, so it is unit-tested.

export interface Notice {
  type: EventType;
  reason: string;
  action: string;
  note: string;
}

const replicasOf = (s: LLMServiceStatus | undefined) =>
  Object.fromEntries((s?.allocation ?? []).filter((a) => a.replicas > 0).map((a) => [a.pool, a.replicas]));

export function noticesFor(prev: LLMServiceStatus | undefined, next: LLMServiceStatus): Notice[] {
  const out: Notice[] = [];
  const before = replicasOf(prev);
  const after = replicasOf(next);
  const changed = JSON.stringify(Object.entries(before).sort()) !== JSON.stringify(Object.entries(after).sort());
  if (changed && next.allocation) {
    const from = prev?.mix ? `${prev.mix} ($${prev.costPerHour ?? '?'}/h)` : 'nothing';
    out.push({ type: 'Normal', reason: 'AllocationChanged', action: 'Scale', note: `GPU mix ${from} -> ${next.mix || 'no replicas'} ($${next.costPerHour ?? '?'}/h)` });
  }

  const s0 = findCondition(prev?.conditions, C.Solved);
  const s1 = findCondition(next.conditions, C.Solved);
  if (s1?.status === 'False' && (s0?.status !== 'False' || s0.reason !== s1.reason || s0.observedGeneration !== s1.observedGeneration)) {
    out.push({ type: 'Warning', reason: s1.reason, action: 'Solve', note: s1.message });
  } else if (s1?.status === 'True' && s0?.status === 'False') {
    out.push({ type: 'Normal', reason: 'Solved', action: 'Solve', note: s1.message });
  }

  const c0 = findCondition(prev?.conditions, C.CapacityProvisioned);
  const c1 = findCondition(next.conditions, C.CapacityProvisioned);
  if (c1?.reason === 'ApplyFailed' && (c0?.reason !== 'ApplyFailed' || c0.message !== c1.message)) {
    out.push({ type: 'Warning', reason: 'ApplyFailed', action: 'Apply', note: c1.message });
  } else if (c1?.status === 'True' && c0?.status !== 'True') {
    out.push({ type: 'Normal', reason: 'CapacityReady', action: 'Scale', note: c1.message });
  }
  return out;
}
