import type { LoadReport } from './run.js';
import type { Summary } from './stats.js';

const ms = (v: number | null) => (v === null ? '-' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const pad = (s: string, n: number) => s.padStart(n);

/** A human-readable report; `-o json` prints the LoadReport itself. */
export function renderLoadTable(r: LoadReport): string {
  const lines: string[] = [];
  const target = r.target.emulator ? `${r.target.url} (EMULATOR: ${r.target.emulator})` : r.target.url;
  lines.push(`target      ${target}  ${r.target.api}${r.target.stream ? ', streaming' : ''}  model ${r.target.model ?? '(none)'}`);
  const scaleNote = r.timeScale.value === 1 ? '' : `  (times x${r.timeScale.value}, ${r.timeScale.source}: all times below are target time)`;
  lines.push(`offered     ${r.offered.rate} req/s, at most ${r.offered.maxRequests} requests in ${r.offered.durationS} s, sizes from ${r.offered.distribution}${scaleNote}`);
  const errs = Object.entries(r.errorKinds).map(([k, v]) => `${k} ${v}`).join(', ');
  lines.push(`requests    sent ${r.sent}, completed ${r.completed}, errors ${r.errors}, incomplete ${r.incomplete}${errs ? ` (${errs})` : ''}${r.delayedArrivals ? `, ${r.delayedArrivals} arrivals delayed by the in-flight cap` : ''}`);
  lines.push(`throughput  ${r.throughput.requestsPerSecond.toFixed(3)} req/s, ${r.throughput.outputTokensPerSecond.toFixed(1)} output tok/s, ${r.throughput.inputTokensPerSecond.toFixed(1)} input tok/s over ${r.elapsedSeconds.toFixed(2)} s (wall ${r.wallSeconds.toFixed(2)} s)`);
  lines.push('');
  lines.push(`${'(ms)'.padEnd(30)}${pad('mean', 9)}${pad('p50', 9)}${pad('p90', 9)}${pad('p99', 9)}${pad('max', 9)}`);
  const row = (name: string, s: Summary) => lines.push(`${name.padEnd(30)}${pad(ms(s.mean), 9)}${pad(ms(s.p50), 9)}${pad(ms(s.p90), 9)}${pad(ms(s.p99), 9)}${pad(ms(s.max), 9)}`);
  row('TTFT', r.ttftMs);
  row('TPOT = latency/output (SLO)', r.tpotMs);
  row('TPOT = (latency-TTFT)/(out-1)', r.itlMs);
  row('latency', r.latencyMs);
  lines.push('');
  lines.push(`sizes       prompt tokens mean ${r.promptTokens.mean?.toFixed(0) ?? '-'}, output tokens mean ${r.completionTokens.mean?.toFixed(0) ?? '-'}`);
  if (r.slo) {
    lines.push(
      `SLO         mean TPOT <= ${r.slo.tpotMillis} ms: ${r.slo.attainmentPercent.toFixed(2)}% of sent requests met it; ` +
        `mean TPOT ${ms(r.slo.meanTpotMs)} ms -> ${r.slo.meanMeetsSlo ? 'MET' : 'MISSED'}`,
    );
    lines.push(`            (TPOT = ${r.slo.metric}; errors and incomplete requests count as misses)`);
  }
  return lines.join('\n');
}
