import { describe, expect, it } from 'vitest';
import { formatDuration, ProgressReporter } from '../../../src/profiler/progress.js';
import type { BucketTarget } from '../../../src/profiler/plan.js';
import type { ProbeRecord } from '../../../src/profiler/search.js';

const b = (i: number): BucketTarget => ({ i, j: 0, input: 100 * (i + 1), output: 25, key: `${100 * (i + 1)}x25` });
const rec = (kind: 'alone' | 'load', rate: number): ProbeRecord => ({
  kind, nominalRate: rate, outcome: 'measured', timing: 'server', wallSeconds: 1, at: '',
  requests: { sent: 10, completed: 10, errors: 0, incomplete: 0, window: 6 },
  measurement: { input: 100, output: 25, rate, meanTpotMillis: 50, throughput: rate },
});

function drive(tty: boolean) {
  const out: string[] = [];
  const clock = { t: 0 };
  const p = new ProgressReporter({ write: (s) => out.push(s), isTTY: tty, columns: 200 }, () => clock.t);
  p.onEvent({ type: 'start', buckets: [b(0), b(1)], resumed: false, done: 0, timing: 'server', timeScale: 10, emulator: 'A10G', model: 'm' });
  for (const [k, kind] of (['alone', 'load'] as const).entries()) {
    p.onEvent({ type: 'probe-start', bucket: b(0), index: 0, step: kind === 'alone' ? { action: 'alone' } : { action: 'probe', rate: 2, phase: 'ramp' }, requests: 10, expectedWallS: 1 });
    clock.t += 10_000;
    p.onEvent({ type: 'probe-done', bucket: b(0), index: 0, record: rec(kind, k * 2), verdict: kind === 'alone' ? 'alone' : 'pass' });
  }
  p.onEvent({ type: 'bucket-done', bucket: b(0), index: 0, summary: { key: '100x25', input: 100, output: 25, probes: 2, result: { status: 'measured', bracketed: true }, maxThroughput: 2.5 } });
  p.onEvent({ type: 'probe-start', bucket: b(1), index: 1, step: { action: 'alone' }, requests: 3, expectedWallS: 1 });
  const eta = p.eta();
  p.onEvent({ type: 'stopped', reason: 'endpoint-error', message: 'gone' });
  return { out, eta };
}

describe('progress on stderr', () => {
  it('without a TTY: one plain line per probe and per bucket, with an ETA', () => {
    const { out, eta } = drive(false);
    expect(out.every((l) => l.endsWith('\n') && !l.includes('\r'))).toBe(true);
    expect(out[0]).toMatch(/^profile: 2 buckets of m on EMULATOR A10G \(time x10\), server timing/);
    expect(out.some((l) => /bucket 1\/2 \(100 in, 25 out\) probe 2: 2\.00 req\/s -> offered 2\.00, mean TPOT 50\.0 ms, 2\.00 done\/s: PASS \[10\.0s, ETA/.test(l))).toBe(true);
    expect(out.some((l) => /bucket 1\/2 \(100 in, 25 out\): max 2\.50 req\/s · 2 probes/.test(l))).toBe(true);
    expect(out.at(-1)).toMatch(/stopped \(endpoint-error\): gone/);
    // one bucket left, expected to take as many probes (2) as the finished one, 10 s each
    expect(eta).toBeCloseTo(20, 6);
  });

  it('on a TTY: one line redrawn in place with a bar, ended before anything else is printed', () => {
    const { out } = drive(true);
    expect(out.some((l) => l.startsWith('\r\x1b[2K[##########----------] 1/2 buckets · 200 in/25 out · probe 1: one request alone · ETA 20s'))).toBe(true);
    expect(out.filter((l) => l === '\n').length).toBeGreaterThanOrEqual(2);
  });

  it('formats durations', () => {
    expect(formatDuration(5)).toBe('5s');
    expect(formatDuration(125)).toBe('2m05s');
    expect(formatDuration(7300)).toBe('2h01m');
    expect(formatDuration(Number.NaN)).toBe('?');
  });
});
