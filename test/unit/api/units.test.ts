import { describe, expect, it } from 'vitest';
import {
  MoneySchema,
  formatMix,
  formatPercent,
  findCondition,
  formatMoney,
  isConditionCurrent,
  isConditionTrue,
  parseDurationMs,
  parseMoney,
  parseMoneyMicros,
  removeCondition,
  setCondition,
  toKubeTime,
  type Condition,
} from '../../../src/api/index.js';

describe('money', () => {
  it.each([
    ['0', 0],
    ['0.70', 0.7],
    ['7.516', 7.516],
    ['9999999.999999', 9999999.999999],
    ['1.000001', 1.000001],
  ])('parses %s', (s, n) => {
    expect(parseMoney(s)).toBe(n);
  });

  it.each(['', '.5', '01', '1.', '1.1234567', '-1', '1e3', ' 1', '10000000', '1,5', 'NaN'])('rejects %j', (s) => {
    expect(() => parseMoney(s)).toThrow(RangeError);
    expect(MoneySchema.safeParse(s).success).toBe(false);
  });

  it('keeps exact micro-units for sums without float drift', () => {
    expect(parseMoneyMicros('0.1') + parseMoneyMicros('0.2')).toBe(parseMoneyMicros('0.3'));
    expect(parseMoneyMicros('7.516')).toBe(7_516_000);
  });

  it.each([
    [0, '0.00'],
    [-0, '0.00'],
    [3, '3.00'],
    [12.5, '12.50'],
    [7.516, '7.516'],
    [0.1 + 0.2, '0.30'],
    [1.23456789, '1.234568'],
    [0.0000004, '0.00'],
    [9999999.999999, '9999999.999999'],
  ])('formats %d as %s', (n, s) => {
    expect(formatMoney(n)).toBe(s);
    expect(MoneySchema.safeParse(formatMoney(n)).success).toBe(true);
  });

  it.each([-0.01, Number.NaN, Number.POSITIVE_INFINITY, 10_000_000])('refuses to format %d', (n) => {
    expect(() => formatMoney(n)).toThrow(RangeError);
  });

  it('round-trips', () => {
    for (const s of ['0.70', '1.01', '3.67', '7.516', '123.456789']) expect(parseMoney(formatMoney(parseMoney(s)))).toBe(parseMoney(s));
  });
});

describe('durations', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['2h', 7_200_000],
  ])('parses %s', (s, ms) => {
    expect(parseDurationMs(s)).toBe(ms);
  });

  it.each(['', '0s', '5', '1m30s', '1.5s', 's', '-1s', '5d', '05m'])('rejects %j', (s) => {
    expect(() => parseDurationMs(s)).toThrow(RangeError);
  });
});

describe('conditions', () => {
  const t0 = new Date('2026-01-01T00:00:00.123Z');
  const t1 = new Date('2026-01-01T00:05:00Z');
  const ready = (status: Condition['status'], reason = 'Solved', observedGeneration = 1) => ({
    type: 'Ready',
    status,
    reason,
    message: `m-${reason}`,
    observedGeneration,
  });

  it('adds a new condition stamped with now, at second precision', () => {
    const list = setCondition(undefined, ready('True'), t0);
    expect(list).toEqual([{ ...ready('True'), lastTransitionTime: '2026-01-01T00:00:00Z' }]);
    expect(toKubeTime(t1)).toBe('2026-01-01T00:05:00Z');
  });

  it('keeps lastTransitionTime when the status does not change, but updates reason/message/generation', () => {
    const a = setCondition([], ready('True', 'Solved', 1), t0);
    const b = setCondition(a, ready('True', 'Resolved', 2), t1);
    expect(b[0]?.lastTransitionTime).toBe('2026-01-01T00:00:00Z');
    expect(b[0]?.reason).toBe('Resolved');
    expect(b[0]?.observedGeneration).toBe(2);
  });

  it('moves lastTransitionTime when the status flips', () => {
    const a = setCondition([], ready('True'), t0);
    const b = setCondition(a, ready('False', 'SolveFailed'), t1);
    expect(b[0]?.lastTransitionTime).toBe('2026-01-01T00:05:00Z');
    expect(b[0]?.status).toBe('False');
  });

  it('is pure, preserves order and is idempotent', () => {
    const a = setCondition(setCondition([], ready('True'), t0), { ...ready('True'), type: 'Solved' }, t0);
    const frozen = Object.freeze([...a]);
    const b = setCondition(frozen, ready('True'), t1);
    expect(b).not.toBe(frozen);
    expect(b.map((c) => c.type)).toEqual(['Ready', 'Solved']);
    expect(b).toEqual(a);
  });

  it('truncates messages to the API limit', () => {
    const c = setCondition([], { ...ready('True'), message: 'x'.repeat(40_000) }, t0);
    expect(c[0]?.message.length).toBe(32768);
  });

  it('finds, removes and checks conditions', () => {
    const list = setCondition(setCondition([], ready('True', 'Ok', 3), t0), { ...ready('False'), type: 'Degraded' }, t0);
    expect(findCondition(list, 'Degraded')?.status).toBe('False');
    expect(findCondition(list, 'Nope')).toBeUndefined();
    expect(isConditionTrue(list, 'Ready')).toBe(true);
    expect(isConditionTrue(list, 'Degraded')).toBe(false);
    expect(isConditionTrue(undefined, 'Ready')).toBe(false);
    expect(isConditionCurrent(list, 'Ready', 3)).toBe(true);
    expect(isConditionCurrent(list, 'Ready', 4)).toBe(false);
    expect(removeCondition(list, 'Ready').map((c) => c.type)).toEqual(['Degraded']);
  });
});

describe('status formatting', () => {
  it('formats percentages with one decimal and no negative zero', () => {
    expect(formatPercent(24.137)).toBe('24.1');
    expect(formatPercent(-0.01)).toBe('0.0');
    expect(formatPercent(-3.26)).toBe('-3.3');
    expect(() => formatPercent(Number.NaN)).toThrow(RangeError);
  });

  it('formats the mix', () => {
    expect(
      formatMix([
        { pool: 'a10g', gpuType: 'A10G', replicas: 2 },
        { pool: 'l4', replicas: 0 },
        { pool: 'a100', replicas: 1 },
      ]),
    ).toBe('2xA10G+1xa100');
    expect(formatMix([])).toBe('');
  });
});
