import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../../src/common/random.js';
import { eventData, JsonTap, scanEvent, SseScanner, SseTap } from '../../../src/router/taps.js';

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
    const end = (s: string, from = 0) => scanEvent(Buffer.from(s), from, { end: -1, dataLines: 0, usageKey: false, usageObject: false }).end;
    expect(end('data: a\n\ndata: b')).toBe(9);
    expect(end('data: a\n\ndata: b\n\n', 9)).toBe(18);
    expect(end('data: a\r\n\r\n')).toBe(11);
    expect(end('data: a\r\n\n')).toBe(10); // a blank LF line after a CRLF one ends it too
    expect(end('data: a\r\nid: 1\r\n\r\ndata: b\n\n')).toBe(18); // the earlier of the two ends
    expect(end('data: a\n')).toBe(-1);
    expect(end('data: a\r\n\r')).toBe(-1);
    expect(end('\r\n\r\n', 1)).toBe(-1); // a CRLF blank line must start inside the event
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

describe('scanEvent (one pass over the bytes of an event, before any decoding)', () => {
  const scan = (s: string) => scanEvent(Buffer.from(s), 0, { end: -1, dataLines: 0, usageKey: false, usageObject: false });
  it('sees a usage object only when "usage" is followed by an object, JSON whitespace allowed', () => {
    expect(scan('data: {"choices":[],"usage":{"prompt_tokens":1}}\n\n').usageObject).toBe(true);
    expect(scan('data: {"usage" :\t{ }}\n\n').usageObject).toBe(true);
    expect(scan('data: {"choices":[{"delta":{"content":"x"}}],"usage":null}\n\n')).toMatchObject({ usageKey: true, usageObject: false });
    expect(scan('data: {"choices":[]}\n\n')).toMatchObject({ usageKey: false, usageObject: false });
    expect(scan('data: {"usage":')).toMatchObject({ end: -1, usageKey: true, usageObject: false });
    // The look-ahead stays on the key's line: not into the next line, nor past the event's end.
    expect(scan('data: {"usage":\ndata: {"prompt_tokens":1}}\n\n')).toMatchObject({ usageKey: true, usageObject: false, dataLines: 2 });
    expect(scan('data: "usage"\n\n: {\n\n')).toMatchObject({ end: 15, usageKey: true, usageObject: false });
  });
  it('looks past a "usage" that is a string value to a later usage key', () => {
    expect(scan('data: {"choices":[{"delta":{"content":"usage"}}],"usage":{"prompt_tokens":2}}\n\n').usageObject).toBe(true);
    expect(scan('data: {"choices":[{"delta":{"content":"usage"}}],"usage":null}\n\n').usageObject).toBe(false);
    // Escaped quotes inside content are not the key.
    expect(scan(`data: ${JSON.stringify({ choices: [{ delta: { content: '"usage":{' } }], usage: null })}\n\n`).usageObject).toBe(false);
  });
  it('counts data lines, not other fields or comments, and stops at the event end', () => {
    expect(scan(': keep-alive\n\n')).toMatchObject({ end: 14, dataLines: 0 });
    expect(scan('id: 3\nevent: x\ndata: {}\n\n').dataLines).toBe(1);
    expect(scan('data: {"a":\r\ndata: 1}\r\n\r\n').dataLines).toBe(2);
    expect(scan('data: a\n\ndata: {"usage":{}}\n\n')).toMatchObject({ end: 9, dataLines: 1, usageKey: false });
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
  it('hands back a chunk of whole events as the same Buffer (no copy, no view)', () => {
    const s = new SseScanner({ stripUsageChunk: true });
    const b = Buffer.from(chunk({ choices: [{ delta: { content: 'a' } }], usage: null }) + chunk({ choices: [{ delta: { content: 'b' } }], usage: null }));
    expect(s.push(b)).toBe(b);
    const half = Buffer.from('data: {"choices":[]');
    expect(s.push(half)).toBeUndefined();
  });
  it('still reads a usage object split over several data lines', () => {
    const s = new SseScanner({ stripUsageChunk: false });
    const ev = 'data: {"choices":[],"usage":\ndata: {"prompt_tokens":3,"completion_tokens":4}}\n\n';
    expect(s.push(Buffer.from(ev))?.toString('utf8')).toBe(ev);
    expect(s.usage).toEqual({ promptTokens: 3, completionTokens: 4 });
  });
});

describe('SseScanner over random streams (LF and CRLF, comments, fields, multi-line data) split at random points', () => {
  it('forwards everything but the usage-only chunk, byte for byte, and reads its usage, for 300 seeded streams', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rnd = mulberry32(seed);
      const nl = rnd() < 0.3 ? '\r\n' : '\n';
      const pick = <T,>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
      const events: string[] = [];
      const n = 1 + Math.floor(rnd() * 12);
      for (let i = 0; i < n; i++) {
        const content = pick(['a', 'héllo ✓', '"usage":{', 'usage', '', '\n\n']);
        const json = JSON.stringify({ choices: [{ delta: { content } }], usage: null });
        events.push(pick([`data: ${json}${nl}${nl}`, `: ping${nl}${nl}`, `id: ${i}${nl}data: ${json}${nl}${nl}`, `event: x${nl}data:${json}${nl}${nl}`]));
      }
      const usage = { prompt_tokens: seed, completion_tokens: 2 * seed };
      const usageEvent = rnd() < 0.5
        ? `data: ${JSON.stringify({ choices: [], usage })}${nl}${nl}`
        : `data: {"choices":[],"usage":${nl}data: ${JSON.stringify(usage)}}${nl}${nl}`;
      const tail = `data: [DONE]${nl}${nl}`;
      const whole = Buffer.from(events.join('') + usageEvent + tail);
      const s = new SseScanner({ stripUsageChunk: true });
      const out: Buffer[] = [];
      for (let at = 0; at < whole.length; ) {
        const len = 1 + Math.floor(rnd() * 80);
        const o = s.push(whole.subarray(at, at + len));
        if (o) out.push(Buffer.from(o)); // a copy: the scanner may hand back views of its input
        at += len;
      }
      const last = s.flush();
      if (last) out.push(last);
      expect(Buffer.concat(out).toString('utf8'), `seed ${seed}`).toBe(events.join('') + tail);
      expect(s.usage, `seed ${seed}`).toEqual({ promptTokens: seed, completionTokens: 2 * seed });
      expect(s.events, `seed ${seed}`).toBe(events.filter((e) => e.includes('data:')).length + 2);
    }
  });
});
