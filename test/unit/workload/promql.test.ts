import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  PromQL,
  PromQLBuildError,
  duration,
  escapeRegex,
  escapeStringLiteral,
  labelMatcher,
  promql,
  quoteString,
  selector,
} from '../../../src/workload/promql.js';
import { routerQueries, vllmQueries } from '../../../src/workload/queries.js';

/**
 * A reader for PromQL double-quoted string literals with Go's escape rules (the subset the lexer accepts).
 * Returns the decoded value and the index just past the closing quote; throws where the PromQL lexer would.
 */
function readGoString(src: string, start: number): { value: string; end: number } {
  if (src[start] !== '"') throw new Error(`no opening quote at ${start}`);
  let out = '';
  for (let i = start + 1; i < src.length; ) {
    const c = src[i] as string;
    if (c === '"') return { value: out, end: i + 1 };
    if (c === '\n') throw new Error('unterminated quoted string (raw newline)');
    if (c !== '\\') {
      out += c;
      i++;
      continue;
    }
    const e = src[i + 1];
    const simple: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"' };
    if (e !== undefined && e in simple) {
      out += simple[e];
      i += 2;
    } else if (e === 'u') {
      const hex = src.slice(i + 2, i + 6);
      if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw new Error('bad \\u escape');
      out += String.fromCharCode(parseInt(hex, 16));
      i += 6;
    } else throw new Error(`unknown escape \\${e ?? ''}`);
  }
  throw new Error('unterminated quoted string');
}

