/**
 * DNS discovery (src/router/dns.ts) against a real DNS server on 127.0.0.1 (test/support/dns-server.ts):
 * real UDP queries through node:dns's Resolver, never to the system resolver (every source here gets
 * `servers` and `search` explicitly). The addresses in the answers are data only: nothing dials them.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backendUrls, candidateNames, DnsSource, parseResolvConf, type DnsSourceOptions } from '../../../src/router/dns.js';
import { startDnsServer, type TestDnsServer } from '../../support/dns-server.js';
import { delay, until } from '../../support/wait.js';

// A pod's resolv.conf in namespace "llm" of a cluster whose domain is deliberately not cluster.local.
const POD_RESOLV_CONF = `search llm.svc.corp.example svc.corp.example corp.example
nameserver 10.96.0.10
options ndots:5
`;
const POD = parseResolvConf(POD_RESOLV_CONF);
const FQDN = 'chat-l4.llm.svc.corp.example';
const REFRESH = 60;


function captureLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

describe('resolv.conf, candidate names and URLs (pure)', () => {
  it('parses search, domain and ndots like resolv.conf(5); the last search/domain line wins', () => {
    expect(POD).toEqual({ search: ['llm.svc.corp.example', 'svc.corp.example', 'corp.example'], ndots: 5 });
    expect(parseResolvConf('')).toEqual({ search: [], ndots: 1 });
    expect(parseResolvConf('domain a.example\n# comment\nsearch b.example. c.example ; x\noptions timeout:1 ndots:99 attempts:2')).toEqual({ search: ['b.example', 'c.example'], ndots: 15 });
    expect(parseResolvConf('search x.example\ndomain y.example\n').search).toEqual(['y.example']);
  });
  it('candidate names follow res_search: search list first below ndots dots, the name first at or above, absolute names alone', () => {
    expect(candidateNames('chat-l4.llm.svc', POD)).toEqual([
      'chat-l4.llm.svc.llm.svc.corp.example',
      'chat-l4.llm.svc.svc.corp.example',
      'chat-l4.llm.svc.corp.example',
      'chat-l4.llm.svc',
    ]);
    expect(candidateNames('a.b.example', { search: ['s.example'], ndots: 1 })).toEqual(['a.b.example', 'a.b.example.s.example']);
    expect(candidateNames(`${FQDN}.`, POD)).toEqual([FQDN]);
    expect(candidateNames('x', { search: [], ndots: 1 })).toEqual(['x']);
  });
  it('backend URLs: IPv6 bracketed, sorted, deduplicated', () => {
    expect(backendUrls(['10.0.0.2', 'fd00::1', '10.0.0.1', '10.0.0.2'], 8000)).toEqual(['http://10.0.0.1:8000', 'http://10.0.0.2:8000', 'http://[fd00::1]:8000']);
  });
});

describe('DnsSource against a DNS server on 127.0.0.1', () => {
  let dns: TestDnsServer;
  const sources: DnsSource[] = [];
  beforeAll(async () => {
    dns = await startDnsServer();
  });
  afterAll(async () => {
    await dns?.close();
  });
  afterEach(async () => {
    for (const s of sources.splice(0)) await s.stop();
    await dns.start(); // a test may have stopped it
  });

  function source(o: Partial<DnsSourceOptions> = {}): DnsSource {
    const s = new DnsSource({ name: 'chat-l4.llm.svc', port: 8000, refreshMs: REFRESH, servers: [dns.address], search: POD.search, ndots: POD.ndots, timeoutMs: 100, tries: 1, ...o });
    sources.push(s);
    return s;
  }

  it('delivers the initial list (A and AAAA, relative name expanded with the search list) before start() resolves', async () => {
    dns.set(FQDN, { a: ['10.0.0.2', '10.0.0.1', '10.0.0.2'], aaaa: ['fd00::7'] });
    const updates: string[][] = [];
    const s = source();
    expect(s.synced).toBe(false);
    expect(s.description).toBe('dns(chat-l4.llm.svc:8000)');
    await s.start((u) => updates.push(u));
    expect(s.synced).toBe(true);
    expect(updates).toEqual([['http://10.0.0.1:8000', 'http://10.0.0.2:8000', 'http://[fd00::7]:8000']]);
    // The first two search candidates answered NXDOMAIN; the cluster-domain one had the records.
    const asked = [...new Set(dns.queries.map((q) => q.name.toLowerCase()))];
    expect(asked.slice(-3)).toEqual(['chat-l4.llm.svc.llm.svc.corp.example', 'chat-l4.llm.svc.svc.corp.example', FQDN]);
  });

  it('asks the name that answered first on later rounds; an unchanged list is not delivered again', async () => {
    dns.set(FQDN, { a: ['10.0.0.1'] });
    const updates: string[][] = [];
    const s = source();
    await s.start((u) => updates.push(u));
    const mark = dns.queries.length;
    await until(() => dns.queries.length >= mark + 6, 'three more rounds');
    const later = dns.queries.slice(mark, mark + 6);
    expect(later.every((q) => q.name.toLowerCase() === FQDN)).toBe(true);
    expect(later.map((q) => q.type).sort()).toEqual(['A', 'A', 'A', 'AAAA', 'AAAA', 'AAAA']);
    expect(updates).toEqual([['http://10.0.0.1:8000']]);
  });

  it('picks up a change on the next refresh', async () => {
    dns.set(FQDN, { a: ['10.0.0.1'] });
    const updates: string[][] = [];
    const s = source();
    await s.start((u) => updates.push(u));
    dns.set(FQDN, { a: ['10.0.0.1', '10.0.0.3'], aaaa: ['fd00::1'] });
    await until(() => updates.length === 2, 'the changed list');
    expect(updates[1]).toEqual(['http://10.0.0.1:8000', 'http://10.0.0.3:8000', 'http://[fd00::1]:8000']);
  });

  it('NXDOMAIN (no ready endpoint) and NODATA mean the empty list, and the source stays synced', async () => {
    dns.set(FQDN, { a: ['10.0.0.1'] });
    const updates: string[][] = [];
    const s = source();
    await s.start((u) => updates.push(u));
    dns.delete(FQDN);
    await until(() => updates.length === 2, 'the empty list');
    expect(updates[1]).toEqual([]);
    expect(s.synced).toBe(true);
    dns.set(FQDN, { a: ['10.0.0.4'] });
    await until(() => updates.length === 3, 'the name again');
    dns.set(FQDN, {}); // the name exists, no A/AAAA records
    await until(() => updates.length === 4, 'the empty list (NODATA)');
    expect(updates.slice(2)).toEqual([['http://10.0.0.4:8000'], []]);

    // A name that never existed: synced at once, with an empty list.
    const none: string[][] = [];
    const t = source({ name: 'nothing.llm.svc' });
    await t.start((u) => none.push(u));
    expect(t.synced).toBe(true);
    expect(none).toEqual([[]]);
  });

  it('DNS server down: the last good list is kept, synced unaffected, one warning; it recovers when the server is back', async () => {
    dns.set(FQDN, { a: ['10.0.0.1', '10.0.0.2'] });
    const { logger, lines } = captureLogger();
    const updates: string[][] = [];
    const s = source({ logger });
    await s.start((u) => updates.push(u));
    await dns.stop();
    await until(() => lines.filter((l) => l.msg === 'DNS discovery still failing').length >= 2, 'failing rounds');
    expect(updates).toEqual([['http://10.0.0.1:8000', 'http://10.0.0.2:8000']]);
    expect(s.synced).toBe(true);
    const warns = lines.filter((l) => l.level === 40);
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatchObject({ source: 'dns(chat-l4.llm.svc:8000)', err: 'ECONNREFUSED', keeping: 2, synced: true, msg: 'DNS discovery failed; keeping the last known backends' });
    dns.set(FQDN, { a: ['10.0.0.2'] });
    await dns.start();
    await until(() => updates.length === 2, 'the list after recovery');
    expect(updates[1]).toEqual(['http://10.0.0.2:8000']);
    expect(lines.some((l) => l.msg === 'DNS discovery recovered')).toBe(true);
  });

  it('SERVFAIL and timeouts are transient too: the last good list stays', async () => {
    dns.set(FQDN, { a: ['10.0.0.1'] });
    const updates: string[][] = [];
    const s = source();
    await s.start((u) => updates.push(u));
    for (const failure of ['servfail', 'drop'] as const) {
      dns.set(FQDN, failure);
      const mark = dns.queries.length;
      await until(() => dns.queries.length >= mark + 4, `two rounds answered with ${failure}`);
      expect(updates).toEqual([['http://10.0.0.1:8000']]);
      expect(s.synced).toBe(true);
    }
  });

  it('never synced while the server is unreachable: start() resolves unsynced, delivers nothing, syncs later', async () => {
    dns.set(FQDN, { a: ['10.0.0.9'] });
    await dns.stop();
    const updates: string[][] = [];
    const s = source();
    await s.start((u) => updates.push(u));
    expect(s.synced).toBe(false);
    expect(updates).toEqual([]);
    await dns.start();
    await until(() => s.synced, 'synced');
    expect(updates).toEqual([['http://10.0.0.9:8000']]);
  });

  it('stop() stops querying, also with a query in flight, and nothing is delivered afterwards', async () => {
    dns.set(FQDN, { a: ['10.0.0.1'] });
    const updates: string[][] = [];
    const s = source();
    await s.start((u) => updates.push(u));
    await s.stop();
    const mark = dns.queries.length;
    await delay(REFRESH * 4);
    expect(dns.queries.length).toBe(mark);

    // A query the server never answers is in flight when stop() is called.
    dns.set(FQDN, 'drop');
    const late: string[][] = [];
    const t = source({ timeoutMs: 2000 });
    const started = t.start((u) => late.push(u));
    await until(() => dns.queries.length > mark, 'a query in flight');
    const t0 = Date.now();
    await t.stop();
    await started;
    expect(Date.now() - t0).toBeLessThan(1000);
    dns.set(FQDN, { a: ['10.0.0.5'] });
    const after = dns.queries.length;
    await delay(REFRESH * 4);
    expect(dns.queries.length).toBe(after);
    expect(late).toEqual([]);
  });

  it('is bounded: at most maxBackends URLs, the first in sort order', async () => {
    dns.set(FQDN, { a: ['10.0.0.3', '10.0.0.1', '10.0.0.2'] });
    const updates: string[][] = [];
    await source({ maxBackends: 2 }).start((u) => updates.push(u));
    expect(updates).toEqual([['http://10.0.0.1:8000', 'http://10.0.0.2:8000']]);
  });

  it('an absolute name (trailing dot) is asked as is, without the search list', async () => {
    dns.set(FQDN, { a: ['10.0.0.1'] });
    const mark = dns.queries.length;
    const updates: string[][] = [];
    await source({ name: `${FQDN}.` }).start((u) => updates.push(u));
    expect(updates).toEqual([['http://10.0.0.1:8000']]);
    expect(dns.queries.slice(mark).map((q) => q.name.toLowerCase())).toEqual([FQDN, FQDN]);
  });
});
