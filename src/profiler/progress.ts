/**
 * Progress on stderr: on a TTY one line redrawn in place (bar, bucket, probe, ETA); otherwise one plain line per
 * probe and per bucket, which is what logs and CI want. The ETA = probes still expected x the mean wall time of
 * the probes so far; a bucket not started is expected to take as many probes as the finished ones did on average.
 */
import type { ProfileEvent } from './run.js';

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const t = Math.round(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}

const rateStr = (r: number) => (r >= 100 ? r.toFixed(0) : r >= 1 ? r.toFixed(2) : r.toPrecision(2));

/** Typical number of probes per bucket before any bucket finished (alone + ~5 ramp + ~3 bisection). */
const TYPICAL_PROBES = 9;

export class ProgressReporter {
  private total = 0;
  private doneBuckets = 0;
  private probeWall = 0;
  private probes = 0;
  private finishedBucketProbes: number[] = [];
  private currentProbes = 0;
  private line = '';
  private readonly tty: boolean;

  constructor(private readonly out: ProgressStream, private readonly now: () => number = () => performance.now()) {
    this.tty = out.isTTY === true;
  }

  private started = 0;
  private probeStarted = 0;

  eta(): number | undefined {
    if (this.probes === 0) return undefined;
    const perProbe = this.probeWall / this.probes;
    const typical = this.finishedBucketProbes.length > 0 ? this.finishedBucketProbes.reduce((s, v) => s + v, 0) / this.finishedBucketProbes.length : TYPICAL_PROBES;
    const remainingBuckets = Math.max(0, this.total - this.doneBuckets - 1);
    const current = this.doneBuckets < this.total ? Math.max(1, typical - this.currentProbes) : 0;
    return (remainingBuckets * typical + current) * perProbe;
  }

  private bar(width = 20): string {
    const frac = this.total > 0 ? this.doneBuckets / this.total : 0;
    const full = Math.round(frac * width);
    return `[${'#'.repeat(full)}${'-'.repeat(width - full)}]`;
  }

  private draw(text: string): void {
    if (this.tty) {
      const cols = this.out.columns ?? 100;
      const t = text.length > cols - 1 ? `${text.slice(0, cols - 2)}…` : text;
      this.out.write(`\r\x1b[2K${t}`);
      this.line = t;
    } else {
      this.out.write(`${text}\n`);
    }
  }

  /** Ends the in-place line (TTY) so later output starts on a fresh line. */
  close(): void {
    if (this.tty && this.line !== '') this.out.write('\n');
    this.line = '';
  }

  onEvent = (e: ProfileEvent): void => {
    switch (e.type) {
      case 'start': {
        this.started = this.now();
        this.total = e.buckets.length;
        this.doneBuckets = 0;
        const target = e.emulator ? `EMULATOR ${e.emulator} (time x${e.timeScale})` : e.timeScale !== 1 ? `time x${e.timeScale}` : 'endpoint';
        this.draw(`profile: ${e.buckets.length} buckets of ${e.model} on ${target}, ${e.timing} timing${e.resumed ? `, resuming (${e.done} buckets already done)` : ''}`);
        if (this.tty) this.close();
        return;
      }
      case 'probe-start': {
        this.probeStarted = this.now();
        const what = e.step.action === 'alone' ? 'one request alone' : `${rateStr(e.step.rate)} req/s (${e.step.phase}), ${e.requests} requests`;
        if (this.tty) {
          const eta = this.eta();
          this.draw(`${this.bar()} ${this.doneBuckets}/${this.total} buckets · ${e.bucket.input} in/${e.bucket.output} out · probe ${this.currentProbes + 1}: ${what} · ETA ${eta === undefined ? '?' : formatDuration(eta)}`);
        }
        return;
      }
      case 'probe-done': {
        const wall = (this.now() - this.probeStarted) / 1000;
        this.probeWall += wall;
        this.probes++;
        this.currentProbes++;
        if (!this.tty) {
          const m = e.record.measurement;
          const what =
            e.record.outcome === 'rejected'
              ? `rejected: ${e.record.error ?? ''}`
              : e.record.kind === 'alone'
                ? `alone: ${m?.meanTpotMillis.toFixed(1)} ms/token`
                : `${rateStr(e.record.nominalRate)} req/s -> offered ${rateStr(m?.rate ?? 0)}, mean TPOT ${m?.meanTpotMillis.toFixed(1)} ms, ${rateStr(m?.throughput ?? 0)} done/s: ${e.verdict.toUpperCase()}`;
          const eta = this.eta();
          this.draw(`profile: bucket ${e.index + 1}/${this.total} (${e.bucket.input} in, ${e.bucket.output} out) probe ${this.currentProbes}: ${what} [${wall.toFixed(1)}s, ETA ${eta === undefined ? '?' : formatDuration(eta)}]`);
        }
        return;
      }
      case 'bucket-done': {
        if (this.currentProbes > 0) this.finishedBucketProbes.push(this.currentProbes);
        this.currentProbes = 0;
        this.doneBuckets++;
        const r = e.summary.result;
        const what = r?.status === 'cannot-serve' ? `CANNOT SERVE (${r.reason})` : `max ${rateStr(e.summary.maxThroughput)} req/s${r?.status === 'measured' && !r.bracketed ? ' (lower bound)' : ''}`;
        this.draw(`profile: ${this.tty ? `${this.bar()} ` : ''}bucket ${e.index + 1}/${this.total} (${e.bucket.input} in, ${e.bucket.output} out): ${what} · ${e.summary.probes} probes · elapsed ${formatDuration((this.now() - this.started) / 1000)}`);
        if (this.tty) this.close();
        return;
      }
      case 'stopped':
        this.close();
        this.draw(`profile: stopped (${e.reason}): ${e.message}`);
        if (this.tty) this.close();
        return;
    }
  };
}
