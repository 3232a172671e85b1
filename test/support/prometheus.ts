/**
 * A real Prometheus (Debian package, /usr/bin/prometheus) started by the harness — never as a system
 * service — on 127.0.0.1:<free port>, scraping every 1 s, with its TSDB in the run dir.
 *
 * Targets come from file_sd: every `<fileSdDir>/*.json` file (refreshed every 1 s), so a test adds a
 * target by writing a file (`writeScrapeTargets`) and needs no restart or reload. Static targets can
 * be given at start; `--web.enable-lifecycle` allows `reloadPrometheus` after editing the config.
 */
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { z } from 'zod';
import { httpGet } from './http.js';
import { freePort } from './ports.js';
import { ComponentStartError, startProcess, stopProcess, type ProcessRecord } from './processes.js';
import { waitFor, WaitTimeoutError } from './wait.js';

export const PROMETHEUS_BINARY = '/usr/bin/prometheus';

export interface PrometheusOptions {
  runDir: string;
  binary?: string;
  /** Extra static scrape targets ("127.0.0.1:port"), grouped by job. */
  staticTargets?: { job: string; targets: string[] }[];
  scrapeIntervalSeconds?: number;
  timeoutMs?: number;
  /** Listen on this 127.0.0.1 port instead of a free one (e.g. to restart an instance on its old port). */
  port?: number;
}

export interface PrometheusInstance {
  /** http://127.0.0.1:<port> */
  url: string;
  configFile: string;
  fileSdDir: string;
  dataDir: string;
  process: ProcessRecord;
}

export interface TargetGroup {
  /** "127.0.0.1:<port>" — loopback only. */
  targets: string[];
  /** Target labels; `job` overrides the default job name `file-sd`. */
  labels?: Record<string, string>;
}

/** The generated prometheus.yml. */
export function prometheusConfig(fileSdDir: string, scrapeIntervalSeconds = 1, staticTargets: PrometheusOptions['staticTargets'] = []): string {
  const interval = `${scrapeIntervalSeconds}s`;
  return stringify({
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    scrape_configs: [
      {
        job_name: 'file-sd',
        scrape_interval: interval,
        file_sd_configs: [{ files: [join(fileSdDir, '*.json')], refresh_interval: '1s' }],
      },
      ...staticTargets.map((s) => ({ job_name: s.job, scrape_interval: interval, static_configs: [{ targets: s.targets }] })),
    ],
  });
}

export async function startPrometheus(opts: PrometheusOptions): Promise<PrometheusInstance> {
  const binary = opts.binary ?? PROMETHEUS_BINARY;
  if (!existsSync(binary)) throw new Error(`${binary} not found: run hack/setup-deps.sh (installs the Debian package prometheus)`);
  const dir = join(opts.runDir, 'prometheus');
  const fileSdDir = join(dir, 'file_sd');
  const dataDir = join(dir, 'data');
  const logs = join(opts.runDir, 'logs');
  await mkdir(fileSdDir, { recursive: true });
  await mkdir(dataDir, { recursive: true });
  await mkdir(logs, { recursive: true });
  const configFile = join(dir, 'prometheus.yml');
  await writeFile(configFile, prometheusConfig(fileSdDir, opts.scrapeIntervalSeconds ?? 1, opts.staticTargets));
  const port = opts.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const proc = startProcess({
    name: 'prometheus',
    command: binary,
    args: [
      `--config.file=${configFile}`,
      `--web.listen-address=127.0.0.1:${port}`,
      `--storage.tsdb.path=${dataDir}`,
      '--storage.tsdb.retention.time=1d',
      '--web.enable-lifecycle',
      '--log.level=warn',
    ],
    logFile: join(logs, 'prometheus.log'),
    cwd: dir,
  });
  try {
    await waitFor(async () => (await httpGet(`${url}/-/ready`)).status === 200, {
      what: 'prometheus /-/ready',
      timeoutMs: opts.timeoutMs ?? 60_000,
      intervalMs: 200,
      abortIf: () => proc.assertRunning(),
    });
  } catch (err) {
    await stopProcess(proc.record).catch(() => {});
    if (err instanceof WaitTimeoutError) throw new ComponentStartError('prometheus', err.message, proc.record.logFile);
    throw err;
  }
  return { url, configFile, fileSdDir, dataDir, process: proc.record };
}

