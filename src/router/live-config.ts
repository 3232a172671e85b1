/**
 * The configuration in force: its initial load, hot reloads (the watched file or applyConfig), the snapshot
 * each request routes by, and the backend sources of its pools.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { LatencyModel } from '../api/latency.js';
import { BackendRegistry } from './backends.js';
import { diffConfig, parseConfigText, validateConfig, type ConfigDiff, type ConfigResult, type PoolConfig, type RouterConfig } from './config.js';
import { ConfigFileWatcher } from './config-watch.js';
import type { BackendSource, SourceFactory } from './discovery.js';
import type { BackendLoadSample, RouterMetrics } from './metrics.js';
import { OutputLengthEstimator } from './output-estimate.js';
import { poolLatencyModels } from './slo-guard.js';
import { normaliseWeights, RandomPicker, resolveSplitTable, SmoothPicker, type PoolPicker, type ResolvedWeights } from './weights.js';

export class RouterConfigError extends Error {
  constructor(readonly lines: string[]) {
    super(`invalid router configuration:\n  ${lines.join('\n  ')}`);
  }
}

/** What one configuration routes by; a request uses one snapshot throughout. */
export interface Snapshot {
  config: RouterConfig;
  table: (ResolvedWeights | undefined)[][];
  /** Pools' latency models, for routing.sloGuard. */
  models: Map<string, LatencyModel>;
}

interface PoolSource {
  key: string;
  source: BackendSource;
}

export interface LiveConfigOptions {
  /** Config file (JSON or YAML), watched and hot-reloaded. Exactly one of configFile and config. */
  configFile?: string;
  /** In-memory config; change it later with applyConfig(). */
  config?: unknown;
  /** Fallback poll interval of the config file watcher (ms); default 2000. */
  configPollMs?: number;
  /** How long a (re)load waits for new backend sources to sync before going on without them; default 10000. */
  discoveryStartTimeoutMs?: number;
  sourceFactory: SourceFactory;
  /** Uniform [0, 1) draws for routing.strategy=random. */
  rng: () => number;
  log: Logger;
  metrics: RouterMetrics;
}

export class LiveConfig {
  /** Every pool's backends, as its source lists them. */
  readonly backends = new BackendRegistry();
  private readonly sources = new Map<string, PoolSource>();
  private readonly log: Logger;
  private readonly metrics: RouterMetrics;
  private current: Snapshot | undefined;
  private outputEstimator: OutputLengthEstimator | undefined;
  private poolPicker: PoolPicker | undefined;
  private watcher: ConfigFileWatcher | undefined;
  private applying: Promise<unknown> = Promise.resolve();
  private reloadCounts = { success: 0, error: 0 };

  constructor(private readonly o: LiveConfigOptions) {
    this.log = o.log;
    this.metrics = o.metrics;
    this.metrics.setBackendLoadReader(() => this.loadSamples());
  }

  private *loadSamples(): Generator<BackendLoadSample> {
    const { namespace, service } = this.svcLabels();
    for (const b of this.backends.withInflight()) {
      yield { labels: { namespace, service, pool: b.pool, backend: b.label }, inflight: b.inflight, pendingPrefillTokens: b.pendingPrefillTokens };
    }
  }

  /** The snapshot in force; set once load() has resolved. */
  get snapshot(): Snapshot | undefined {
    return this.current;
  }

  /** Output-length estimates per input range; kept (resized) across reloads. */
  get estimator(): OutputLengthEstimator | undefined {
    return this.outputEstimator;
  }

  /** The split's pool picker; reset where a reload changes the split. */
  get picker(): PoolPicker | undefined {
    return this.poolPicker;
  }

