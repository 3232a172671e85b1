import { z } from 'zod';

/**
 * How long ONE request takes on an idle replica of a GPU type, as a function of its size — the usual shape
 * of LLM serving cost: a fixed per-request part, prefill linear in the prompt, and one decode step per output
 * token whose time grows with the context it reads (KV cache):
 *
 *   latency(in, out) = overheadMillis + prefillMillisPerToken·in + out·(decodeStepMillis + decodeMillisPerContextToken·(in + out/2))
 *
 * `melangectl profile` fits it to its alone probes (one per bucket) and writes it into the GPUProfile; the
 * router's SLO guard uses it to keep a request off a GPU type on which even an idle replica would miss the SLO
 * for it (a 3-token answer to a 900-token prompt on an A10G). A prediction for an idle replica, not a queueing
 * model: load only adds to it.
 */
export const LatencyModelSchema = z
  .object({
    overheadMillis: z.number().min(0).max(600_000).describe('Fixed time per request (ms): scheduling, tokenisation, the first step.'),
    prefillMillisPerToken: z.number().min(0).max(1000).describe('Prefill time per prompt token (ms).'),
    decodeStepMillis: z.number().min(0).max(60_000).describe('Time per output token at zero context (ms).'),
    decodeMillisPerContextToken: z
      .number()
      .min(0)
      .max(1000)
      .default(0)
      .describe('Extra time per output token per token of context (ms), from reading the KV cache.'),
  })
  .describe("A request's latency on an idle replica by its size (fitted by melangectl profile from its alone probes).");
export type LatencyModel = z.output<typeof LatencyModelSchema>;
export type LatencyModelInput = z.input<typeof LatencyModelSchema>;

/** Predicted latency (ms) of one request alone on an idle replica. */
export function aloneLatencyMillis(m: LatencyModel, input: number, output: number): number {
  const out = Math.max(1, output);
  return m.overheadMillis + m.prefillMillisPerToken * input + out * (m.decodeStepMillis + m.decodeMillisPerContextToken * (input + out / 2));
}

/** Predicted mean TPOT (ms, the paper's: latency / output tokens) of one request alone on an idle replica. */
export function aloneTpotMillis(m: LatencyModel, input: number, output: number): number {
  return aloneLatencyMillis(m, input, output) / Math.max(1, output);
}
