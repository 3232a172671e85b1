/**
 * The reference for the joint solve of services sharing one capped pool (tests only): for each service and
 * every (replicas on the shared pool, replicas on its other pool) pair, a solve pinned to exactly those
 * replicas gives that service's cost curve; then every combination of the curves under the GPU cap. Exponential,
 * so only for the small cases the tests use (two GPU types per service, R replicas at most per type).
 */
import type { GPUPool, GPUProfile, LLMService } from '../../src/api/index.js';
import { instanceFromService } from '../../src/solver/from-api.js';
import { isSuccess, solve, type SolveInput } from '../../src/solver/index.js';

type Engine = Parameters<typeof solve>[1];

export function bruteForceJointCost(
  services: readonly LLMService[],
  refs: { profiles: GPUProfile[]; pools: GPUPool[] },
  shared: string,
  capGPUs: number,
  engine: Engine,
  R = 6,
): number {
  const curves = services.map((s) => {
    const inst = instanceFromService(s, refs);
    if (!inst.ok) throw new Error(JSON.stringify(inst.errors));
    const out = Array.from({ length: R + 1 }, () => Infinity);
    for (let a = 0; a <= R; a++) {
      for (let b = 0; b <= R; b++) {
        const pin = (id: string) => (id === shared ? a : b);
        const input: SolveInput = { ...inst.value.input, gpus: inst.value.input.gpus.map((g) => ({ ...g, minReplicas: pin(g.id), maxReplicas: pin(g.id) })) };
        const res = solve(input, engine);
        if (isSuccess(res) && a + b >= 1) out[a] = Math.min(out[a]!, res.costPerHour);
      }
    }
    return out;
  });
  let best = Infinity;
  const rec = (i: number, used: number, cost: number) => {
    if (i === curves.length) return void (best = Math.min(best, cost));
    for (let a = 0; a <= R && used + a <= capGPUs; a++) if (curves[i]![a]! < Infinity) rec(i + 1, used + a, cost + curves[i]![a]!);
  };
  rec(0, 0, 0);
  return best;
}
