// Preloaded (`node --import`) into the router and the bare relay by the router-overhead benchmark when
// BENCH_HEAP_SURVIVORS=DIR is set: what a relay's young-generation collections have to copy.
//
// A scavenge's pause grows with the objects still alive in the young generation, i.e. allocated since the last
// one and not yet garbage. V8's sampling heap profiler, stopped after a short window, reports exactly the sampled
// allocations of the window that are still alive at its end. So: BENCH_HEAP_WINDOWS windows (20) of
// BENCH_HEAP_WINDOW_MS (1000) each, 200 ms apart, from BENCH_HEAP_START_S (20) seconds after start (past the
// warm-up), sampling every 1 KiB; the live bytes are summed per allocating function (the top frame) and written
// to DIR/<pid>-survivors.json. The profiler's own cost perturbs the latencies of such a run: read them from a
// run without it.
import { writeFileSync } from 'node:fs';
import inspector from 'node:inspector';
import { join } from 'node:path';

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

export interface SurvivorReport {
  pid: number;
  windows: number;
  windowMs: number;
  /** Sampled bytes alive at the end of a window, summed over the windows. */
  totalBytes: number;
  /** By allocating function (`name file:line`, the path shortened to the package or repository file). */
  sites: { site: string; bytes: number }[];
}

const dir = process.env['BENCH_HEAP_SURVIVORS'];
const num = (name: string, dflt: number) => {
  const n = Number(process.env[name]);
  return Number.isFinite(n) && n > 0 ? n : dflt;
};

function site(cf: ProfileNode['callFrame']): string {
  const file = cf.url.replace(/^.*\/node_modules\//, '').replace(/^.*\/melange-bench-[^/]+\//, '').replace(/^file:\/\/\/.*?\/(src|bench)\//, '$1/');
  return `${cf.functionName || '(anonymous)'} ${file}:${cf.lineNumber + 1}`;
}

function addSites(node: ProfileNode, into: Map<string, number>): void {
  if (node.selfSize > 0) into.set(site(node.callFrame), (into.get(site(node.callFrame)) ?? 0) + node.selfSize);
  for (const c of node.children) addSites(c, into);
}

async function sample(outDir: string): Promise<void> {
  const windows = num('BENCH_HEAP_WINDOWS', 20);
  const windowMs = num('BENCH_HEAP_WINDOW_MS', 1000);
  const session = new inspector.Session();
  session.connect();
  const post = <T>(method: string, params: object = {}) =>
    new Promise<T>((resolve, reject) => session.post(method, params, (err, r) => (err ? reject(err) : resolve(r as T))));
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());
  await post('HeapProfiler.enable');
  const bySite = new Map<string, number>();
  for (let i = 0; i < windows; i++) {
    await post('HeapProfiler.startSampling', { samplingInterval: 1024 });
    await sleep(windowMs);
    const { profile } = await post<{ profile: { head: ProfileNode } }>('HeapProfiler.stopSampling');
    addSites(profile.head, bySite);
    await sleep(200);
  }
  session.disconnect();
  const sites = [...bySite].map(([s, bytes]) => ({ site: s, bytes })).sort((a, b) => b.bytes - a.bytes);
  const report: SurvivorReport = { pid: process.pid, windows, windowMs, totalBytes: sites.reduce((a, s) => a + s.bytes, 0), sites };
  writeFileSync(join(outDir, `${process.pid}-survivors.json`), JSON.stringify(report));
}

if (dir) {
  setTimeout(() => {
    sample(dir).catch((err: unknown) => process.stderr.write(`survivor sampler: ${(err as Error).message}\n`));
  }, num('BENCH_HEAP_START_S', 20) * 1000).unref();
}
