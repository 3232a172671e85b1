import type { PlanReport } from './plan-report.js';

/** Left-aligned columns, two spaces apart; the header row is the first row. */
export function table(rows: ReadonlyArray<ReadonlyArray<string>>): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 0, cell.length); });
  return rows.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

const pct = (x: number) => `${(x * 100).toFixed(0)}%`;

export function renderPlanTable(r: PlanReport): string {
  const out: string[] = [];
  const ns = r.service.namespace ? `${r.service.namespace}/` : '';
  out.push(`LLMService ${ns}${r.service.name}: ${r.service.model}, SLO mean TPOT ≤ ${r.service.sloTpotMillis} ms`);
  out.push(`Workload: ${r.workload.requestsPerSecond} req/s + ${r.workload.headroomPercent}% headroom, ` +
    `${r.workload.mode}${r.workload.sliceFactor ? ` (S=${r.workload.sliceFactor})` : ''} split`);
  if (r.profiles.illustrative) out.push(`NOTE: ${r.profiles.note ?? 'illustrative profiles, not measurements'}`);
  out.push('');
  if (r.failure) {
    out.push(`No plan: ${r.failure.reason}: ${r.failure.message}`);
  } else {
    out.push(table([
      ['POOL', 'GPU', 'REPLICAS', '$/H', 'UTILISATION'],
      ...r.allocation.map((a) => [a.pool, a.gpuType, String(a.replicas), a.costPerHour, a.replicas > 0 ? pct(a.utilisation) : '-']),
    ]));
    out.push('');
    out.push(`Mix ${r.mix}: $${r.costPerHour}/h`);
    out.push(r.bestSingleType
      ? `Best single type: ${r.bestSingleType.pool} at $${r.bestSingleType.costPerHour}/h; savings ${r.savingsPercent?.toFixed(1)}%`
      : 'No single GPU type can serve this workload alone.');
  }
  out.push(`Solve: ${r.solve.status} in ${r.solve.millis.toFixed(1)} ms (${r.solve.engine}, ${r.solve.mode})`);
  out.push('');
  out.push('Single-type baselines:');
  out.push(table([
    ['POOL', 'REPLICAS', '$/H', 'NOTE'],
    ...r.baselines.map((b) => [b.pool, b.replicas === undefined ? '-' : String(b.replicas), b.costPerHour ?? '-', b.reason ?? '']),
  ]));
  if (r.split.length > 0) {
    const pools = r.allocation.filter((a) => a.replicas > 0).map((a) => a.pool);
    out.push('');
    out.push('Bucket split (share of each bucket\'s requests per pool):');
    out.push(table([
      ['INPUT≤', 'OUTPUT≤', 'REQ/S', ...pools],
      ...r.split.map((s) => [String(s.inputMaxTokens), String(s.outputMaxTokens), s.requestsPerSecond.toFixed(3),
        ...pools.map((p) => (s.weights[p] ? pct(s.weights[p]) : '-'))]),
    ]));
  }
  return out.join('\n');
}
