import { randomBytes, randomInt } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { testEnv } from '../support/env.js';
import { activeTargets, removeScrapeTargets, waitForQuery, writeScrapeTargets } from '../support/prometheus.js';
import { startGaugeExporter, type TestExporter } from '../support/test-exporter.js';
import { waitFor } from '../support/wait.js';

describe('real Prometheus', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('scrapes a target added through file_sd and answers an instant query with its exact value', async () => {
    const { prometheusUrl, fileSdDir } = testEnv();
    expect(prometheusUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const value = randomInt(1, 1_000_000) + randomInt(0, 1000) / 1000;
    const metric = `melange_test_gauge_${randomBytes(4).toString('hex')}`;
    const exporter: TestExporter = await startGaugeExporter(metric, value);
    cleanups.push(() => exporter.close());
    const sdName = `prometheus-test-${randomBytes(3).toString('hex')}`;
    await writeScrapeTargets(fileSdDir, sdName, [{ targets: [exporter.target], labels: { job: 'prometheus-test', run: sdName } }]);
    cleanups.push(() => removeScrapeTargets(fileSdDir, sdName));

    // Discovered within ~1 s (file_sd refresh) and scraped every 1 s.
    await waitFor(async () => (await activeTargets(prometheusUrl)).some((t) => t.labels.run === sdName && t.health === 'up'), {
      what: `target ${exporter.target} up`,
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    const samples = await waitForQuery(prometheusUrl, metric, (s) => s.length === 1 && s[0]?.value === value, 30_000);
    expect(samples[0]?.metric).toMatchObject({ __name__: metric, job: 'prometheus-test', instance: exporter.target, run: sdName });
    expect(samples[0]?.value).toBe(value);
  });
});
