import { describe, expect, it } from 'vitest';
import { estimateTokens, synthesizeText } from '../../../src/common/tokens.js';
import { classify, inspectRequest, upstreamBodyFor } from '../../../src/router/classify.js';
import { OutputLengthEstimator } from '../../../src/router/output-estimate.js';

const edges = { inputEdges: [25, 100, 250], outputEdges: [25, 100] };
const text = (tokens: number) => synthesizeText(tokens); // estimateTokens(text(n)) === n

describe('inspectRequest: validation with clear messages', () => {
  it.each([
    ['completions', [], 'the request body must be a JSON object'],
    ['completions', 'x', 'the request body must be a JSON object'],
    ['completions', {}, '"prompt" is required'],
    ['completions', { prompt: 3 }, '"prompt" must be a string'],
    ['completions', { prompt: [] }, '"prompt" must not be an empty array'],
    ['completions', { prompt: ['a', 1] }, '"prompt" must be a string'],
    ['chat', {}, '"messages" is required'],
    ['chat', { messages: [] }, '"messages" must be a non-empty array'],
    ['chat', { messages: [{ content: 'x' }] }, '"messages[0].role" must be a non-empty string'],
    ['chat', { messages: [{ role: 'user', content: 5 }] }, '"messages[0].content" must be a string, null or an array'],
    ['chat', { messages: [{ role: 'user', content: [{ type: 'text' }] }] }, '"messages[0].content[0].text" must be a string'],
    ['completions', { prompt: 'x', max_tokens: 0 }, '"max_tokens" must be an integer >= 1 or null'],
    ['completions', { prompt: 'x', max_tokens: 1.5 }, '"max_tokens" must be an integer >= 1 or null'],
    ['chat', { messages: [{ role: 'user', content: 'x' }], max_completion_tokens: '3' }, '"max_completion_tokens" must be an integer'],
    ['completions', { prompt: 'x', stream: 'yes' }, '"stream" must be a boolean'],
    ['completions', { prompt: 'x', model: 1 }, '"model" must be a string'],
    ['completions', { prompt: 'x', stream: true, stream_options: { include_usage: 'y' } }, '"stream_options.include_usage" must be a boolean'],
  ] as const)('%s %j → 400 "%s"', (endpoint, body, message) => {
    const r = inspectRequest(endpoint, body);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toContain(message);
  });

  it('accepts the prompt forms of the completions API and null options', () => {
    for (const prompt of ['hi', ['a', 'b'], [1, 2, 3], [[1, 2], [3]]]) expect(inspectRequest('completions', { prompt, max_tokens: null, stream: null }).ok).toBe(true);
  });
});

describe('input token estimate (shared with the emulator)', () => {
  it('completions: string via estimateTokens, token ids exactly, batches summed', () => {
    const est = (prompt: unknown) => { const r = inspectRequest('completions', { prompt }); if (!r.ok) throw new Error(r.message); return r.value.inputTokens; };
    expect(est(text(30))).toBe(30);
    expect(est(text(30))).toBe(estimateTokens(text(30)));
    expect(est([1, 2, 3, 4])).toBe(4);
    expect(est([text(5), text(7)])).toBe(12);
    expect(est([[1, 2], [3, 4, 5]])).toBe(5);
  });
  it('chat: message texts plus the chat template overhead, text parts only', () => {
    const r = inspectRequest('chat', {
      messages: [
        { role: 'system', content: text(10) },
        { role: 'user', content: [{ type: 'text', text: text(5) }, { type: 'image_url', image_url: { url: 'x' } }] },
        { role: 'assistant', content: null },
      ],
    });
    if (!r.ok) throw new Error(r.message);
    // 2 per conversation + 4 per message
    expect(r.value.inputTokens).toBe(15 + 2 + 3 * 4);
  });
});

describe('classify: input range by estimate, output by max_tokens or running mean', () => {
  const est = new OutputLengthEstimator(3, 60, 100);
  it('max_completion_tokens wins over max_tokens; edges are inclusive upper bounds', () => {
    const r = inspectRequest('chat', { messages: [{ role: 'user', content: 'x' }], max_tokens: 500, max_completion_tokens: 25 });
    if (!r.ok) throw new Error(r.message);
    const c = classify(r.value, edges, (i) => est.estimate(i));
    expect(c).toMatchObject({ output: 0, outputTokens: 25, outputSource: 'max_tokens' });
  });
  it('without a bound, the running mean of the input range (default until observed)', () => {
    const r = inspectRequest('completions', { prompt: text(100) });
    if (!r.ok) throw new Error(r.message);
    expect(classify(r.value, edges, (i) => est.estimate(i))).toEqual({ inputTokens: 100, input: 1, outputTokens: 60, output: 1, outputSource: 'running-mean' });
    est.observe(1, 10);
    expect(classify(r.value, edges, (i) => est.estimate(i))).toMatchObject({ outputTokens: 10, output: 0 });
  });
  it('prompts beyond the last edge count in the last range', () => {
    const r = inspectRequest('completions', { prompt: text(5000), max_tokens: 5000 });
    if (!r.ok) throw new Error(r.message);
    expect(classify(r.value, edges, () => 1)).toMatchObject({ input: 2, output: 1 });
  });
});

describe('upstreamBodyFor', () => {
  it('asks for usage on streams whose client did not, keeping other stream options', () => {
    const r = inspectRequest('completions', { prompt: 'x', stream: true, stream_options: { continuous_usage_stats: false } });
    if (!r.ok) throw new Error(r.message);
    expect(r.value.clientWantsUsage).toBe(false);
    expect(upstreamBodyFor(r.value)).toEqual({ prompt: 'x', stream: true, stream_options: { continuous_usage_stats: false, include_usage: true } });
  });
  it('forwards the client body unchanged when it asked for usage itself, or does not stream', () => {
    const a = inspectRequest('completions', { prompt: 'x', stream: true, stream_options: { include_usage: true } });
    const b = inspectRequest('completions', { prompt: 'x' });
    if (!a.ok || !b.ok) throw new Error('invalid');
    expect(a.value.clientWantsUsage).toBe(true);
    expect(upstreamBodyFor(a.value)).toBeUndefined();
    expect(upstreamBodyFor(b.value)).toBeUndefined();
  });
});
