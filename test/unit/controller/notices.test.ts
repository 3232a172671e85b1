import { describe, expect, it } from 'vitest';
import type { Condition, LLMServiceStatus } from '../../../src/api/index.js';
import { noticesFor } from '../../../src/controller/notices.js';

const c = (type: string, status: 'True' | 'False', reason: string, gen = 1, message = 'm'): Condition => ({ type, status, reason, message, observedGeneration: gen, lastTransitionTime: '2026-01-01T00:00:00Z' });
const st = (alloc: Array<[string, number]>, conds: Condition[], mix = ''): LLMServiceStatus => ({
  allocation: alloc.map(([pool, replicas]) => ({ pool, replicas, readyReplicas: 0, costPerHour: '1.00' })),
  mix,
  costPerHour: '1.00',
  conditions: conds,
});

describe('noticesFor (events on transitions only)', () => {
  const ok = [c('Solved', 'True', 'Optimal'), c('CapacityProvisioned', 'True', 'ReplicasReady')];

  it('nothing when nothing changed', () => {
    const s = st([['a', 2]], ok, '2xA');
    expect(noticesFor(s, structuredClone(s))).toEqual([]);
  });

  it('AllocationChanged when replicas per pool change (zeros ignored)', () => {
    const n = noticesFor(st([['a', 2], ['b', 0]], ok, '2xA'), st([['a', 1], ['b', 1]], ok, '1xA+1xB'));
    expect(n).toEqual([{ type: 'Normal', reason: 'AllocationChanged', action: 'Scale', note: 'GPU mix 2xA ($1.00/h) -> 1xA+1xB ($1.00/h)' }]);
    expect(noticesFor(st([['a', 2]], ok), st([['a', 2], ['b', 0]], ok))).toEqual([]);
  });

  it('a Warning with the failure reason when solving starts failing or fails differently, not on every pass', () => {
    const bad = [c('Solved', 'False', 'BucketUnservable', 2, 'bucket (input ≤ 12000 tokens, output ≤ 100 tokens)…'), ok[1]!];
    const n = noticesFor(st([['a', 2]], ok), st([['a', 2]], bad));
    expect(n).toEqual([{ type: 'Warning', reason: 'BucketUnservable', action: 'Solve', note: 'bucket (input ≤ 12000 tokens, output ≤ 100 tokens)…' }]);
    expect(noticesFor(st([['a', 2]], bad), st([['a', 2]], bad))).toEqual([]);
    const other = [c('Solved', 'False', 'PoolNotFound', 3), ok[1]!];
    expect(noticesFor(st([['a', 2]], bad), st([['a', 2]], other)).map((x) => x.reason)).toEqual(['PoolNotFound']);
  });

  it('Normal Solved on recovery, CapacityReady when capacity becomes ready, Warning ApplyFailed', () => {
    const bad = [c('Solved', 'False', 'Timeout'), c('CapacityProvisioned', 'False', 'WaitingForReplicas')];
    expect(noticesFor(st([['a', 2]], bad), st([['a', 2]], ok)).map((x) => x.reason)).toEqual(['Solved', 'CapacityReady']);
    const apply = [ok[0]!, c('CapacityProvisioned', 'False', 'ApplyFailed', 1, 'Deployment x: HTTP 422')];
    expect(noticesFor(st([['a', 2]], ok), st([['a', 2]], apply))).toEqual([{ type: 'Warning', reason: 'ApplyFailed', action: 'Apply', note: 'Deployment x: HTTP 422' }]);
  });
});
