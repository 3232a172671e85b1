import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DistributionError, distributionFrom, loadDistribution, meanSize, mulberry32, sizeSampler, type SizeDistribution } from '../../../src/loadgen/index.js';

const workloads = join(import.meta.dirname, '..', '..', '..', 'examples', 'workloads');

function frequencies(dist: SizeDistribution, n: number, seed = 1) {
  const sample = sizeSampler(dist, mulberry32(seed));
  const hits = new Array<number>(dist.ranges.length).fill(0);
  let outside = 0;
  for (let i = 0; i < n; i++) {
    const s = sample();
    const k = dist.ranges.findIndex((r) => s.input >= r.inputMin && s.input <= r.inputMax && s.output >= r.outputMin && s.output <= r.outputMax);
    if (k < 0) outside++;
    else hits[k]!++;
  }
  expect(outside).toBe(0);
  return hits.map((h) => h / n);
}

describe('distribution files', () => {
  it('points: sampled in proportion to their weights', async () => {
    const d = await distributionFrom({ points: [{ input: 100, output: 10, weight: 3 }, { input: 2000, output: 200, weight: 1 }] }, 'p');
    expect(d.ranges.map((r) => r.probability)).toEqual([0.75, 0.25]);
    const f = frequencies(d, 40_000);
    expect(Math.abs(f[0]! - 0.75)).toBeLessThan(0.01);
    expect(meanSize(d)).toEqual({ input: 0.75 * 100 + 0.25 * 2000, output: 0.75 * 10 + 0.25 * 200 });
  });

  it('buckets: uniform inside (lower, upper], frequencies follow the weights; `upper` samples the edges', async () => {
    const raw = { buckets: { inputEdges: [100, 1000], outputEdges: [50, 500], weights: [[1, 0], [2, 1]] } };
    const d = await distributionFrom(raw, 'b');
    expect(d.ranges).toEqual([
      { inputMin: 1, inputMax: 100, outputMin: 1, outputMax: 50, probability: 0.25 },
      { inputMin: 101, inputMax: 1000, outputMin: 1, outputMax: 50, probability: 0.5 },
      { inputMin: 101, inputMax: 1000, outputMin: 51, outputMax: 500, probability: 0.25 },
    ]);
    const f = frequencies(d, 40_000, 3);
    f.forEach((x, i) => expect(Math.abs(x - d.ranges[i]!.probability)).toBeLessThan(0.012));
    // uniform within a range: the mean input of the second range is ~550
    const sample = sizeSampler({ name: 'one', ranges: [d.ranges[1]!] }, mulberry32(4));
    let sum = 0;
    for (let i = 0; i < 20_000; i++) sum += sample().input;
    expect(Math.abs(sum / 20_000 - 550.5)).toBeLessThan(6);

    const upper = await distributionFrom({ buckets: { ...raw.buckets, sample: 'upper' } }, 'u');
    expect(upper.ranges.map((r) => [r.inputMin, r.inputMax, r.outputMin, r.outputMax])).toEqual([
      [100, 100, 50, 50],
      [1000, 1000, 50, 50],
      [1000, 1000, 500, 500],
    ]);
  });

  it('rejects malformed files with a message naming the problem', async () => {
    await expect(distributionFrom({ buckets: { inputEdges: [10, 5], outputEdges: [1], weights: [[1], [1]] } }, 'f')).rejects.toThrow(/strictly increasing/);
    await expect(distributionFrom({ buckets: { inputEdges: [10], outputEdges: [1, 2], weights: [[1]] } }, 'f')).rejects.toThrow(/one entry per output edge/);
    await expect(distributionFrom({ points: [{ input: 1, output: 1 }], buckets: { inputEdges: [1], outputEdges: [1], weights: [[1]] } }, 'f')).rejects.toThrow(/exactly one of/);
    await expect(distributionFrom({ points: [{ input: 1, output: 1, weight: 0 }] }, 'f')).rejects.toThrow(DistributionError);
    await expect(distributionFrom({ points: [{ input: 0, output: 1 }] }, 'f')).rejects.toThrow(DistributionError);
    await expect(loadDistribution('/nonexistent/x.yaml')).rejects.toThrow(DistributionError);
  });

  it('mix: resolves files relative to the mixing file and weights them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'melange-dist-'));
    writeFileSync(join(dir, 'a.json'), JSON.stringify({ points: [{ input: 10, output: 10 }] }));
    writeFileSync(join(dir, 'b.yaml'), 'points:\n  - {input: 5000, output: 100, weight: 1}\n  - {input: 6000, output: 100, weight: 1}\n');
    writeFileSync(join(dir, 'mix.yaml'), 'name: m\nmix:\n  - {weight: 3, file: a.json}\n  - {weight: 1, file: b.yaml}\n');
    const d = await loadDistribution(join(dir, 'mix.yaml'));
    expect(d.name).toBe('m');
    expect(d.ranges.map((r) => [r.inputMin, r.probability])).toEqual([
      [10, 0.75],
      [5000, 0.125],
      [6000, 0.125],
    ]);
  });
});

describe('shipped workloads (examples/workloads)', () => {
  it('short-chat is mostly short, long-docs mostly long, mixed-80-20 is 80% short-chat and 20% long-docs', async () => {
    const short = await loadDistribution(join(workloads, 'short-chat.yaml'));
    const long = await loadDistribution(join(workloads, 'long-docs.yaml'));
    const mixed = await loadDistribution(join(workloads, 'mixed-80-20.yaml'));
    const pShort = (d: SizeDistribution) => d.ranges.filter((r) => r.inputMax <= 1000).reduce((s, r) => s + r.probability, 0);
    expect(pShort(short)).toBeGreaterThan(0.85);
    expect(pShort(long)).toBeLessThan(0.25);
    expect(pShort(mixed)).toBeCloseTo(0.8 * pShort(short) + 0.2 * pShort(long), 10);
    expect(meanSize(mixed).input).toBeCloseTo(0.8 * meanSize(short).input + 0.2 * meanSize(long).input, 6);
    expect(meanSize(long).input).toBeGreaterThan(4 * meanSize(short).input);
    expect(mixed.ranges.reduce((s, r) => s + r.probability, 0)).toBeCloseTo(1, 12);
  });

  it('the fixed-size workload has one size', async () => {
    const d = await loadDistribution(join(workloads, 'fixed-1k-in-250-out.yaml'));
    expect(d.ranges).toEqual([{ inputMin: 1000, inputMax: 1000, outputMin: 250, outputMax: 250, probability: 1 }]);
  });
});