  /** Loads the initial configuration (throws RouterConfigError if invalid), waits for its sources, starts watching the file. */
  async load(): Promise<void> {
    if ((this.o.configFile === undefined) === (this.o.config === undefined)) throw new Error('startRouter: pass exactly one of configFile and config');
    let initial: ConfigResult;
    let text: string | undefined;
    if (this.o.configFile !== undefined) {
      try {
        text = await readFile(this.o.configFile, 'utf8');
      } catch (err) {
        throw new RouterConfigError([`${this.o.configFile}: ${(err as Error).message}`]);
      }
      initial = parseConfigText(text);
      if (!initial.ok) throw new RouterConfigError(initial.errors.map((e) => `${this.o.configFile}: ${e}`));
    } else {
      initial = validateConfig(this.o.config);
      if (!initial.ok) throw new RouterConfigError(initial.errors);
    }
    await this.apply(initial.config, 'initial');
    if (this.o.configFile !== undefined) {
      const file = this.o.configFile;
      this.watcher = new ConfigFileWatcher(file, {
        onChange: (t) => void this.applyText(t, file),
        onReadError: (err) => {
          this.countReload('error');
          this.log.error({ file, err: err.message }, 'cannot read the router configuration; keeping the current one');
        },
        pollMs: this.o.configPollMs ?? 2000,
      });
      if (text !== undefined) this.watcher.seed(text);
      this.watcher.start();
    }
  }

  /** Validates and applies a new configuration (as a file reload would). */
  applyConfig(raw: unknown): Promise<ConfigResult> {
    const r = validateConfig(raw);
    if (!r.ok) {
      this.countReload('error');
      this.log.error({ errors: r.errors }, 'invalid router configuration; keeping the current one');
      return Promise.resolve(r);
    }
    return this.apply(r.config, 'api').then(() => r);
  }

  /** Re-reads the config file now (no-op without one) and waits for pending applies. */
  async reload(): Promise<void> {
    await this.watcher?.check();
    await this.applying;
  }

  /** Counts of successful and failed configuration loads since start. */
  reloads(): { success: number; error: number } {
    return { ...this.reloadCounts };
  }

  /** A configuration is loaded and every pool's source has synced once. */
  synced(): boolean {
    return this.current !== undefined && [...this.sources.values()].every((s) => s.source.synced);
  }

  /** The namespace/service metric labels of the configuration in force. */
  svcLabels() {
    const c = this.current?.config.service;
    return { namespace: c?.namespace ?? '', service: c?.name ?? '' };
  }

  stopWatching(): void {
    this.watcher?.stop();
  }

  async stopSources(): Promise<void> {
    await Promise.all([...this.sources.values()].map((s) => s.source.stop().catch(() => undefined)));
    this.sources.clear();
  }

  private countReload(result: 'success' | 'error'): void {
    this.reloadCounts[result]++;
    this.metrics.configReloads.inc({ result });
  }

  private applyText(text: string, file: string): Promise<ConfigResult> {
    const r = parseConfigText(text);
    if (!r.ok) {
      this.countReload('error');
      this.log.error({ file, errors: r.errors }, 'invalid router configuration; keeping the current one');
      return Promise.resolve(r);
    }
    return this.apply(r.config, file).then(() => r);
  }

  /** Applies a valid configuration; serialised so that reloads never interleave. */
  private apply(config: RouterConfig, origin: string): Promise<void> {
    const run = this.applying.then(() => this.applyNow(config, origin));
    this.applying = run.catch(() => undefined);
    return run;
  }