const safeName = (name: string) => {
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`bad file_sd name: ${name}`);
  return name;
};

/**
 * Writes `<fileSdDir>/<name>.json` atomically (temp file + rename), replacing that file's targets.
 * Prometheus picks it up within ~1 s (refresh_interval 1s).
 */
export async function writeScrapeTargets(fileSdDir: string, name: string, groups: TargetGroup[]): Promise<string> {
  for (const g of groups) {
    for (const t of g.targets) if (!/^(127\.0\.0\.1|localhost):\d+$/.test(t)) throw new Error(`scrape target must be 127.0.0.1:<port>, got ${t}`);
  }
  const file = join(fileSdDir, `${safeName(name)}.json`);
  const tmp = join(fileSdDir, `.${safeName(name)}.json.tmp`);
  await writeFile(tmp, JSON.stringify(groups.map((g) => ({ targets: g.targets, labels: g.labels ?? {} })), null, 2));
  await rename(tmp, file);
  return file;
}

/** Removes `<fileSdDir>/<name>.json` (its targets disappear from Prometheus within ~1 s). */
export async function removeScrapeTargets(fileSdDir: string, name: string): Promise<void> {
  await rm(join(fileSdDir, `${safeName(name)}.json`), { force: true });
}

/** POST /-/reload (needs --web.enable-lifecycle, which the harness sets). */
export async function reloadPrometheus(url: string): Promise<void> {
  const r = await httpGet(`${url}/-/reload`, {}, 10_000, 'POST');
  if (r.status !== 200) throw new Error(`prometheus reload failed: ${r.status} ${r.body}`);
}

const VectorResponse = z.object({
  status: z.literal('success'),
  data: z.object({
    resultType: z.literal('vector'),
    result: z.array(z.object({ metric: z.record(z.string(), z.string()), value: z.tuple([z.number(), z.string()]) })),
  }),
});
export interface VectorSample {
  metric: Record<string, string>;
  timestamp: number;
  value: number;
}

/** Instant query via GET /api/v1/query; returns the vector samples. */
export async function queryInstant(url: string, promql: string): Promise<VectorSample[]> {
  const r = await httpGet(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
  if (r.status !== 200) throw new Error(`prometheus query ${promql} -> HTTP ${r.status}: ${r.body}`);
  const parsed = VectorResponse.parse(JSON.parse(r.body));
  return parsed.data.result.map((s) => ({ metric: s.metric, timestamp: s.value[0], value: Number(s.value[1]) }));
}

/** Polls an instant query until `accept` holds for its result (bounded). */
export async function waitForQuery(
  url: string,
  promql: string,
  accept: (samples: VectorSample[]) => boolean,
  timeoutMs = 30_000,
): Promise<VectorSample[]> {
  return waitFor(
    async () => {
      const s = await queryInstant(url, promql);
      return accept(s) ? s : undefined;
    },
    { what: `prometheus query ${promql}`, timeoutMs, intervalMs: 250 },
  );
}

const TargetsResponse = z.object({
  status: z.literal('success'),
  data: z.object({
    activeTargets: z.array(z.object({ scrapeUrl: z.string(), health: z.string(), labels: z.record(z.string(), z.string()), lastError: z.string().optional() })),
  }),
});

/** Active targets from GET /api/v1/targets. */
export async function activeTargets(url: string) {
  const r = await httpGet(`${url}/api/v1/targets?state=active`);
  if (r.status !== 200) throw new Error(`prometheus targets -> HTTP ${r.status}`);
  return TargetsResponse.parse(JSON.parse(r.body)).data.activeTargets;
}
