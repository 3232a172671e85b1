import { describe, expect, it } from 'vitest';
import { StaticWorkloadSource, WorkloadSources, type WorkloadSource } from '../../../src/controller/workload.js';
import { service } from './fixtures.js';

describe('workload sources (the seam for Prometheus, P4)', () => {
  it('Static reads the spec and says so in MetricsAvailable', async () => {
    const e = await new StaticWorkloadSource().estimate(service());
    expect(e).toMatchObject({ ok: true, source: 'Static', requestsPerSecond: 10, fallback: false, metrics: { status: 'True', reason: 'StaticWorkload' } });
  });

  it('a measured source that is missing falls back to spec.workload.static, MetricsAvailable=False', async () => {
    const svc = service({ spec: { workload: { source: 'Prometheus', prometheus: {}, static: { requestsPerSecond: 3, distribution: [[1, 0], [0, 0]] } } } });
    const e = await new WorkloadSources().estimate(svc);
    expect(e).toMatchObject({ ok: true, source: 'Static', requestsPerSecond: 3, fallback: true, metrics: { status: 'False', reason: 'SourceNotAvailable' } });
  });

  it('a measured source that works is used; one that fails without a static fallback holds', async () => {
    const measured: WorkloadSource = {
      estimate: async () => ({ ok: true, override: { requestsPerSecond: 7 }, source: 'Prometheus', requestsPerSecond: 7, window: '5m', fallback: false, metrics: { status: 'True', reason: 'MetricsFound', message: 'ok' } }),
    };
    const svc = service({ spec: { workload: { source: 'Prometheus', prometheus: {} } } });
    expect(await new WorkloadSources({ Prometheus: measured }).estimate(svc)).toMatchObject({ ok: true, requestsPerSecond: 7, source: 'Prometheus' });
    const broken: WorkloadSource = { estimate: async () => ({ ok: false, reason: 'NoData', message: 'empty vector', metrics: { status: 'False', reason: 'NoData', message: 'empty vector' } }) };
    expect(await new WorkloadSources({ Prometheus: broken }).estimate(svc)).toMatchObject({ ok: false, reason: 'NoData' });
  });
});