  private async applyNow(config: RouterConfig, origin: string): Promise<void> {
    const prev = this.current?.config;
    const diff: ConfigDiff | undefined = prev ? diffConfig(prev, config) : undefined;
    const nIn = config.buckets.inputEdges.length;
    const nOut = config.buckets.outputEdges.length;
    const routing = config.routing;

    if (!this.poolPicker || !prev || prev.routing.strategy !== routing.strategy) {
      this.poolPicker = routing.strategy === 'random' ? new RandomPicker(this.o.rng) : new SmoothPicker();
    } else if (diff && (diff.inputEdgesChanged || diff.outputEdgesChanged)) this.poolPicker.reset();
    else if (diff) this.poolPicker.reset(diff.splitChanged);

    this.outputEstimator = this.outputEstimator
      ? this.outputEstimator.resized(nIn, routing.defaultOutputTokens, routing.outputMeanWindow, !diff?.inputEdgesChanged)
      : new OutputLengthEstimator(nIn, routing.defaultOutputTokens, routing.outputMeanWindow);

    this.current = { config, table: resolveSplitTable(config.split, nIn, nOut), models: poolLatencyModels(config.pools) };
    if (diff?.serviceChanged) this.metrics.backends.reset();
    this.publishSplit(config);

    // Backend sources: stop removed pools, (re)start new or changed ones.
    const wanted = new Map(config.pools.map((p) => [p.name, p]));
    for (const [name, ps] of [...this.sources]) {
      const p = wanted.get(name);
      if (!p || sourceKey(p) !== ps.key) {
        this.sources.delete(name);
        await ps.source.stop().catch(() => undefined);
        if (!p) this.onPoolBackends(name, undefined);
      }
    }
    const starts: Promise<void>[] = [];
    for (const p of config.pools) {
      if (this.sources.has(p.name)) continue;
      const source = this.o.sourceFactory(p);
      const ps: PoolSource = { key: sourceKey(p), source };
      this.sources.set(p.name, ps);
      starts.push(
        source.start((urls) => {
          if (this.sources.get(p.name) === ps) this.onPoolBackends(p.name, urls);
        }),
      );
    }
    // A source that cannot sync (API server unreachable) keeps retrying in the background; the router
    // serves what it has meanwhile and /readyz says not ready.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(starts),
      new Promise<void>((r) => {
        timer = setTimeout(r, this.o.discoveryStartTimeoutMs ?? 10_000);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    if (diff?.serviceChanged) {
      // The backends gauge was reset above: publish it again under the new service labels.
      const labels = this.svcLabels();
      for (const [pool, bs] of this.backends.byPool()) this.metrics.backends.set({ ...labels, pool }, bs.length);
    }
    this.countReload('success');
    this.log.info(
      {
        origin,
        service: `${config.service.namespace}/${config.service.name}`,
        pools: config.pools.map((p) => p.name),
        splitEntries: config.split.length,
        ...(diff ? { changed: summariseDiff(diff) } : {}),
      },
      diff ? 'router configuration reloaded' : 'router configuration loaded',
    );
  }

  private publishSplit(config: RouterConfig): void {
    const g = this.metrics.splitWeight;
    g.reset();
    const { namespace, name: service } = config.service;
    for (const s of config.split) {
      const w = normaliseWeights(s.weights);
      const input_le = config.buckets.inputEdges[s.input];
      const output_le = config.buckets.outputEdges[s.output];
      if (input_le === undefined || output_le === undefined) continue;
      for (const [pool, share] of w) g.set({ namespace, service, input_le: String(input_le), output_le: String(output_le), pool }, share);
    }
  }

  private onPoolBackends(pool: string, urls: string[] | undefined): void {
    const removed = urls === undefined ? this.backends.removePool(pool) : this.backends.setPool(pool, urls);
    const labels = this.svcLabels();
    if (urls === undefined) this.metrics.backends.remove({ ...labels, pool });
    else this.metrics.backends.set({ ...labels, pool }, urls.length);
    this.log.info({ pool, backends: urls?.length ?? 0, removed: removed.length }, 'backends updated');
  }
}

function sourceKey(p: PoolConfig): string {
  return JSON.stringify({ backends: p.backends ?? null, discovery: p.discovery ?? null, dns: p.dns ?? null });
}

function summariseDiff(d: ConfigDiff): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (d.unchanged) return { unchanged: true };
  if (d.serviceChanged) out.service = true;
  if (d.inputEdgesChanged || d.outputEdgesChanged) out.buckets = true;
  if (d.splitChanged.length) out.splitBuckets = d.splitChanged.length;
  if (d.poolsAdded.length) out.poolsAdded = d.poolsAdded;
  if (d.poolsRemoved.length) out.poolsRemoved = d.poolsRemoved;
  if (d.poolSourceChanged.length) out.poolSourceChanged = d.poolSourceChanged;
  if (d.gpuTypeChanged.length) out.gpuTypeChanged = d.gpuTypeChanged;
  if (d.latencyChanged.length) out.latencyChanged = d.latencyChanged;
  if (d.routingChanged) out.routing = true;
  return out;
}
