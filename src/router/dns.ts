/**
 * Backends from DNS: the A and AAAA records of a name, resolved again every `refreshMs`. Pointed at a
 * headless Service (`<svc>-<pool>.<namespace>.svc`), cluster DNS answers with the addresses of exactly its
 * *ready* endpoints (publishNotReadyAddresses=false), so this is the pool's backend list without any
 * Kubernetes API access (no ServiceAccount token, no RBAC).
 *
 * Resolution uses node:dns/promises `Resolver` (c-ares, DNS protocol only: no /etc/hosts, no nsswitch).
 * c-ares' resolve*() does not apply the resolv.conf search list (it calls ares_query), so this module does
 * what glibc's res_search does: a name without a trailing dot and with fewer dots than `ndots` is tried with
 * each search domain appended first, then as is; one with at least `ndots` dots as is first. In a pod the
 * search list is `<ns>.svc.<cluster-domain> svc.<cluster-domain> <cluster-domain>` (ndots 5), so
 * `chat-l4.llm.svc` becomes `chat-l4.llm.svc.<cluster-domain>` whatever the cluster domain is.
 *
 * Outcomes per round:
 * - records (A and/or AAAA) for the first candidate name that has any → that list (`http://ip:port`, IPv6
 *   bracketed, sorted, deduplicated, at most `maxBackends`);
 * - every candidate answers NXDOMAIN (ENOTFOUND) or no records (ENODATA) → the empty list: the Service has no
 *   ready endpoint (or does not exist);
 * - anything else (SERVFAIL, refused, timeout, server unreachable) → a transient failure: the last good list
 *   stays and nothing is delivered; before the first good round `synced` stays false.
 */
import { readFile } from 'node:fs/promises';
import { Resolver } from 'node:dns/promises';
import type { Logger } from 'pino';
import { DEFAULT_DNS_REFRESH_MS } from './config.js';
import type { BackendSource } from './discovery.js';

/** Error codes of node:dns that mean "the name has no such records" rather than "the query failed". */
const NO_RECORDS = new Set(['ENOTFOUND', 'ENODATA']);
export const DEFAULT_DNS_MAX_BACKENDS = 1024;
/** resolv.conf caps ndots at 15; glibc's default is 1. */
const MAX_NDOTS = 15;
/** glibc and c-ares use at most 6 search domains. */
const MAX_SEARCH = 6;

export interface ResolvConf {
  search: string[];
  ndots: number;
}

/**
 * The search list and ndots of resolv.conf text (resolv.conf(5)): the last `search` or `domain` line wins,
 * `options ndots:n` (capped at 15); defaults: no search domains, ndots 1. Pure.
 */
export function parseResolvConf(text: string): ResolvConf {
  let search: string[] = [];
  let ndots = 1;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    if (line === '') continue;
    const [key, ...rest] = line.split(/\s+/);
    if (key === 'search' || key === 'domain') {
      search = (key === 'domain' ? rest.slice(0, 1) : rest).map((d) => d.replace(/\.+$/, '')).filter((d) => d !== '').slice(0, MAX_SEARCH);
    } else if (key === 'options') {
      for (const opt of rest) {
        const m = /^ndots:(\d+)$/.exec(opt);
        if (m) ndots = Math.min(Number(m[1]), MAX_NDOTS);
      }
    }
  }
  return { search, ndots };
}

/**
 * The names to query for `name`, in order (glibc res_search): absolute (trailing dot) → only itself;
 * at least `ndots` dots → itself first, then with each search domain; else each search domain first,
 * then itself. Pure.
 */
export function candidateNames(name: string, conf: ResolvConf): string[] {
  if (name.endsWith('.')) return [name.replace(/\.+$/, '')];
  const dots = (name.match(/\./g) ?? []).length;
  const searched = conf.search.map((d) => `${name}.${d}`);
  const out = dots >= conf.ndots ? [name, ...searched] : [...searched, name];
  return [...new Set(out)];
}

/** `http://<address>:<port>` base URLs, IPv6 bracketed, sorted and deduplicated. Pure. */
export function backendUrls(addresses: readonly string[], port: number, scheme: 'http' | 'https' = 'http'): string[] {
  return [...new Set(addresses.map((a) => `${scheme}://${a.includes(':') ? `[${a}]` : a}:${port}`))].sort();
}

export interface DnsSourceOptions {
  /** The name to resolve; without a trailing dot it is expanded with the search list (see above). */
  name: string;
  /** Port of every backend. */
  port: number;
  /** Interval between the end of one round and the start of the next (ms); default 5000. */
  refreshMs?: number;
  /**
   * DNS servers (`ip`, `ip:port`, `[ipv6]:port`), as Resolver.setServers takes them; default: the system's
   * (c-ares reads the nameserver lines of /etc/resolv.conf).
   */
  servers?: readonly string[];
  /** Search domains; default: those of `resolvConfPath`. */
  search?: readonly string[];
  /** ndots; default: that of `resolvConfPath` (1 when it says nothing). */
  ndots?: number;
  /** Where search/ndots come from when not given; default /etc/resolv.conf (missing or unreadable = none). */
  resolvConfPath?: string;
  /** Per-query timeout of one try (ms); default 2000. */
  timeoutMs?: number;
  /** Tries per query and server; default 2. */
  tries?: number;
  /** At most this many backends are kept (the first in sort order); default 1024. */
  maxBackends?: number;
  logger?: Logger | undefined;
}

type Round = { kind: 'records'; name: string; addresses: string[] } | { kind: 'none' } | { kind: 'failed'; name: string; error: Error & { code?: string } };

