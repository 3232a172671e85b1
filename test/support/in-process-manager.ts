/**
 * Pool tests run the operator's Manager in the test process (not the CLI): they need knobs the CLI does not
 * expose (a 300 ms GPUPool resync) and direct access to a shared HiGHS engine. Leader election off, one
 * namespace watched, logs silent. Plus the GPUPool/GPUProfile fixtures those tests build from.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { createLogger } from '../../src/controller/logger.js';
import { Manager, type ManagerOptions } from '../../src/controller/manager.js';
import { createMetrics } from '../../src/controller/metrics.js';
import { loadHighsEngine, solve, type MilpEngine } from '../../src/solver/index.js';

type Obj = Record<string, unknown>;

export interface InProcessManager {
  engine: MilpEngine;
  /** Aborts the manager and waits for it to stop; resolves to its exit code (0: a clean stop). */
  stop(): Promise<number>;
}

export async function startInProcessManager(
  kc: KubeConfig,
  namespace: string,
  identity: string,
  extra: Pick<ManagerOptions, 'gpuPools'> = {},
): Promise<InProcessManager> {
  const engine = await loadHighsEngine();
  const abort = new AbortController();
  const manager = new Manager({
    kc,
    log: createLogger('silent'),
    metrics: createMetrics(),
    solve: async (input) => solve(input, engine),
    leaderElection: { enabled: false, namespace, name: 'unused', identity },
    watchNamespace: namespace,
    ...extra,
  });
  const done = manager.run(abort.signal);
  return {
    engine,
    stop: async () => {
      abort.abort();
      return done;
    },
  };
}

/** A GPUPool selecting kwok nodes labelled `<gpuType>-<suffix>`, tolerating the GPU taint. */
export const fixturePool = (name: string, gpuType: string, cost: string, suffix: string, extra: Obj = {}): Obj => ({
  apiVersion: 'melange.dev/v1alpha1',
  kind: 'GPUPool',
  metadata: { name },
  spec: {
    gpuType,
    costPerGPUHour: cost,
    gpusPerNode: 1,
    nodeSelector: { 'nvidia.com/gpu.product': `${gpuType}-${suffix}` },
    tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
    ...extra,
  },
});

/** A GPUProfile at a 100 ms TPOT SLO. */
export const fixtureProfile = (name: string, gpuType: string, buckets: Obj, maxThroughput: number[][]): Obj => ({
  apiVersion: 'melange.dev/v1alpha1',
  kind: 'GPUProfile',
  metadata: { name },
  spec: { model: 'm', gpuType, slo: { tpotMillis: 100 }, buckets, maxThroughput },
});
