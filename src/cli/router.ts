import cluster from 'node:cluster';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { mulberry32 } from '../common/random.js';
import { parseConfigText } from '../router/config.js';
import { DEFAULT_MAX_BODY_BYTES, DEFAULT_SHUTDOWN_GRACE_MS, RouterConfigError, startRouter } from '../router/server.js';
import { EXIT, UsageError, type Io } from './io.js';
import { isRouterWorker, runClusterPrimary, serveMetricsToPrimary } from './router-cluster.js';

export const MAX_ROUTER_WORKERS = 64;

export const ROUTER_USAGE = `Usage: melangectl router --config FILE [--port 8080] [--host 127.0.0.1] [--metrics-port P] [flags]

Runs the size-aware, OpenAI-compatible router (/v1/completions, /v1/chat/completions, /v1/models, /healthz,
/readyz, /metrics). Each request goes to a GPU pool by the solved split for its size bucket, then to the
least-loaded ready backend of that pool. The config file (JSON or YAML, see docs/router.md) is watched and
reloaded without a restart; an invalid new version is logged and the current one kept.
      --config FILE          router configuration (required)
      --host ADDR            listen address (default 127.0.0.1)
      --port N               listen port (default 8080; 0 picks a free one)
      --metrics-port N       serve /metrics on this port instead of the main one
      --metrics-host ADDR    listen address of the metrics port (default: --host)
      --max-body-bytes N     largest request body accepted (default ${DEFAULT_MAX_BODY_BYTES}); larger ones get 413
      --shutdown-grace-ms N  on SIGTERM/SIGINT, how long in-flight requests may finish (default ${DEFAULT_SHUTDOWN_GRACE_MS})
      --seed N               seed the RNG of routing.strategy=random (reproducible runs)
      --workers N|auto       run N router processes on the one port (default 1; auto = one per CPU); needs
                             --metrics-port, where the primary serves the workers' metrics summed
      --log-level LEVEL      pino level (default info)
Logs are JSON lines on stdout; the first one after start-up carries "url" (and "metricsUrl").
Sends SIGHUP to re-read the config file immediately.
Exit codes: 0 stopped cleanly, 2 bad arguments or configuration.`;

function intFlag(name: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name}: must be an integer in [${min}, ${max}], not "${v}"`);
  return n;
}

export interface RouterCommandDeps {
  /** Resolves when the process should shut down; default: the first SIGTERM or SIGINT. */
  untilSignal?: () => Promise<string>;
}

export async function routerCommand(argv: string[], io: Io, deps: RouterCommandDeps = {}): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8080' },
      'metrics-port': { type: 'string' },
      'metrics-host': { type: 'string' },
      'max-body-bytes': { type: 'string' },
      'shutdown-grace-ms': { type: 'string' },
      seed: { type: 'string' },
      workers: { type: 'string', default: '1' },
      'log-level': { type: 'string', default: 'info' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: true,
  });
  if (values.help) { io.out(ROUTER_USAGE); return EXIT.ok; }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (!values.config) throw new UsageError('--config FILE is required');
  const port = intFlag('port', values.port, 0, 65535) ?? 8080;
  const metricsPort = intFlag('metrics-port', values['metrics-port'], 0, 65535);
  const maxBodyBytes = intFlag('max-body-bytes', values['max-body-bytes'], 1, 1 << 30);
  const shutdownGraceMs = intFlag('shutdown-grace-ms', values['shutdown-grace-ms'], 0, 3_600_000);
  const seed = intFlag('seed', values.seed, 0, 2 ** 32 - 1);
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  const level = values['log-level'];
  if (!levels.includes(level)) throw new UsageError(`--log-level: must be one of ${levels.join(', ')}, not "${level}"`);

  const workers = values.workers === 'auto' ? Math.min(MAX_ROUTER_WORKERS, availableParallelism()) : intFlag('workers', values.workers, 1, MAX_ROUTER_WORKERS) ?? 1;
  const worker = isRouterWorker();
  if (workers > 1 && metricsPort === undefined) {
    throw new UsageError('--workers: more than one worker needs --metrics-port (the primary serves the workers\' metrics, summed, there)');
  }

  const logger = pino({ name: 'melange-router', level });
  if (workers > 1 && !worker) {
    // Refuse a bad config before forking: N workers failing the same way would only look like a crash loop.
    let text: string;
    try {
      text = await readFile(values.config, 'utf8');
    } catch (err) {
      io.err(`melangectl router: ${values.config}: ${(err as Error).message}`);
      return EXIT.usage;
    }
    const checked = parseConfigText(text);
    if (!checked.ok) {
      for (const line of checked.errors) io.err(`melangectl router: ${values.config}: ${line}`);
      return EXIT.usage;
    }
    return runClusterPrimary({
      workers,
      metricsHost: values['metrics-host'] ?? values.host,
      metricsPort: metricsPort!,
      shutdownGraceMs: shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS,
      logger,
      untilSignal: deps.untilSignal ?? untilTermination,
    });
  }
  let router;
  try {
    router = await startRouter({
      configFile: values.config,
      host: values.host,
      port,
      // A worker serves no metrics of its own: the primary owns the metrics port and asks the workers.
      ...(worker ? { serveMetrics: false } : {}),
      ...(metricsPort !== undefined && !worker ? { metricsPort } : {}),
      ...(values['metrics-host'] !== undefined && !worker ? { metricsHost: values['metrics-host'] } : {}),
      ...(maxBodyBytes !== undefined ? { maxBodyBytes } : {}),
      ...(shutdownGraceMs !== undefined ? { shutdownGraceMs } : {}),
      ...(seed !== undefined ? { rng: mulberry32(seed) } : {}),
      logger,
      defaultMetrics: true,
    });
  } catch (err) {
    if (err instanceof RouterConfigError) {
      for (const line of err.lines) io.err(`melangectl router: ${line}`);
      return EXIT.usage;
    }
    throw err;
  }
  if (worker) serveMetricsToPrimary(router.registry);
  logger.info({ url: router.url, ...(worker ? { worker: cluster.worker?.id } : { metricsUrl: router.metricsUrl }) }, 'router listening');

  const onHup = () => void router.reload();
  process.on('SIGHUP', onHup);
  const signal = await (deps.untilSignal ?? (worker ? untilPrimaryStops : untilTermination))();
  process.off('SIGHUP', onHup);
  logger.info({ signal }, 'shutting down');
  await router.close();
  // The IPC channel to the primary would keep the process alive.
  if (worker) cluster.worker?.disconnect();
  return EXIT.ok;
}

/**
 * A worker stops on the primary's SIGTERM only. SIGINT (Ctrl-C reaches the whole process group) is left to the
 * primary, which then sends SIGTERM; signals during the drain are ignored rather than killing it half-way.
 */
function untilPrimaryStops(): Promise<string> {
  return new Promise((resolve) => {
    const ignore = () => undefined;
    process.on('SIGINT', ignore);
    process.once('SIGTERM', () => {
      process.on('SIGTERM', ignore);
      resolve('SIGTERM');
    });
  });
}

function untilTermination(): Promise<string> {
  return new Promise((resolve) => {
    const done = (sig: string) => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      resolve(sig);
    };
    const onTerm = () => done('SIGTERM');
    const onInt = () => done('SIGINT');
    process.once('SIGTERM', onTerm);
    process.once('SIGINT', onInt);
  });
}