export class DnsSource implements BackendSource {
  synced = false;
  readonly description: string;
  private readonly resolver: Resolver;
  private readonly refreshMs: number;
  private conf: ResolvConf | undefined;
  /** The candidate that answered last: asked first next time (steady state: one A and one AAAA query). */
  private answered: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private started = false;
  private last: string | undefined;
  private lastCount = 0;
  private failures = 0;
  private truncatedWarned = false;

  constructor(private readonly o: DnsSourceOptions) {
    if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new Error(`DnsSource: port must be 1–65535, not ${o.port}`);
    this.refreshMs = Math.max(1, o.refreshMs ?? DEFAULT_DNS_REFRESH_MS);
    this.description = `dns(${o.name}:${o.port})`;
    this.resolver = new Resolver({ timeout: o.timeoutMs ?? 2000, tries: o.tries ?? 2 });
    if (o.servers !== undefined) this.resolver.setServers([...o.servers]);
    if (o.search !== undefined) this.conf = { search: [...o.search], ndots: Math.min(o.ndots ?? 1, MAX_NDOTS) };
  }

  async start(onUpdate: (urls: string[]) => void): Promise<void> {
    if (this.started) throw new Error(`${this.description}: already started`);
    this.started = true;
    if (!this.conf) this.conf = await this.loadResolvConf();
    const tick = async () => {
      if (this.stopped) return;
      try {
        await this.round(onUpdate);
      } catch (err) {
        // round() handles DNS errors itself; this is a bug guard so the timer chain never dies.
        this.o.logger?.error({ source: this.description, err: String((err as Error)?.message ?? err) }, 'DNS discovery round failed unexpectedly');
      }
    };
    const loop = async () => {
      this.running = tick();
      await this.running;
      this.running = undefined;
      if (this.stopped) return;
      // The next round starts refreshMs after this one ended: never two rounds at once.
      this.timer = setTimeout(() => void loop(), this.refreshMs);
      this.timer.unref();
    };
    await loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.resolver.cancel(); // pending queries reject with ECANCELLED; their result is ignored
    await this.running?.catch(() => undefined);
  }

  private async loadResolvConf(): Promise<ResolvConf> {
    const path = this.o.resolvConfPath ?? '/etc/resolv.conf';
    let conf: ResolvConf = { search: [], ndots: 1 };
    try {
      conf = parseResolvConf(await readFile(path, 'utf8'));
    } catch (err) {
      this.o.logger?.debug({ source: this.description, path, err: (err as NodeJS.ErrnoException).code ?? String(err) }, 'no resolv.conf: no search domains');
    }
    if (this.o.ndots !== undefined) conf.ndots = Math.min(this.o.ndots, MAX_NDOTS);
    return conf;
  }

  private async round(onUpdate: (urls: string[]) => void): Promise<void> {
    const r = await this.resolveOnce();
    if (this.stopped) return;
    if (r.kind === 'failed') {
      this.failures++;
      const fields = {
        source: this.description,
        query: r.name,
        err: r.error.code ?? r.error.message,
        keeping: this.synced ? this.lastCount : undefined,
        synced: this.synced,
        retryInMs: this.refreshMs,
      };
      // One warning per failure streak; the rest at debug, so a DNS outage does not flood the log.
      if (this.failures === 1) this.o.logger?.warn(fields, this.synced ? 'DNS discovery failed; keeping the last known backends' : 'DNS discovery failed; not synced yet');
      else this.o.logger?.debug({ ...fields, failures: this.failures }, 'DNS discovery still failing');
      return;
    }
    if (this.failures > 0) this.o.logger?.info({ source: this.description, failures: this.failures }, 'DNS discovery recovered');
    this.failures = 0;
    let urls = r.kind === 'records' ? backendUrls(r.addresses, this.o.port) : [];
    const max = this.o.maxBackends ?? DEFAULT_DNS_MAX_BACKENDS;
    if (urls.length > max) {
      if (!this.truncatedWarned) this.o.logger?.warn({ source: this.description, found: urls.length, kept: max }, 'DNS discovery found more backends than allowed; keeping the first');
      this.truncatedWarned = true;
      urls = urls.slice(0, max);
    }
    this.synced = true;
    const key = urls.join(',');
    if (key === this.last) return;
    this.last = key;
    this.lastCount = urls.length;
    this.o.logger?.info({ source: this.description, ...(r.kind === 'records' ? { name: r.name } : {}), backends: urls.length }, 'DNS discovery: backends changed');
    onUpdate(urls);
  }

  /** One round over the candidate names; stops at the first name with records or the first failure. */
  private async resolveOnce(): Promise<Round> {
    const all = candidateNames(this.o.name, this.conf ?? { search: [], ndots: 1 });
    const order = this.answered && all.includes(this.answered) ? [this.answered, ...all.filter((n) => n !== this.answered)] : all;
    for (const name of order) {
      if (this.stopped) return { kind: 'none' };
      const [a, aaaa] = await Promise.allSettled([this.resolver.resolve4(name), this.resolver.resolve6(name)]);
      const addresses: string[] = [];
      for (const r of [a, aaaa]) {
        if (r.status === 'fulfilled') addresses.push(...r.value);
        else {
          const error = r.reason as Error & { code?: string };
          if (!NO_RECORDS.has(error?.code ?? '')) return { kind: 'failed', name, error };
        }
      }
      if (addresses.length > 0) {
        this.answered = name;
        return { kind: 'records', name, addresses };
      }
    }
    return { kind: 'none' };
  }
}
