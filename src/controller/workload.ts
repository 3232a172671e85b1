import type { LLMService } from '../api/index.js';
import type { WorkloadOverride } from '../solver/from-api.js';

// Where the request rate and size distribution come from. The reconciler only sees this interface; the
// Static source reads the spec, and the Prometheus source (P4) plugs in through `WorkloadSources` without
// touching the reconciler. A failing measured source falls back to spec.workload.static when the spec has
// one (the examples document it as "used until Prometheus has data") and says so in MetricsAvailable.

export type WorkloadSourceName = 'Static' | 'Prometheus';

export interface MetricsConditionUpdate {
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

export type WorkloadEstimate =
  | {
      ok: true;
      /** Passed to instanceFromService: the measured (or static) rate and distribution. */
      override: WorkloadOverride;
      source: WorkloadSourceName;
      requestsPerSecond: number;
      window?: string;
      metrics: MetricsConditionUpdate;
      /** True when a measured source failed and the static workload stands in. */
      fallback: boolean;
    }
  | { ok: false; reason: string; message: string; metrics: MetricsConditionUpdate };

export interface WorkloadSource {
  estimate(service: LLMService, signal?: AbortSignal): Promise<WorkloadEstimate>;
}

/** spec.workload.static, verbatim. */
export class StaticWorkloadSource implements WorkloadSource {
  async estimate(service: LLMService): Promise<WorkloadEstimate> {
    const s = service.spec.workload.static;
    if (!s) {
      const message = 'spec.workload.static is missing: no request rate or size distribution to plan for';
      return { ok: false, reason: 'NoWorkload', message, metrics: { status: 'False', reason: 'NoWorkload', message } };
    }
    return {
      ok: true,
      override: { requestsPerSecond: s.requestsPerSecond, distribution: s.distribution },
      source: 'Static',
      requestsPerSecond: s.requestsPerSecond,
      metrics: { status: 'True', reason: 'StaticWorkload', message: `planning for the static workload in the spec: ${s.requestsPerSecond} req/s` },
      fallback: false,
    };
  }
}

/** Dispatches on spec.workload.source; a missing or failing measured source falls back to Static. */
export class WorkloadSources implements WorkloadSource {
  private readonly fallback = new StaticWorkloadSource();

  constructor(private readonly sources: Partial<Record<WorkloadSourceName, WorkloadSource>> = {}) {}

  async estimate(service: LLMService, signal?: AbortSignal): Promise<WorkloadEstimate> {
    const name = service.spec.workload.source;
    if (name === 'Static') return (this.sources.Static ?? this.fallback).estimate(service, signal);
    const source = this.sources[name];
    const measured: WorkloadEstimate = source
      ? await source.estimate(service, signal)
      : {
          ok: false,
          reason: 'SourceNotAvailable',
          message: `workload source ${name} is not available in this operator build`,
          metrics: { status: 'False', reason: 'SourceNotAvailable', message: `workload source ${name} is not available in this operator build` },
        };
    if (measured.ok) return measured;
    const stat = await this.fallback.estimate(service);
    if (!stat.ok) return measured;
    const message = `${measured.metrics.message}; planning with spec.workload.static (${stat.requestsPerSecond} req/s) instead`;
    return { ...stat, fallback: true, metrics: { status: 'False', reason: measured.metrics.reason, message } };
  }
}
