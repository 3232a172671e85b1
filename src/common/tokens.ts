/**
 * The project's shared token estimator: the emulator counts prompt tokens with it, the router classifies
 * requests into size buckets with it, and the load generator synthesizes prompts that hit a target size
 * under it. One function, so the three always agree with each other.
 *
 * IT IS AN APPROXIMATION, not a tokenizer. Rules (one pass over the UTF-16 string, no allocation):
 *   - ASCII letters and whitespace: 1 token per 4.5 characters (rounded up, over the whole text);
 *   - ASCII digits: 1 token each (Llama's tokenizer splits numbers into single digits);
 *   - other ASCII characters (punctuation, symbols): 1 token each;
 *   - non-ASCII code points below U+0800 (accented Latin, Greek, Cyrillic, ...): 1 token each;
 *   - code points from U+0800 (CJK, emoji, ...): 4/3 token each (rounded up over the text).
 * Fitted against the Llama-2 tokenizer on 17 texts (docs/emulator.md): within ±16% on each of English prose,
 * Markdown, READMEs, licences, TypeScript, JavaScript, Python, YAML, French and a list of numbers (RMS 7.5%);
 * the one CJK sample matched. Short texts and other kinds of text can be off by more.
 */

/** Tokens the chat template adds per message (role markers, separators), like vLLM's chat templates do. */
export const CHAT_MESSAGE_OVERHEAD_TOKENS = 4;
/** Tokens the chat template adds once per conversation (the assistant turn's header). */
export const CHAT_PROMPT_OVERHEAD_TOKENS = 2;

/** Estimated token count of `text` (see the rules above). 0 for ''. */
export function estimateTokens(text: string): number {
  let words = 0; // ASCII letters and whitespace
  let single = 0; // digits, ASCII punctuation/symbols, and non-ASCII below U+0800
  let wide = 0; // code points from U+0800
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      if ((c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) words++;
      else single++;
    } else if (c < 0x800) {
      single++;
    } else {
      wide++;
      // A surrogate pair is one code point.
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
        const d = text.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) i++;
      }
    }
  }
  return Math.ceil((words * 2) / 9) + single + Math.ceil((wide * 4) / 3);
}

/** A chat message's content: a string, or OpenAI's list of parts (only text parts count). */
export type ChatContent = string | null | undefined | ReadonlyArray<{ type?: unknown; text?: unknown }>;
export interface ChatMessageLike {
  role?: unknown;
  content?: ChatContent;
}

function contentText(content: ChatContent): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let s = '';
  for (const part of content as ReadonlyArray<{ type?: unknown; text?: unknown }>) {
    if (part && typeof part.text === 'string' && (part.type === undefined || part.type === 'text')) s += part.text;
  }
  return s;
}

/** Estimated prompt tokens of a chat conversation, template overhead included. */
export function estimateChatTokens(messages: readonly ChatMessageLike[]): number {
  let n = CHAT_PROMPT_OVERHEAD_TOKENS;
  for (const m of messages) n += CHAT_MESSAGE_OVERHEAD_TOKENS + estimateTokens(contentText(m.content));
  return n;
}

/**
 * Estimated prompt tokens of a completions `prompt`: a string, a list of token ids (counted exactly), or a
 * batch of one of those (summed, the way a batch occupies the server). At least 1 for a non-empty prompt.
 */
export function estimateCompletionPromptTokens(prompt: unknown): number {
  if (typeof prompt === 'string') return estimateTokens(prompt);
  if (Array.isArray(prompt)) {
    if (prompt.every((t) => typeof t === 'number')) return prompt.length;
    let n = 0;
    for (const p of prompt as unknown[]) n += estimateCompletionPromptTokens(p);
    return n;
  }
  return 0;
}

/**
 * Estimated prompt tokens of an OpenAI request body: `messages` (chat) if present, else `prompt`
 * (completions). The router uses this to bucket a request exactly as the emulator will count it.
 */
export function estimateRequestPromptTokens(body: { messages?: unknown; prompt?: unknown }): number {
  if (Array.isArray(body.messages)) return estimateChatTokens(body.messages as ChatMessageLike[]);
  return estimateCompletionPromptTokens(body.prompt);
}

// Alternating 4- and 5-character words (3 or 4 letters + a space): 4.5 characters per word on average, so n
// words estimate to exactly n tokens; under Llama-2's tokenizer each of these common words is one token too.
const SHORT = [
  'the', 'and', 'for', 'are', 'but', 'not', 'you', 'all', 'any', 'can', 'had', 'her', 'was', 'one', 'our', 'out',
  'day', 'get', 'has', 'him', 'his', 'how', 'man', 'new', 'now', 'old', 'see', 'two', 'way', 'who', 'did', 'its',
];
const LONG = [
  'then', 'that', 'with', 'have', 'from', 'they', 'this', 'what', 'when', 'your', 'said', 'each', 'make', 'like',
  'time', 'look', 'more', 'some', 'them', 'many', 'long', 'down', 'word', 'come', 'made', 'part', 'over', 'very',
  'find', 'also', 'back', 'only',
];
const word = (i: number, offset: number) => (i % 2 === 0 ? SHORT[((i >> 1) * 7 + offset) % SHORT.length]! : LONG[((i >> 1) * 5 + offset) % LONG.length]!);

/**
 * Text whose estimateTokens() is exactly `tokens` (alternating 3- and 4-letter words, each followed by a space).
 * `offset` varies the words so that two prompts of the same size differ (vLLM's prefix cache would otherwise
 * make repeated prompts cheaper).
 */
export function synthesizeText(tokens: number, offset = 0): string {
  const n = Math.max(0, Math.floor(tokens));
  let s = '';
  for (let i = 0; i < n; i++) s += `${word(i, offset)} `;
  return s;
}

/** The text of the emulator's k-th generated token (a space and a 3- or 4-letter word): n tokens estimate to n. */
export function outputTokenText(k: number): string {
  return ` ${word(k, 3)}`;
}
