/**
 * Request validation and size classification (pure).
 *
 * Input tokens come from the shared estimator in src/common/tokens.ts (the emulator counts prompts with
 * the same function, the load generator synthesises prompts with it): completions `prompt` (string, token-id
 * list, or a batch of those, summed); chat: the text of every message plus the chat template's per-message
 * overhead. Output tokens: `max_completion_tokens`, else `max_tokens`, else the running mean for the input
 * range (OutputLengthEstimator).
 */
import { estimateChatTokens, estimateCompletionPromptTokens, type ChatMessageLike } from '../common/tokens.js';
import { bucketIndex } from './buckets.js';

export type InferenceEndpoint = 'completions' | 'chat';

export interface InspectedRequest {
  endpoint: InferenceEndpoint;
  body: Record<string, unknown>;
  stream: boolean;
  /** The client itself asked for the final usage chunk (stream_options.include_usage). */
  clientWantsUsage: boolean;
  /** Estimated prompt tokens. */
  inputTokens: number;
  /** The client's output bound (max_completion_tokens, else max_tokens), if any. */
  maxOutputTokens: number | undefined;
}

export type InspectResult = { ok: true; value: InspectedRequest } | { ok: false; message: string; param?: string };

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const bad = (message: string, param?: string): InspectResult => (param === undefined ? { ok: false, message } : { ok: false, message, param });

function checkPrompt(prompt: unknown): string | undefined {
  if (typeof prompt === 'string') return undefined;
  if (!Array.isArray(prompt)) return '"prompt" must be a string, an array of strings, an array of token ids, or an array of token-id arrays';
  if (prompt.length === 0) return '"prompt" must not be an empty array';
  if (prompt.every((p) => typeof p === 'string')) return undefined;
  if (prompt.every((p) => Number.isInteger(p) && (p as number) >= 0)) return undefined;
  if (prompt.every((p) => Array.isArray(p) && p.length > 0 && p.every((t) => Number.isInteger(t) && (t as number) >= 0))) return undefined;
  return '"prompt" must be a string, an array of strings, an array of token ids, or an array of token-id arrays';
}

function checkMessages(messages: unknown): string | undefined {
  if (!Array.isArray(messages) || messages.length === 0) return '"messages" must be a non-empty array';
  for (const [i, m] of messages.entries()) {
    if (!isObj(m)) return `"messages[${i}]" must be an object`;
    if (typeof m.role !== 'string' || m.role === '') return `"messages[${i}].role" must be a non-empty string`;
    const c = m.content;
    if (c === undefined || c === null || typeof c === 'string') continue;
    if (!Array.isArray(c)) return `"messages[${i}].content" must be a string, null or an array of content parts`;
    for (const [j, part] of c.entries()) {
      if (!isObj(part)) return `"messages[${i}].content[${j}]" must be an object`;
      if ((part.type === 'text' || part.type === undefined) && typeof part.text !== 'string') {
        return `"messages[${i}].content[${j}].text" must be a string`;
      }
    }
  }
  return undefined;
}

function optionalPositiveInt(body: Record<string, unknown>, key: string): { value?: number; error?: string } {
  const v = body[key];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) return { error: `"${key}" must be an integer >= 1 or null` };
  return { value: v };
}

/** Validates an OpenAI completions/chat body and estimates its prompt size. */
export function inspectRequest(endpoint: InferenceEndpoint, body: unknown): InspectResult {
  if (!isObj(body)) return bad('the request body must be a JSON object');
  if (body.model !== undefined && typeof body.model !== 'string') return bad('"model" must be a string', 'model');
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') return bad('"stream" must be a boolean', 'stream');
  const so = body.stream_options;
  if (so !== undefined && so !== null) {
    if (!isObj(so)) return bad('"stream_options" must be an object or null', 'stream_options');
    if (so.include_usage !== undefined && so.include_usage !== null && typeof so.include_usage !== 'boolean') {
      return bad('"stream_options.include_usage" must be a boolean', 'stream_options.include_usage');
    }
  }
  let inputTokens: number;
  if (endpoint === 'completions') {
    if (!('prompt' in body)) return bad('"prompt" is required', 'prompt');
    const err = checkPrompt(body.prompt);
    if (err) return bad(err, 'prompt');
    inputTokens = estimateCompletionPromptTokens(body.prompt);
  } else {
    if (!('messages' in body)) return bad('"messages" is required', 'messages');
    const err = checkMessages(body.messages);
    if (err) return bad(err, 'messages');
    inputTokens = estimateChatTokens(body.messages as ChatMessageLike[]);
  }
  const mct = optionalPositiveInt(body, 'max_completion_tokens');
  if (mct.error) return bad(mct.error, 'max_completion_tokens');
  const mt = optionalPositiveInt(body, 'max_tokens');
  if (mt.error) return bad(mt.error, 'max_tokens');
  const stream = body.stream === true;
  return {
    ok: true,
    value: {
      endpoint,
      body,
      stream,
      clientWantsUsage: stream && isObj(so) && so.include_usage === true,
      inputTokens,
      maxOutputTokens: mct.value ?? mt.value,
    },
  };
}

export interface Classification {
  inputTokens: number;
  outputTokens: number;
  outputSource: 'max_tokens' | 'running-mean';
  input: number;
  output: number;
}

/** The (input, output) bucket of an inspected request; `meanFor` is the running mean of an input range. */
export function classify(
  req: Pick<InspectedRequest, 'inputTokens' | 'maxOutputTokens'>,
  edges: { inputEdges: readonly number[]; outputEdges: readonly number[] },
  meanFor: (inputIndex: number) => number,
): Classification {
  const input = bucketIndex(edges.inputEdges, req.inputTokens);
  const fromClient = req.maxOutputTokens !== undefined;
  const outputTokens = fromClient ? (req.maxOutputTokens as number) : meanFor(input);
  return {
    inputTokens: req.inputTokens,
    outputTokens,
    outputSource: fromClient ? 'max_tokens' : 'running-mean',
    input,
    output: bucketIndex(edges.outputEdges, outputTokens),
  };
}

/**
 * The body to send upstream: for a stream whose client did not ask for usage, the same body with
 * stream_options.include_usage = true (so the router sees the real token counts); otherwise undefined
 * (forward the client's bytes unchanged).
 */
export function upstreamBodyFor(req: InspectedRequest): Record<string, unknown> | undefined {
  if (!req.stream || req.clientWantsUsage) return undefined;
  const so = isObj(req.body.stream_options) ? req.body.stream_options : {};
  return { ...req.body, stream_options: { ...so, include_usage: true } };
}
