import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { eventData, eventEnd, hasUsageObject, JsonTap, SseScanner, SseTap } from '../../../src/router/taps.js';

async function through(tap: SseTap | JsonTap, chunks: (string | Buffer)[]): Promise<string> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c))),
    tap,
    new Writable({ write(c: Buffer, _e, cb) { out.push(c); cb(); } }),
  );
  return Buffer.concat(out).toString('utf8');
}

const chunk = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
const usageChunk = chunk({ choices: [], usage: { prompt_tokens: 120, completion_tokens: 7, total_tokens: 127 } });

describe('SSE parsing helpers', () => {
  it('finds event ends for \\n\\n and \\r\\n\\r\\n', () => {
    expect(eventEnd('data: a\n\ndata: b')).toBe(9);
    expect(eventEnd('data: a\r\n\r\n')).toBe(11);
    expect(eventEnd('data: a\n')).toBe(-1);
    expect(eventData('event: x\ndata: a\ndata: b\n\n')).toBe('a\nb');
    expect(eventData(': keepalive\n\n')).toBeUndefined();
  });
});

describe('SseTap', () => {
  it('forwards every event in order, byte for byte, across arbitrary chunk splits (incl. inside UTF-8)', async () => {
    const events = [chunk({ choices: [{ text: 'héllo ✓' }] }), ': comment\n\n', chunk({ choices: [{ text: '世界' }] }), usageChunk, 'data: [DONE]\n\n'];
    const whole = Buffer.from(events.join(''));
    const pieces: Buffer[] = [];
    for (let i = 0; i < whole.length; i += 3) pieces.push(whole.subarray(i, i + 3));
    const tap = new SseTap({ stripUsageChunk: false });
    expect(await through(tap, pieces)).toBe(whole.toString('utf8'));
    expect(tap.usage).toEqual({ promptTokens: 120, completionTokens: 7 });
    expect(tap.events).toBe(4);
  });
  it('strips the usage-only chunk when asked, keeping its numbers', async () => {
    const tap = new SseTap({ stripUsageChunk: true });
    const body = [chunk({ choices: [{ text: 'a' }], usage: null }), usageChunk, 'data: [DONE]\n\n'];
    expect(await through(tap, body)).toBe(body[0]! + body[2]!);
    expect(tap.usage).toEqual({ promptTokens: 120, completionTokens: 7 });
  });
  it('never strips a chunk that carries choices, even with usage', async () => {
    const tap = new SseTap({ stripUsageChunk: true });
    const c = chunk({ choices: [{ text: 'a' }], usage: { prompt_tokens: 1, completion_tokens: 1 } });
    expect(await through(tap, [c])).toBe(c);
    expect(tap.usage).toEqual({ promptTokens: 1, completionTokens: 1 });
  });
  it('forwards a trailing unterminated event at the end', async () => {
    expect(await through(new SseTap({ stripUsageChunk: true }), ['data: [DONE]'])).toBe('data: [DONE]');
  });
  it('calls onFirstEvent once, on the first data event', async () => {
    let n = 0;
    await through(new SseTap({ stripUsageChunk: false, onFirstEvent: () => n++ }), [': ping\n\n', chunk({ a: 1 }), chunk({ a: 2 })]);
    expect(n).toBe(1);
  });
});

describe('JsonTap', () => {
  it('forwards the body unchanged and reads usage', async () => {
    const body = JSON.stringify({ choices: [{ text: 'x' }], usage: { prompt_tokens: 3, completion_tokens: 4 } });
    const tap = new JsonTap(1024);
    expect(await through(tap, [body.slice(0, 10), body.slice(10)])).toBe(body);
    expect(tap.usage).toEqual({ promptTokens: 3, completionTokens: 4 });
  });
  it('a body over the copy limit is still forwarded; its usage is unknown', async () => {
    const body = JSON.stringify({ pad: 'x'.repeat(100), usage: { prompt_tokens: 3, completion_tokens: 4 } });
    const tap = new JsonTap(50);
    expect(await through(tap, [body])).toBe(body);
    expect(tap.usage).toBeUndefined();
  });
});

describe('hasUsageObject (the byte-level check before decoding an event)', () => {
  const has = (s: string) => hasUsageObject(Buffer.from(s));
  it('is true only when "usage" is followed by an object, JSON whitespace allowed', () => {
    expect(has('data: {"choices":[],"usage":{"prompt_tokens":1}}\n\n')).toBe(true);
    expect(has('data: {"usage" :\t{ }}\n\n')).toBe(true);
    expect(has('data: {"choices":[{"delta":{"content":"x"}}],"usage":null}\n\n')).toBe(false);
    expect(has('data: {"choices":[]}\n\n')).toBe(false);
    expect(has('data: {"usage":')).toBe(false);
  });
  it('looks past a "usage" that is a string value to a later usage key', () => {
    expect(has('data: {"choices":[{"delta":{"content":"usage"}}],"usage":{"prompt_tokens":2}}\n\n')).toBe(true);
    expect(has('data: {"choices":[{"delta":{"content":"usage"}}],"usage":null}\n\n')).toBe(false);
    // Escaped quotes inside content are not the key.
    expect(has(`data: ${JSON.stringify({ choices: [{ delta: { content: '"usage":{' } }], usage: null })}\n\n`)).toBe(false);
  });
});

describe('SseScanner with "usage": null on every chunk (vLLM with include_usage)', () => {
  it('forwards the content chunks, reads and strips the usage chunk', () => {
    const body = [
      chunk({ choices: [{ delta: { content: 'a' } }], usage: null }),
      chunk({ choices: [{ delta: { content: 'usage' } }], usage: null }),
      usageChunk,
      'data: [DONE]\n\n',
    ];
    const s = new SseScanner({ stripUsageChunk: true });
    const out = Buffer.concat(body.map((b) => s.push(Buffer.from(b)) ?? Buffer.alloc(0)));
    expect(out.toString('utf8')).toBe(body[0]! + body[1]! + body[3]!);
    expect(s.usage).toEqual({ promptTokens: 120, completionTokens: 7 });
    expect(s.events).toBe(4);
  });
  it('reads the usage chunk with CRLF line ends, and with a field before or after its one data line', () => {
    const usage = '{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":6}}';
    for (const ev of [`data: ${usage}\r\n\r\n`, `id: 3\ndata: ${usage}\n\n`, `data: ${usage}\nid: 3\n\n`]) {
      const s = new SseScanner({ stripUsageChunk: true });
      expect(s.push(Buffer.from(`data: {"choices":[{"delta":{"content":"a"}}],"usage":null}\n\n${ev}`))?.toString('utf8'), JSON.stringify(ev)).toBe('data: {"choices":[{"delta":{"content":"a"}}],"usage":null}\n\n');
      expect(s.usage, JSON.stringify(ev)).toEqual({ promptTokens: 5, completionTokens: 6 });
      expect(s.events).toBe(2);
    }
  });
  it('still reads a usage object split over several data lines', () => {
    const s = new SseScanner({ stripUsageChunk: false });
    const ev = 'data: {"choices":[],"usage":\ndata: {"prompt_tokens":3,"completion_tokens":4}}\n\n';
    expect(s.push(Buffer.from(ev))?.toString('utf8')).toBe(ev);
    expect(s.usage).toEqual({ promptTokens: 3, completionTokens: 4 });
  });
});
