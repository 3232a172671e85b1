/**
 * A minimal authoritative DNS server over UDP on 127.0.0.1, for tests of DNS discovery (no npm
 * dependencies, no recursion, never forwards anything). It answers from a table the test controls:
 *
 *   server.set('chat-l4.llm.svc.cluster.local', { a: ['127.0.0.1'], aaaa: ['::1'] });
 *   server.set('flaky.example', 'servfail');   // or 'refused', or 'drop' (never answers: a timeout)
 *   server.delete('chat-l4.llm.svc.cluster.local');   // → NXDOMAIN
 *
 * A name in the table answers A/AAAA from its lists (NOERROR without answers when a list is empty or
 * missing, i.e. NODATA); any other name answers NXDOMAIN; other query types answer NODATA. Names compare
 * case-insensitively, without the trailing dot; the question is echoed byte for byte. Every query is
 * recorded (`queries`). `stop()` closes the socket (queries then get ICMP port unreachable) and `start()`
 * binds the same port again.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';

export type DnsEntry = { a?: string[]; aaaa?: string[]; ttl?: number } | 'servfail' | 'refused' | 'drop';

export interface DnsQuery {
  name: string;
  type: 'A' | 'AAAA' | number;
}

export interface TestDnsServer {
  /** `127.0.0.1:<port>`, as Resolver.setServers and DnsSourceOptions.servers take it. */
  readonly address: string;
  readonly port: number;
  /** Every query received, in order. */
  readonly queries: DnsQuery[];
  set(name: string, entry: DnsEntry): void;
  delete(name: string): void;
  /** Closes the socket (the server is "down"). */
  stop(): Promise<void>;
  /** Binds the same port again after stop(). */
  start(): Promise<void>;
  close(): Promise<void>;
}

const TYPE_A = 1;
const TYPE_AAAA = 28;
const CLASS_IN = 1;
const RCODE = { noerror: 0, servfail: 2, nxdomain: 3, refused: 5 } as const;
const MAX_UDP = 1232;

const norm = (n: string) => n.toLowerCase().replace(/\.+$/, '');

/** The QNAME at `off` (no compression in questions) and the offset after it; undefined if malformed. */
function readName(buf: Buffer, off: number): { name: string; end: number } | undefined {
  const labels: string[] = [];
  for (let i = 0; i < 128; i++) {
    if (off >= buf.length) return undefined;
    const len = buf[off]!;
    if (len === 0) return { name: labels.join('.'), end: off + 1 };
    if (len > 63 || off + 1 + len > buf.length) return undefined;
    labels.push(buf.toString('latin1', off + 1, off + 1 + len));
    off += 1 + len;
  }
  return undefined;
}

function ipv4Bytes(ip: string): Buffer {
  return Buffer.from(ip.split('.').map(Number));
}

function ipv6Bytes(ip: string): Buffer {
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const parse = (s: string | undefined) => (s ? s.split(':').filter((x) => x !== '') : []);
  const h = parse(head);
  const t = parse(tail);
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** The answer to one query packet; undefined = do not answer (malformed, or a 'drop' entry). */
export function answer(query: Buffer, table: ReadonlyMap<string, DnsEntry>, seen?: DnsQuery[]): Buffer | undefined {
  if (query.length < 12) return undefined;
  const flags = query.readUInt16BE(2);
  if (flags & 0x8000) return undefined; // a response, not a query
  if (query.readUInt16BE(4) !== 1) return undefined; // exactly one question
  const q = readName(query, 12);
  if (!q || q.end + 4 > query.length) return undefined;
  const qtype = query.readUInt16BE(q.end);
  const qclass = query.readUInt16BE(q.end + 2);
  const question = query.subarray(12, q.end + 4);
  seen?.push({ name: q.name, type: qtype === TYPE_A ? 'A' : qtype === TYPE_AAAA ? 'AAAA' : qtype });
  const entry = table.get(norm(q.name));
  if (entry === 'drop') return undefined;

  let rcode: number = RCODE.noerror;
  const answers: Buffer[] = [];
  if (entry === undefined) rcode = RCODE.nxdomain;
  else if (entry === 'servfail') rcode = RCODE.servfail;
  else if (entry === 'refused') rcode = RCODE.refused;
  else if (qclass === CLASS_IN && (qtype === TYPE_A || qtype === TYPE_AAAA)) {
    const ips = (qtype === TYPE_A ? entry.a : entry.aaaa) ?? [];
    for (const ip of ips) {
      const rdata = qtype === TYPE_A ? ipv4Bytes(ip) : ipv6Bytes(ip);
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
      rr.writeUInt16BE(qtype, 2);
      rr.writeUInt16BE(CLASS_IN, 4);
      rr.writeUInt32BE(entry.ttl ?? 0, 6); // TTL 0 by default: nothing (c-ares' query cache included) caches it
      rr.writeUInt16BE(rdata.length, 10);
      answers.push(rr, rdata);
    }
  }
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.readUInt16BE(0), 0); // id
  // QR, the query's opcode and RD, AA, RA, rcode.
  header.writeUInt16BE(0x8000 | (flags & 0x7800) | 0x0400 | (flags & 0x0100) | 0x0080 | rcode, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length / 2, 6);
  let out = Buffer.concat([header, question, ...answers]);
  if (out.length > MAX_UDP) {
    // Too big for UDP: truncated, no answers (the test should keep its tables small).
    header.writeUInt16BE(header.readUInt16BE(2) | 0x0200, 2);
    header.writeUInt16BE(0, 6);
    out = Buffer.concat([header, question]);
  }
  return out;
}

export async function startDnsServer(initial: Record<string, DnsEntry> = {}): Promise<TestDnsServer> {
  for (const [name, e] of Object.entries(initial)) {
    if (typeof e === 'object') for (const ip of [...(e.a ?? []), ...(e.aaaa ?? [])]) if (!isIPv4(ip) && !isIPv6(ip)) throw new Error(`${name}: not an IP address: ${ip}`);
  }
  const table = new Map<string, DnsEntry>(Object.entries(initial).map(([n, e]) => [norm(n), e]));
  const queries: DnsQuery[] = [];
  let socket: Socket | undefined;
  let port = 0;

  const bind = () =>
    new Promise<void>((resolve, reject) => {
      const s = createSocket({ type: 'udp4' });
      s.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
        const out = answer(msg, table, queries);
        if (out) s.send(out, rinfo.port, rinfo.address);
      });
      s.once('error', reject);
      s.bind({ port, address: '127.0.0.1', exclusive: true }, () => {
        s.off('error', reject);
        s.on('error', () => {}); // e.g. a send to a client that went away
        port = s.address().port;
        socket = s;
        resolve();
      });
    });
  const unbind = () =>
    new Promise<void>((resolve) => {
      const s = socket;
      socket = undefined;
      if (!s) return resolve();
      s.close(() => resolve());
    });

  await bind();
  return {
    get address() {
      return `127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    queries,
    set(name, entry) {
      if (typeof entry === 'object') for (const ip of [...(entry.a ?? []), ...(entry.aaaa ?? [])]) if (!isIPv4(ip) && !isIPv6(ip)) throw new Error(`${name}: not an IP address: ${ip}`);
      table.set(norm(name), entry);
    },
    delete(name) {
      table.delete(norm(name));
    },
    stop: unbind,
    start: () => (socket ? Promise.resolve() : bind()),
    close: unbind,
  };
}
