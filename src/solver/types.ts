// The solver's own vocabulary. It is deliberately independent of the Kubernetes API types: the
// api layer converts decimal-string money and CRD shapes into these plain numbers.

/** Upper edges (tokens) of the input-length and output-length ranges; lower edge = previous upper edge. */
export interface Buckets {
  inputEdges: number[];
  outputEdges: number[];
}

/** Either a total rate with per-bucket fractions, or per-bucket rates directly (req/s). Matrices are [input][output]. */
export type Workload =
  | { totalRate: number; fractions: number[][] }
  | { bucketRates: number[][] };

export interface GpuOption {
  /** Stable identifier of the choice (the GPUPool name in the operator). */
  id: string;
  /** $ per replica-hour. */
  costPerHour: number;
  /** Max req/s one replica sustains under the SLO, per [input][output] bucket. 0 or missing = cannot serve. */
  maxThroughput: number[][];
  minReplicas?: number;
  maxReplicas?: number;
}

export type SolveMode = 'fractional' | 'sliced';

export interface SolveInput {
  buckets: Buckets;
  workload: Workload;
  gpus: GpuOption[];
  /** `fractional` (default): continuous split per bucket. `sliced`: the paper's S equal slices per bucket. */
  mode?: SolveMode;
  /** Slices per bucket in `sliced` mode (the paper used 8). */
  sliceFactor?: number;
  /** Multiplies every bucket rate by (1 + headroomPercent/100). */
  headroomPercent?: number;
  /** Replicas currently running per GPU id, for the change penalty. */
  current?: Record<string, number>;
  /** $/h charged per replica added or removed relative to `current` (0 = off). */
  changePenaltyPerReplica?: number;
  /** Wall-clock limit handed to the engine. */
  timeLimitMs?: number;
}

export interface TypeAllocation {
  id: string;
  replicas: number;
  costPerHour: number;
  /** Replica-equivalents of traffic assigned (Σ rate·share / throughput). */
  load: number;
  /** load / replicas, 0 when replicas = 0. */
  utilisation: number;
}

export interface BucketSplit {
  input: number;
  output: number;
  /** req/s in this bucket after headroom. */
  rate: number;
  /** Share of the bucket's traffic per GPU id; sums to 1. Ids with no share are omitted. */
  weights: Record<string, number>;
}

export type Baseline =
  | { id: string; feasible: true; replicas: number; costPerHour: number }
  | { id: string; feasible: false; reason: string };

export type SolveStatus = 'optimal' | 'feasible-with-gap' | 'infeasible' | 'error';

export interface SolveStats {
  engine: string;
  /** How the engine solved it: `lp-branch-and-bound` (few integers), `mip` (HiGHS MIP), `lp`. */
  method?: string;
  mode: SolveMode;
  sliceFactor?: number;
  status: SolveStatus;
  ms: number;
  /** Proven lower bound on the optimal cost ($/h), when the engine proved one. */
  lowerBound?: number;
  /** Relative gap (cost - lowerBound) / cost; 0 when proven optimal. */
  gap?: number;
  variables: number;
  constraints: number;
}

export interface SolveSuccess {
  status: 'optimal' | 'feasible-with-gap';
  allocation: TypeAllocation[];
  costPerHour: number;
  split: BucketSplit[];
  baselines: Baseline[];
  bestBaseline?: { id: string; costPerHour: number };
  /** Savings vs the best feasible single type, percent; null when no single type is feasible. */
  savingsPercent: number | null;
  stats: SolveStats;
}

export type FailureReason =
  | 'InvalidInput'        // the input itself is malformed (dimensions, NaN, negative values)
  | 'BucketUnservable'    // a bucket has traffic but no GPU type can serve it
  | 'CapacityExhausted'   // replica caps are too small for the load
  | 'Timeout'             // the engine hit its time limit without any allocation
  | 'SolverError';        // the engine failed or returned an allocation that does not verify

export interface SolveFailure {
  status: 'infeasible' | 'error';
  reason: FailureReason;
  message: string;
  /** Field path for InvalidInput, e.g. `gpus[1].maxThroughput[2]`. */
  field?: string;
  bucket?: { input: number; output: number };
  gpu?: string;
  baselines: Baseline[];
  stats: SolveStats;
}

export type SolveResult = SolveSuccess | SolveFailure;

export const isSuccess = (r: SolveResult): r is SolveSuccess =>
  r.status === 'optimal' || r.status === 'feasible-with-gap';
