/**
 * The local stand-ins of the loop test (test/integration/loop-*.test.ts): `melangectl emulate` and
 * `melangectl router` processes on 127.0.0.1, and a ConfigMap → router-config-file sync that replaces each
 * pool's DNS discovery with the static URLs of local emulators of that GPU type (kubelet and
 * EndpointSlices cannot exist here). Everything binds 127.0.0.1 on a free port; nothing dials cluster IPs.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { KubeConfig } from '@kubernetes/client-node';
import { parse as parseYaml, stringify } from 'yaml';
import { validateConfig } from '../../src/router/config.js';
import { makeClients } from './kube.js';
import { REPO_ROOT, repoPath } from './paths.js';
import { freePort } from './ports.js';
import { startProcess, stopProcess, type ManagedProcess } from './processes.js';
import { waitFor } from './wait.js';

export interface CliProcess {
  proc: ManagedProcess;
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** `melangectl <args>` from the TypeScript sources, in its own process group. */
function startCli(name: string, args: string[], logDir: string): ManagedProcess {
  const entry = join(logDir, `${name}-entry.mjs`);
  writeFileSync(
    entry,
    `import { main } from ${JSON.stringify(pathToFileURL(repoPath('src', 'cli', 'main.ts')).href)};\n` +
      'main(process.argv.slice(2)).then((c) => { process.exitCode = c; }, (e) => { console.error(e); process.exitCode = 1; });\n',
  );
  return startProcess({
    name,
    command: process.execPath,
    args: ['--import', 'tsx', entry, ...args],
    logFile: join(logDir, `${name}.log`),
    cwd: REPO_ROOT,
    env: { ...process.env, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' },
  });
}

async function waitHttp(url: string, proc: ManagedProcess, what: string): Promise<void> {
  await waitFor(
    async () => {
      proc.assertRunning();
      try {
        const r = await fetch(url, { signal: AbortSignal.timeout(1_000) });
        await r.arrayBuffer();
        return r.status < 500 ? true : undefined;
      } catch {
        return undefined;
      }
    },
    { what, timeoutMs: 30_000 },
  );
}

export async function startEmulator(name: string, gpu: string, logDir: string): Promise<CliProcess> {
  const port = await freePort();
  const proc = startCli(name, ['emulate', '--gpu', gpu, '--host', '127.0.0.1', '--port', String(port), '--log-level', 'warn'], logDir);
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/v1/models`, proc, `emulator ${name}`);
  return { proc, url, port, stop: () => stopProcess(proc.record) };
}

export async function startRouter(name: string, configFile: string, logDir: string): Promise<CliProcess & { metricsPort: number }> {
  const port = await freePort();
  const metricsPort = await freePort();
  const proc = startCli(name, ['router', '--config', configFile, '--host', '127.0.0.1', '--port', String(port), '--metrics-port', String(metricsPort), '--log-level', 'warn'], logDir);
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`http://127.0.0.1:${metricsPort}/metrics`, proc, `router ${name}`);
  return { proc, url, port, metricsPort, stop: () => stopProcess(proc.record) };
}

/**
 * The router config of ConfigMap text with each pool's discovery (dns) replaced by static backends
 * (`backendsByGpuType[pool.gpuType]`). Throws if the operator's config or the result is invalid.
 */
export function localRouterConfig(configMapText: string, backendsByGpuType: Readonly<Record<string, string[]>>): string {
  const v = validateConfig(parseYaml(configMapText));
  if (!v.ok) throw new Error(`operator's router config is invalid: ${v.errors.join('; ')}`);
  const pools = v.config.pools.map((p) => ({ name: p.name, gpuType: p.gpuType, backends: backendsByGpuType[p.gpuType] ?? [] }));
  const local = { ...v.config, pools };
  const check = validateConfig(local);
  if (!check.ok) throw new Error(`local router config is invalid: ${check.errors.join('; ')}`);
  return stringify(local);
}

/** Polls the ConfigMap and rewrites `file` (atomically) when its content changes; returns a stop function. */
export function syncRouterConfig(kc: KubeConfig, namespace: string, name: string, file: string, backendsByGpuType: Readonly<Record<string, string[]>>, onChange?: (text: string) => void): { stop: () => void; first: Promise<void> } {
  const { core } = makeClients(kc);
  let last = '';
  let stopped = false;
  let resolveFirst: () => void = () => {};
  const first = new Promise<void>((r) => (resolveFirst = r));
  const tick = async () => {
    if (stopped) return;
    try {
      const cm = await core.readNamespacedConfigMap({ name, namespace });
      const text = cm.data?.['config.yaml'];
      if (text && text !== last) {
        const out = localRouterConfig(text, backendsByGpuType);
        writeFileSync(`${file}.tmp`, out);
        renameSync(`${file}.tmp`, file);
        last = text;
        onChange?.(text);
        resolveFirst();
      }
    } catch {
      /* not there yet */
    }
    if (!stopped) timer = setTimeout(() => void tick(), 500);
  };
  let timer = setTimeout(() => void tick(), 0);
  return {
    first,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
