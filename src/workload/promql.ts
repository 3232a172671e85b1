/**
 * Safe construction of PromQL text (pure).
 *
 * Every value that comes from a user (namespace, service and model names, label values from a spec) reaches
 * a query only as a quoted PromQL string literal built by `quoteString`, so no value can close the literal,
 * the selector or the expression it sits in. Label and metric names are validated, never escaped: PromQL has
 * no quoting for them, so anything outside their grammar is rejected.
 *
 * PromQL double-quoted strings follow Go's escape rules (the lexer accepts \a \b \f \n \r \t \v \\ \" \xNN
 * \uNNNN \UNNNNNNNN and octal); a raw newline ends the literal with a syntax error. We escape `\` and `"`,
 * write \n \r \t, and every other control character as \u00XX. Lone UTF-16 surrogates cannot be represented
 * in UTF-8 at all, so they are rejected.
 */

/** A piece of PromQL that is trusted to be syntactically closed (built by the helpers below). */
export class PromQL {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

export type MatchOp = '=' | '!=' | '=~' | '!~';

/** A label matcher as data, e.g. from configuration: `{ name: 'model_name', value: 'llama' }`. */
export interface LabelMatcherSpec {
  name: string;
  value: string;
  /** Default '='. For '=~' / '!~' the value is an RE2 regex (fully anchored by Prometheus). */
  op?: MatchOp;
}

export class PromQLBuildError extends Error {
  override name = 'PromQLBuildError';
}

const LABEL_NAME_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const METRIC_NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LONE_SURROGATE_RE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const MATCH_OPS: readonly string[] = ['=', '!=', '=~', '!~'];

export const isValidLabelName = (name: string): boolean => LABEL_NAME_RE.test(name);
export const isValidMetricName = (name: string): boolean => METRIC_NAME_RE.test(name);

/** The body of a double-quoted PromQL string literal for `value` (without the quotes). */
export function escapeStringLiteral(value: string): string {
  if (LONE_SURROGATE_RE.test(value)) throw new PromQLBuildError('string contains a lone UTF-16 surrogate (not valid UTF-8)');
  let out = '';
  for (const ch of value) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '\\') out += '\\\\';
    else if (ch === '"') out += '\\"';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return out;
}

/** `value` as a double-quoted PromQL string literal. */
export function quoteString(value: string): PromQL {
  return new PromQL(`"${escapeStringLiteral(value)}"`);
}

/** Escapes RE2 metacharacters so that `=~` matches `value` literally (e.g. to build `a|b` alternatives). */
export function escapeRegex(value: string): string {
  return value.replace(/[\\.+*?()|[\]{}^$]/g, (c) => `\\${c}`);
}

/** `name<op>"value"` with the value escaped; throws on an invalid label name or operator. */
export function labelMatcher(name: string, value: string, op: MatchOp = '='): PromQL {
  if (!isValidLabelName(name)) throw new PromQLBuildError(`invalid label name ${JSON.stringify(name)}`);
  if (!MATCH_OPS.includes(op)) throw new PromQLBuildError(`invalid match operator ${JSON.stringify(op)}`);
  return new PromQL(`${name}${op}${quoteString(value).text}`);
}

const toMatcher = (m: PromQL | LabelMatcherSpec): PromQL => (m instanceof PromQL ? m : labelMatcher(m.name, m.value, m.op ?? '='));

/** `metric{m1,m2,...}`; the metric name is validated. With no matchers: `metric`. */
export function selector(metric: string, matchers: ReadonlyArray<PromQL | LabelMatcherSpec> = []): PromQL {
  if (!isValidMetricName(metric)) throw new PromQLBuildError(`invalid metric name ${JSON.stringify(metric)}`);
  if (matchers.length === 0) return new PromQL(metric);
  return new PromQL(`${metric}{${matchers.map((m) => toMatcher(m).text).join(',')}}`);
}

/**
 * A PromQL duration for a range selector or `offset`. Takes milliseconds (rendered in the largest exact
 * unit, e.g. 300000 → "5m") or a duration string in the API's own format ("30s", "5m", "500ms", "1h").
 */
export function duration(d: number | string): PromQL {
  if (typeof d === 'string') {
    if (!/^[1-9][0-9]{0,8}(ms|s|m|h)$/.test(d)) throw new PromQLBuildError(`invalid duration ${JSON.stringify(d)}`);
    return new PromQL(d);
  }
  if (!Number.isSafeInteger(d) || d <= 0) throw new PromQLBuildError(`duration must be a positive whole number of ms, got ${d}`);
  for (const [unit, ms] of [['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (d % ms === 0) return new PromQL(`${d / ms}${unit}`);
  }
  return new PromQL(`${d}ms`);
}

/**
 * Tagged template for queries. Interpolations are rendered by type:
 * - `PromQL` fragments (from the helpers above) verbatim;
 * - strings as quoted, escaped string literals (never as raw PromQL);
 * - finite numbers in plain decimal form;
 * anything else throws. Example: promql`sum(rate(${selector(m, [labelMatcher('job', job)])}[${duration(w)}]))`.
 */
export function promql(strings: TemplateStringsArray, ...values: ReadonlyArray<PromQL | string | number>): PromQL {
  let out = strings[0] ?? '';
  values.forEach((v, i) => {
    if (v instanceof PromQL) out += v.text;
    else if (typeof v === 'string') out += quoteString(v).text;
    else if (typeof v === 'number' && Number.isFinite(v)) out += String(v);
    else throw new PromQLBuildError(`cannot interpolate ${String(v)} into PromQL`);
    out += strings[i + 1] ?? '';
  });
  return new PromQL(out);
}
