import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CHAT_MESSAGE_OVERHEAD_TOKENS,
  CHAT_PROMPT_OVERHEAD_TOKENS,
  estimateChatTokens,
  estimateCompletionPromptTokens,
  estimateRequestPromptTokens,
  estimateTokens,
  outputTokenText,
  synthesizeText,
} from '../../../src/common/tokens.js';

describe('estimateTokens', () => {
  it('follows its documented rules', () => {
    expect(estimateTokens('')).toBe(0);
    expect(estimateTokens('the ')).toBe(1); // letters and spaces: 4.5 characters per token, rounded up
    expect(estimateTokens('then ')).toBe(2); // 5 / 4.5 → 2
    expect(estimateTokens('the then ')).toBe(2); // 9 / 4.5
    expect(estimateTokens('2024')).toBe(4); // digits: one each
    expect(estimateTokens('a.b')).toBe(2); // 'ab' → 1, '.' → 1
    expect(estimateTokens('é')).toBe(1); // non-ASCII below U+0800: one each
    expect(estimateTokens('语言')).toBe(3); // from U+0800: 4/3 each, rounded up over the text
    expect(estimateTokens('😀')).toBe(2); // a surrogate pair is one code point (4/3 → 2)
  });

  it('is additive up to rounding and monotone under appending', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), fc.string({ maxLength: 200 }), (a, b) => {
        const ab = estimateTokens(a + b);
        expect(ab).toBeGreaterThanOrEqual(Math.max(estimateTokens(a), estimateTokens(b)));
        expect(ab).toBeLessThanOrEqual(estimateTokens(a) + estimateTokens(b));
      }),
      { seed: 3 },
    );
  });
});

describe('synthesizeText and outputTokenText', () => {
  it('synthesized text estimates to exactly the requested tokens', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 20_000 }), fc.integer({ min: 0, max: 1000 }), (n, offset) => {
        expect(estimateTokens(synthesizeText(n, offset))).toBe(n);
      }),
      { seed: 5, numRuns: 200 },
    );
  });

  it('different offsets give different texts of the same size', () => {
    expect(synthesizeText(50, 1)).not.toBe(synthesizeText(50, 2));
  });

  it('n generated tokens estimate to n tokens', () => {
    for (const n of [1, 2, 3, 16, 255, 2000]) {
      let s = '';
      for (let k = 0; k < n; k++) s += outputTokenText(k);
      expect(estimateTokens(s)).toBe(n);
    }
  });
});

describe('prompt estimates of request bodies', () => {
  it('chat adds the template overhead per message and per conversation', () => {
    const content = synthesizeText(100);
    expect(estimateChatTokens([{ role: 'user', content }])).toBe(100 + CHAT_MESSAGE_OVERHEAD_TOKENS + CHAT_PROMPT_OVERHEAD_TOKENS);
    expect(
      estimateChatTokens([
        { role: 'system', content: synthesizeText(10) },
        { role: 'user', content: [{ type: 'text', text: synthesizeText(20) }, { type: 'image_url' }] },
      ]),
    ).toBe(30 + 2 * CHAT_MESSAGE_OVERHEAD_TOKENS + CHAT_PROMPT_OVERHEAD_TOKENS);
  });

  it('completions count token-id prompts exactly and strings by the estimator', () => {
    expect(estimateCompletionPromptTokens([1, 2, 3, 4])).toBe(4);
    expect(estimateCompletionPromptTokens(synthesizeText(33))).toBe(33);
    expect(estimateCompletionPromptTokens([synthesizeText(7)])).toBe(7);
    expect(estimateCompletionPromptTokens(undefined)).toBe(0);
  });

  it('estimateRequestPromptTokens picks messages or prompt like the server does', () => {
    expect(estimateRequestPromptTokens({ messages: [{ role: 'user', content: synthesizeText(5) }] })).toBe(5 + 6);
    expect(estimateRequestPromptTokens({ prompt: synthesizeText(9) })).toBe(9);
  });
});
