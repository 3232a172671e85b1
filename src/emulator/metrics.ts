/**
 * vLLM's Prometheus metrics, under vLLM's names, buckets and `model_name` label, so that anything written
 * against a real vLLM server (the operator's fallback workload estimator, dashboards) reads the emulator the
 * same way. All times are EMULATED seconds (undilated): what the GPU would have taken, whatever --speed is.
 * One extra series, melange_emulator_info, says that this is an emulator.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineStats, FinishedRequest, TokenEvent } from './engine.js';

/** vLLM's build_1_2_5_buckets(max): 1, 2, 5, 10, 20, 50, ... up to max. */
export function buckets125(max: number): number[] {
  const out: number[] = [];
  for (let exp = 1; ; exp *= 10) {
    for (const m of [1, 2, 5]) {
      const v = m * exp;
      if (v > max) return out;
      out.push(v);
    }
  }
}

export const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0];
export const TPOT_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];
export const LATENCY_BUCKETS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0];

export interface EmulatorMetricsOptions {
  model: string;
  gpuType: string;
  speed: number;
  maxModelLen: number;
  /** Read on every scrape for the gauges. */
  stats: () => EngineStats;
}

export class EmulatorMetrics {
  readonly registry = new Registry();
  private readonly labels: { model_name: string };
  private readonly promptTokensHist: Histogram<'model_name'>;
  private readonly generationTokensHist: Histogram<'model_name'>;
  private readonly ttft: Histogram<'model_name'>;
  private readonly tpot: Histogram<'model_name'>;
  private readonly requestTpot: Histogram<'model_name'>;
  private readonly e2e: Histogram<'model_name'>;
  private readonly queueTime: Histogram<'model_name'>;
  private readonly success: Counter<'model_name' | 'finished_reason'>;
  private readonly promptTokens: Counter<'model_name'>;
  private readonly generationTokens: Counter<'model_name'>;
  private readonly aborted: Counter<'model_name'>;
  private readonly rejected: Counter<'model_name' | 'reason'>;
  private readonly preemptions: Counter<'model_name'>;

  constructor(opts: EmulatorMetricsOptions) {
    const registers = [this.registry];
    this.labels = { model_name: opts.model };
    const labelNames = ['model_name'] as const;
    const model = this.labels;
    const gauge = (name: string, help: string, read: (s: EngineStats) => number) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.set(model, read(opts.stats()));
        },
      });
    gauge('vllm:num_requests_running', 'Number of requests in model execution batches.', (s) => s.running);
    gauge('vllm:num_requests_waiting', 'Number of requests waiting to be processed.', (s) => s.waiting);
    gauge('vllm:gpu_cache_usage_perc', 'GPU KV-cache usage. 1 means 100 percent usage.', (s) => s.kvUsage);
    gauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', (s) => s.kvUsage);
    this.preemptions = new Counter({ name: 'vllm:num_preemptions_total', help: 'Cumulative number of preemptions from the engine.', labelNames, registers });
    const info = new Gauge({
      name: 'melange_emulator_info',
      help: 'This server is the Mélange vLLM emulator, not vLLM: timings come from a performance model of the GPU type.',
      labelNames: ['model_name', 'gpu_type', 'speed'],
      registers,
    });
    info.set({ model_name: opts.model, gpu_type: opts.gpuType, speed: String(opts.speed) }, 1);

    const hist = (name: string, help: string, buckets: number[]) => new Histogram({ name, help, labelNames, buckets, registers });
    const tokenBuckets = buckets125(opts.maxModelLen);
    this.promptTokensHist = hist('vllm:request_prompt_tokens', 'Number of prefill tokens processed.', tokenBuckets);
    this.generationTokensHist = hist('vllm:request_generation_tokens', 'Number of generation tokens processed.', tokenBuckets);
    this.ttft = hist('vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', TTFT_BUCKETS);
    this.tpot = hist('vllm:time_per_output_token_seconds', 'Histogram of time per output token in seconds (between consecutive tokens).', TPOT_BUCKETS);
    this.requestTpot = hist('vllm:request_time_per_output_token_seconds', 'Histogram of time_per_output_token_seconds per request: (e2e - ttft) / (generated - 1).', TPOT_BUCKETS);
    this.e2e = hist('vllm:e2e_request_latency_seconds', 'Histogram of end to end request latency in seconds.', LATENCY_BUCKETS);
    this.queueTime = hist('vllm:request_queue_time_seconds', 'Histogram of time spent in WAITING phase for request.', LATENCY_BUCKETS);
    this.success = new Counter({
      name: 'vllm:request_success_total',
      help: 'Count of successfully processed requests.',
      labelNames: ['model_name', 'finished_reason'],
      registers,
    });
    this.promptTokens = new Counter({ name: 'vllm:prompt_tokens_total', help: 'Number of prefill tokens processed.', labelNames, registers });
    this.generationTokens = new Counter({ name: 'vllm:generation_tokens_total', help: 'Number of generation tokens processed.', labelNames, registers });
    this.aborted = new Counter({ name: 'melange_emulator_requests_aborted_total', help: 'Requests dropped because the client went away (emulator only).', labelNames, registers });
    this.rejected = new Counter({
      name: 'melange_emulator_requests_rejected_total',
      help: 'Requests refused before scheduling, by reason (emulator only).',
      labelNames: ['model_name', 'reason'],
      registers,
    });
  }

  onTokens(events: readonly TokenEvent[]): void {
    let n = 0;
    for (const e of events) {
      n++;
      if (e.interTokenS !== undefined) this.tpot.observe(this.labels, e.interTokenS);
    }
    if (n > 0) this.generationTokens.inc(this.labels, n);
  }

  onFirstToken(arrival: number, firstToken: number): void {
    this.ttft.observe(this.labels, firstToken - arrival);
  }

  onFinished(r: FinishedRequest): void {
    this.success.inc({ ...this.labels, finished_reason: 'length' });
    this.promptTokensHist.observe(this.labels, r.inputTokens);
    this.generationTokensHist.observe(this.labels, r.outputTokens);
    this.promptTokens.inc(this.labels, r.inputTokens);
    this.e2e.observe(this.labels, r.finish - r.arrival);
    this.queueTime.observe(this.labels, r.firstScheduled - r.arrival);
    if (r.outputTokens > 1) this.requestTpot.observe(this.labels, (r.finish - r.firstToken) / (r.outputTokens - 1));
  }

  onPreemptions(n: number): void {
    if (n > 0) this.preemptions.inc(this.labels, n);
  }

  onAborted(): void {
    this.aborted.inc(this.labels);
  }

  onRejected(reason: string): void {
    this.rejected.inc({ ...this.labels, reason });
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
