import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SseParser } from '../../../src/loadgen/sse.js';

describe('SseParser', () => {
  it('extracts data payloads, joins multi-line data, ignores comments and other fields', () => {
    const p = new SseParser();
    expect(p.push(': comment\n\ndata: {"a":1}\n\nevent: x\ndata: line1\ndata: line2\r\n\r\ndata: [DONE]\n\n')).toEqual(['{"a":1}', 'line1\nline2', '[DONE]']);
    expect(p.rest()).toBe('');
  });

  it('gives the same events however the stream is split', () => {
    const events = ['{"x":1}', '{"y":"two words"}', '[DONE]'];
    const wire = events.map((e) => `data: ${e}\n\n`).join('');
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: wire.length }), { maxLength: 10 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const p = new SseParser();
        const out: string[] = [];
        let prev = 0;
        for (const c of [...points, wire.length]) {
          out.push(...p.push(wire.slice(prev, c)));
          prev = c;
        }
        expect(out).toEqual(events);
      }),
      { seed: 2 },
    );
  });
});
