/**
 * The slice of the OpenAI API the emulator speaks (as vLLM's OpenAI-compatible server does): request parsing
 * and the response / stream-chunk shapes. Unknown request fields are ignored, like vLLM ignores sampling
 * parameters it does not need here (temperature, top_p, ...): the emulator's output does not depend on them.
 */
import { z } from 'zod';
import { estimateChatTokens, estimateCompletionPromptTokens, type ChatMessageLike } from '../common/tokens.js';

/** vLLM's default max_tokens for the completions API; the emulator uses it for chat too. */
export const DEFAULT_MAX_TOKENS = 16;

const MaxTokens = z.int().min(1).nullish();

const CommonSchema = z.object({
  model: z.string().nullish(),
  max_tokens: MaxTokens,
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).loose().nullish(),
  n: z.int().min(1).max(1, 'the emulator serves n=1 only').nullish(),
});

const ContentPart = z.object({ type: z.string(), text: z.string().optional() }).loose();
const MessageSchema = z
  .object({
    role: z.string(),
    content: z.union([z.string(), z.array(ContentPart), z.null()]).optional(),
  })
  .loose();

export const ChatRequestSchema = CommonSchema.extend({
  messages: z.array(MessageSchema).min(1, 'messages must not be empty'),
  max_completion_tokens: MaxTokens,
}).loose();

const TokenIds = z.array(z.int().min(0));
export const CompletionRequestSchema = CommonSchema.extend({
  prompt: z.union([
    z.string(),
    TokenIds,
    z.array(z.string()).length(1, 'the emulator serves one prompt per request'),
    z.array(TokenIds).length(1, 'the emulator serves one prompt per request'),
  ]),
}).loose();

export type ApiKind = 'chat' | 'completions';

export interface ParsedRequest {
  kind: ApiKind;
  model: string | undefined;
  promptTokens: number;
  maxTokens: number;
  stream: boolean;
  includeUsage: boolean;
}

export type ParseResult = { ok: true; value: ParsedRequest } | { ok: false; message: string };

function issues(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.length ? i.path.join('.') : 'body'}: ${i.message}`).join('; ');
}

export function parseRequest(kind: ApiKind, body: unknown): ParseResult {
  if (kind === 'chat') {
    const r = ChatRequestSchema.safeParse(body);
    if (!r.success) return { ok: false, message: issues(r.error) };
    const v = r.data;
    return {
      ok: true,
      value: {
        kind,
        model: v.model ?? undefined,
        promptTokens: estimateChatTokens(v.messages as ChatMessageLike[]),
        maxTokens: v.max_completion_tokens ?? v.max_tokens ?? DEFAULT_MAX_TOKENS,
        stream: v.stream ?? false,
        includeUsage: v.stream_options?.include_usage ?? false,
      },
    };
  }
  const r = CompletionRequestSchema.safeParse(body);
  if (!r.success) return { ok: false, message: issues(r.error) };
  const v = r.data;
  const promptTokens = estimateCompletionPromptTokens(v.prompt);
  if (promptTokens < 1) return { ok: false, message: 'prompt: must not be empty' };
  return {
    ok: true,
    value: {
      kind,
      model: v.model ?? undefined,
      promptTokens,
      maxTokens: v.max_tokens ?? DEFAULT_MAX_TOKENS,
      stream: v.stream ?? false,
      includeUsage: v.stream_options?.include_usage ?? false,
    },
  };
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export const usageOf = (prompt: number, completion: number): Usage => ({
  prompt_tokens: prompt,
  completion_tokens: completion,
  total_tokens: prompt + completion,
});

export interface ResponseIds {
  id: string;
  created: number;
  model: string;
}

export function completionResponse(ids: ResponseIds, kind: ApiKind, text: string, usage: Usage): unknown {
  if (kind === 'chat') {
    return {
      id: ids.id,
      object: 'chat.completion',
      created: ids.created,
      model: ids.model,
      choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: 'length', stop_reason: null }],
      usage,
    };
  }
  return {
    id: ids.id,
    object: 'text_completion',
    created: ids.created,
    model: ids.model,
    choices: [{ index: 0, text, logprobs: null, finish_reason: 'length', stop_reason: null }],
    usage,
  };
}

/**
 * One stream chunk carrying `text` (and the finish reason on the last one). With `includeUsage`
 * (stream_options.include_usage) every chunk also carries `"usage": null`, as vLLM and OpenAI send it; the
 * usage itself comes in the last chunk (usageChunk).
 */
export function streamChunk(ids: ResponseIds, kind: ApiKind, text: string, opts: { role?: boolean; finished?: boolean; includeUsage?: boolean } = {}): unknown {
  const finish_reason = opts.finished ? 'length' : null;
  const usage = opts.includeUsage ? { usage: null } : {};
  if (kind === 'chat') {
    const delta: Record<string, string> = opts.role ? { role: 'assistant', content: text } : { content: text };
    return {
      id: ids.id,
      object: 'chat.completion.chunk',
      created: ids.created,
      model: ids.model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason }],
      ...usage,
    };
  }
  return {
    id: ids.id,
    object: 'text_completion',
    created: ids.created,
    model: ids.model,
    choices: [{ index: 0, text, logprobs: null, finish_reason, stop_reason: null }],
    ...usage,
  };
}

/** The final chunk with `stream_options.include_usage`: no choices, the usage. */
export function usageChunk(ids: ResponseIds, kind: ApiKind, usage: Usage): unknown {
  return {
    id: ids.id,
    object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion',
    created: ids.created,
    model: ids.model,
    choices: [],
    usage,
  };
}

export type ErrorType = 'BadRequestError' | 'NotFoundError' | 'ServiceUnavailableError' | 'InternalServerError' | 'MethodNotAllowedError';

/** The OpenAI error body, as current vLLM returns it. */
export function errorBody(status: number, type: ErrorType, message: string, param: string | null = null): unknown {
  return { error: { message, type, param, code: status } };
}