describe('escapeStringLiteral / quoteString', () => {
  it('escapes backslash, quote, newline, CR, tab and other control characters', () => {
    expect(escapeStringLiteral('plain-value_1.2')).toBe('plain-value_1.2');
    expect(escapeStringLiteral('a"b')).toBe('a\\"b');
    expect(escapeStringLiteral('a\\b')).toBe('a\\\\b');
    expect(escapeStringLiteral('a\nb\rc\td')).toBe('a\\nb\\rc\\td');
    expect(escapeStringLiteral('\x00\x1f\x7f')).toBe('\\u0000\\u001f\\u007f');
    expect(escapeStringLiteral('llama 🦙 ü')).toBe('llama 🦙 ü');
    expect(quoteString('x"y').text).toBe('"x\\"y"');
  });

  it('rejects lone surrogates (not representable in UTF-8)', () => {
    expect(() => escapeStringLiteral('a\uD800b')).toThrow(PromQLBuildError);
    expect(() => escapeStringLiteral('a\uDC00')).toThrow(PromQLBuildError);
    expect(escapeStringLiteral('\uD83E\uDD99')).toBe('🦙');
  });

  it('round-trips every string and the literal always ends exactly at its closing quote (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme-composite', maxLength: 40 }), fc.string({ unit: fc.constantFrom('"', '\\', '\n', '\r', '\t', '\x00', '\x1b', '\x7f', 'a', '}', '{', ' ', 'ü', '🦙'), maxLength: 40 }), (a, b) => {
        for (const s of [a, b, `${a}"${b}`, `${a}\\${b}\n`, `${a}\\"}) or vector(1) #${b}`]) {
          const lit = quoteString(s).text;
          const { value, end } = readGoString(lit, 0);
          expect(value).toBe(s);
          expect(end).toBe(lit.length);
          expect(lit).not.toMatch(/\n/);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('labelMatcher / selector: injection attempts stay inside the string literal', () => {
  const attempts = [
    'x"} or vector(1) #',
    'x"}) or up{job="',
    'x\\"} or vector(1)',
    'x\\',
    'a\n} or vector(1)',
    '"',
    '\\\\"',
    '}',
    '{__name__=~".+"}',
  ];

  it.each(attempts)('%j', (evil) => {
    const text = selector('melange_router_requests_total', [labelMatcher('service', evil), { name: 'namespace', value: 'ns' }]).text;
    const prefix = 'melange_router_requests_total{service=';
    expect(text.startsWith(prefix)).toBe(true);
    const { value, end } = readGoString(text, prefix.length);
    expect(value).toBe(evil);
    // What follows the literal is exactly our own text: the attacker's value could not add syntax.
    expect(text.slice(end)).toBe(',namespace="ns"}');
  });

  it('validates label names, metric names and operators (they cannot be escaped)', () => {
    expect(() => labelMatcher('bad-name', 'x')).toThrow(PromQLBuildError);
    expect(() => labelMatcher('a"} or vector(1) #', 'x')).toThrow(PromQLBuildError);
    expect(() => labelMatcher('ok', 'x', '==' as never)).toThrow(PromQLBuildError);
    expect(() => selector('up or vector(1)')).toThrow(PromQLBuildError);
    expect(selector('vllm:request_success_total').text).toBe('vllm:request_success_total');
    expect(labelMatcher('le', '+Inf', '!=').text).toBe('le!="+Inf"');
    expect(labelMatcher('model_name', 'a.b', '=~').text).toBe('model_name=~"a.b"');
  });

  it('escapeRegex makes a value match literally under =~', () => {
    const v = 'meta-llama/Llama-2-7b-hf (v1.0)+[x]|*?^$\\';
    const re = new RegExp(`^(?:${escapeRegex(v)})$`);
    expect(re.test(v)).toBe(true);
    expect(re.test('meta-llama/Llama-2-7b-hf (v1X0)+[x]|*?^$\\')).toBe(false);
  });
});

describe('duration', () => {
  it('renders milliseconds in the largest exact unit', () => {
    expect(duration(300_000).text).toBe('5m');
    expect(duration(3_600_000).text).toBe('1h');
    expect(duration(90_000).text).toBe('90s');
    expect(duration(1500).text).toBe('1500ms');
    expect(duration('10m').text).toBe('10m');
  });
  it('rejects anything that is not a plain positive duration', () => {
    for (const bad of [0, -5, 1.5, Number.NaN, Infinity]) expect(() => duration(bad)).toThrow(PromQLBuildError);
    for (const bad of ['5m] or vector(1) #', '1m30s', '', '0s', '5d']) expect(() => duration(bad)).toThrow(PromQLBuildError);
  });
});

describe('promql tagged template', () => {
  it('quotes strings, inlines fragments and finite numbers', () => {
    const sel = selector('x', [labelMatcher('a', 'b')]);
    expect(promql`sum(rate(${sel}[${duration(60_000)}])) > ${0.5}`.text).toBe('sum(rate(x{a="b"}[1m])) > 0.5');
    expect(promql`label_replace(up, "dst", ${'a"b'}, "src", "(.*)")`.text).toBe('label_replace(up, "dst", "a\\"b", "src", "(.*)")');
    expect(`${promql`x`}`).toBe('x');
    expect(promql`x` instanceof PromQL).toBe(true);
  });
  it('refuses non-finite numbers and other values', () => {
    expect(() => promql`x > ${Number.NaN}`).toThrow(PromQLBuildError);
    expect(() => promql`x > ${Infinity}`).toThrow(PromQLBuildError);
    expect(() => promql`x > ${{} as never}`).toThrow(PromQLBuildError);
  });
});

describe('queries', () => {
  it('router: per-bucket rate over the window, recent rate, newest raw sample', () => {
    const q = routerQueries([{ name: 'namespace', value: 'ns' }, { name: 'service', value: 'chat' }], 300_000, 60_000);
    const sel = 'melange_router_requests_total{namespace="ns",service="chat"}';
    expect(q.bucketRates.text).toBe(`sum by (input_le, output_le) (rate(${sel}[5m]))`);
    expect(q.recentRate.text).toBe(`sum(rate(${sel}[1m]))`);
    expect(q.lastSeen.text).toBe(`max(timestamp(${sel}))`);
  });
  it('vLLM: per-le bucket rates of both histograms, success rates, newest sample', () => {
    const q = vllmQueries([{ name: 'model_name', value: 'meta-llama/Llama-2-7b-hf' }], 600_000, 60_000);
    const m = '{model_name="meta-llama/Llama-2-7b-hf"}';
    expect(q.promptBuckets.text).toBe(`sum by (le) (rate(vllm:request_prompt_tokens_bucket${m}[10m]))`);
    expect(q.generationBuckets.text).toBe(`sum by (le) (rate(vllm:request_generation_tokens_bucket${m}[10m]))`);
    expect(q.successRate.text).toBe(`sum(rate(vllm:request_success_total${m}[10m]))`);
    expect(q.recentSuccessRate.text).toBe(`sum(rate(vllm:request_success_total${m}[1m]))`);
    expect(q.lastSeen.text).toBe(`max(timestamp(vllm:request_prompt_tokens_count${m}))`);
  });
});
