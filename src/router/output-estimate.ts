/**
 * The output-length estimator of the paper's load balancer: for a request without max_tokens, predict its
 * completion length as the running mean of the actual completion tokens of past requests in the same
 * input range. Each range starts at a configurable default; the first observation replaces it.
 * The mean is cumulative up to `window` observations and then exponentially weighted with α = 1/window,
 * so it follows a drifting workload instead of freezing.
 */
export interface RangeEstimate {
  mean: number;
  /** Observations the mean is weighed by (capped at the window). */
  count: number;
}

export class OutputLengthEstimator {
  private ranges: RangeEstimate[];

  constructor(
    nInputRanges: number,
    private readonly defaultTokens: number,
    private readonly window: number,
  ) {
    if (!(nInputRanges >= 1)) throw new Error('OutputLengthEstimator: need at least one input range');
    if (!(defaultTokens > 0)) throw new Error('OutputLengthEstimator: defaultTokens must be > 0');
    if (!(window >= 1)) throw new Error('OutputLengthEstimator: window must be >= 1');
    this.ranges = Array.from({ length: nInputRanges }, () => ({ mean: defaultTokens, count: 0 }));
  }

  /** Estimated completion tokens for a request in input range `inputIndex`. */
  estimate(inputIndex: number): number {
    return this.ranges[inputIndex]?.mean ?? this.defaultTokens;
  }

  /** Records the actual completion tokens of a finished request. Non-finite or negative values are ignored. */
  observe(inputIndex: number, completionTokens: number): void {
    const r = this.ranges[inputIndex];
    if (!r || !Number.isFinite(completionTokens) || completionTokens < 0) return;
    r.count = Math.min(r.count + 1, this.window);
    r.mean += (completionTokens - r.mean) / r.count;
  }

  snapshot(): RangeEstimate[] {
    return this.ranges.map((r) => ({ ...r }));
  }

  /**
   * A new estimator for changed settings. Kept ranges carry their means over only when the input edges are
   * unchanged (`sameEdges`); otherwise every range restarts from the default.
   */
  resized(nInputRanges: number, defaultTokens: number, window: number, sameEdges: boolean): OutputLengthEstimator {
    const next = new OutputLengthEstimator(nInputRanges, defaultTokens, window);
    if (sameEdges) {
      next.ranges = next.ranges.map((fresh, i) => {
        const old = this.ranges[i];
        return old && old.count > 0 ? { mean: old.mean, count: Math.min(old.count, window) } : fresh;
      });
    }
    return next;
  }
}
