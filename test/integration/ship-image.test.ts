/**
 * The image's production stages, replayed without Docker in a clean temp directory (Dockerfile: build ->
 * prod-deps -> runtime):
 *   build      tsc -p tsconfig.build.json on a copy of the sources (node_modules of the checkout stand in
 *              for the stage's `npm ci --ignore-scripts`: same lockfile)
 *   prod-deps  `npm ci --omit=dev --ignore-scripts` on package.json + package-lock.json alone
 *   runtime    dist + bin + package.json + those node_modules, owned by root and NOT writable by the user
 *              the process runs as (uid/gid 65532 via setpriv, HOME=/nonexistent): the read-only-root-fs case.
 * Then: `--help`s work, no dev dependency is installed, the controller reconciles a real LLMService on the test
 * control plane (the solver worker thread and HiGHS WASM load from the production tree), and SIGTERM to the
 * node process (PID 1 in the container) shuts it down cleanly and promptly, releasing its Lease.
 */
import { execFile, type ExecFileOptions } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyCrdsFromDir } from '../support/crds.js';
import { testEnv } from '../support/env.js';
import { httpGet } from '../support/http.js';
import { loadKubeConfig, makeClients } from '../support/kube.js';
import { uniqueName, useTestNamespace } from '../support/namespace.js';
import { applyCr, getService } from '../support/operator-fixtures.js';
import { tinyReplicas, tinyService } from '../support/operator-objects.js';
import { repoPath } from '../support/paths.js';
import { freePort } from '../support/ports.js';
import { startProcess, stopProcess, type ManagedProcess } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

const env = testEnv();
const RUNTIME_UID = 65532;
const setpriv = ['/usr/bin/setpriv', `--reuid=${RUNTIME_UID}`, `--regid=${RUNTIME_UID}`, '--clear-groups'];
const pkg = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { version: string; devDependencies: Record<string, string> };
type Lock = { packages: Record<string, { dev?: boolean; optional?: boolean; os?: string[]; cpu?: string[] }> };

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}
function run(cmd: string, args: string[], opts: ExecFileOptions & { timeout: number }): Promise<Run> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(cmd, args, { ...opts, encoding: 'utf8', maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr), ms: Date.now() - t0 });
    });
  });
}
/** As the image's user: uid/gid 65532, no home, a private TMPDIR (the chart's /tmp emptyDir). */
const runtimeEnv = (tmp: string): NodeJS.ProcessEnv => ({
  PATH: '/usr/local/bin:/usr/bin:/bin',
  HOME: '/nonexistent',
  TMPDIR: tmp,
  NODE_ENV: 'production',
  NO_PROXY: '127.0.0.1,localhost',
  no_proxy: '127.0.0.1,localhost',
});

describe('image: the production stages in a clean directory (no Docker)', () => {
  const ns = useTestNamespace('ship-image');
  let root: string;
  let app: string;
  let userTmp: string;
  const timings: Record<string, number> = {};
  const procs: ManagedProcess[] = [];
  let afterNpmCi: string[] = [];

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'melange-image-'));
    chmodSync(root, 0o755); // the runtime user must traverse it, never write it
    // build stage
    const build = join(root, 'build');
    mkdirSync(build);
    for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src', 'bin']) cpSync(repoPath(f), join(build, f), { recursive: true });
    symlinkSync(repoPath('node_modules'), join(build, 'node_modules'), 'dir');
    const tsc = await run(process.execPath, [join(build, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: build, timeout: 240_000 });
    timings.buildTscMs = tsc.ms;
    if (tsc.code !== 0) throw new Error(`build stage: tsc failed\n${tsc.stdout}${tsc.stderr}`);
    // prod-deps stage
    app = join(root, 'app');
    mkdirSync(app);
    for (const f of ['package.json', 'package-lock.json']) cpSync(repoPath(f), join(app, f));
    const npm = await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], {
      cwd: app,
      timeout: 240_000,
      env: { ...process.env, npm_config_update_notifier: 'false' },
    });
    timings.npmCiOmitDevMs = npm.ms;
    if (npm.code !== 0) throw new Error(`prod-deps stage: npm ci --omit=dev failed\n${npm.stdout}${npm.stderr}`);
    afterNpmCi = readdirSync(app).sort();
    // runtime stage
    cpSync(join(build, 'dist'), join(app, 'dist'), { recursive: true });
    cpSync(repoPath('bin'), join(app, 'bin'), { recursive: true });
    cpSync(repoPath('LICENSE'), join(app, 'LICENSE'));
    userTmp = join(root, 'tmp');
    mkdirSync(userTmp);
    chownSync(userTmp, RUNTIME_UID, RUNTIME_UID);
    rmSync(join(build, 'node_modules'));
    console.log(`[ship-image] build stage tsc ${(timings.buildTscMs / 1000).toFixed(1)} s, npm ci --omit=dev --ignore-scripts ${(timings.npmCiOmitDevMs / 1000).toFixed(1)} s`);
  });

  afterAll(async () => {
    for (const p of procs) await stopProcess(p.record, 5_000).catch(() => {});
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('npm ci --omit=dev --ignore-scripts ran no prepare script and installed exactly the production closure', () => {
    expect(afterNpmCi).toEqual(['node_modules', 'package-lock.json', 'package.json']); // no dist/: tsc did not run
    const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8')) as Lock;
    const missing: string[] = [];
    const devPresent: string[] = [];
    for (const [path, meta] of Object.entries(lock.packages)) {
      if (!path) continue;
      const here = existsSync(join(app, path));
      if (meta.dev && here) devPresent.push(path);
      const platformOk = (!meta.os || meta.os.includes(process.platform)) && (!meta.cpu || meta.cpu.includes(process.arch));
      if (!meta.dev && !meta.optional && platformOk && !here) missing.push(path);
    }
    expect(devPresent).toEqual([]);
    expect(missing).toEqual([]);
    // A devDependency may still be in the closure when a runtime dependency needs it too (client-node 1.4
    // depends on @types/node); the toolchain itself must be absent.
    for (const dev of Object.keys(pkg.devDependencies)) {
      const prodToo = lock.packages[`node_modules/${dev}`]?.dev !== true;
      expect(existsSync(join(app, 'node_modules', dev)), dev).toBe(prodToo);
    }
    for (const tool of ['typescript', 'tsx', 'vitest', 'fast-check', '.bin/tsc']) expect(existsSync(join(app, 'node_modules', tool)), tool).toBe(false);
  });

  it('as uid 65532 on a tree it cannot write: --help, controller --help, version and an offline plan succeed', async () => {
    const opts = { cwd: app, timeout: 60_000, env: runtimeEnv(userTmp) };
    const node = [...setpriv.slice(1), process.execPath, join(app, 'bin', 'melangectl.js')];
    const help = await run(setpriv[0]!, [...node, '--help'], opts);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/controller\s+run the operator/);
    const ctl = await run(setpriv[0]!, [...node, 'controller', '--help'], opts);
    expect(ctl.code, ctl.stderr).toBe(0);
    expect(ctl.stdout).toMatch(/^Usage: melangectl controller/);
    const ver = await run(setpriv[0]!, [...node, 'version'], opts);
    expect(ver.stdout.trim()).toBe(pkg.version);
    // The solver (HiGHS WASM from the production node_modules) works without any dev dependency.
    writeFileSync(join(userTmp, 'chat.yaml'), readFileSync(repoPath('examples', 'llmservice-chat.yaml')));
    const plan = await run(setpriv[0]!, [...node, 'plan', '-f', join(userTmp, 'chat.yaml'), '-o', 'json'], opts);
    expect(plan.code, plan.stderr).toBe(0);
    expect(JSON.parse(plan.stdout)).toHaveProperty('allocation');
    // Really unwritable for that user (the read-only root filesystem stand-in).
    const touch = await run(setpriv[0]!, [...setpriv.slice(1), '/usr/bin/touch', join(app, 'probe')], opts);
    expect(touch.code).not.toBe(0);
  });

  it('controller as uid 65532: reconciles on the test control plane, then exits 0 promptly on SIGTERM and releases its Lease', async () => {
    const kc = loadKubeConfig(env.kubeconfig);
    await applyCrdsFromDir(kc, repoPath('crds'));
    const suffix = uniqueName('img').slice(4);
    const tiny = tinyService('svc', suffix, 2);
    await applyCr(kc, tiny.pool);
    await applyCr(kc, tiny.profile, ns.name);
    await applyCr(kc, tiny.service, ns.name);
    // The admin kubeconfig, readable by the runtime user only.
    const kubeconfig = join(userTmp, 'kubeconfig');
    cpSync(env.kubeconfig, kubeconfig);
    chownSync(kubeconfig, RUNTIME_UID, RUNTIME_UID);
    chmodSync(kubeconfig, 0o600);
    const [health, metrics] = [await freePort(), await freePort()];
    const lease = `image-${suffix}`;
    const logFile = join(env.runDir, 'logs', `ship-image-controller-${suffix}.log`);
    const p = startProcess({
      name: 'ship-image-controller',
      command: setpriv[0]!,
      args: [
        ...setpriv.slice(1),
        process.execPath,
        join(app, 'bin', 'melangectl.js'),
        'controller',
        `--kubeconfig=${kubeconfig}`,
        `--namespace=${ns.name}`,
        `--watch-namespace=${ns.name}`,
        `--leader-election-id=${lease}`,
        `--health-addr=127.0.0.1:${health}`,
        `--metrics-addr=127.0.0.1:${metrics}`,
      ],
      logFile,
      cwd: app,
      env: runtimeEnv(userTmp),
    });
    procs.push(p);
    try {
      await waitFor(async () => (await httpGet(`http://127.0.0.1:${health}/readyz`)).status === 200, { what: 'controller /readyz', timeoutMs: 60_000, abortIf: () => p.assertRunning() });
      const svc = await waitFor(
        async () => {
          const s = await getService(kc, ns.name, 'svc');
          return s.status?.observedGeneration === 1 && s.status.allocation ? s : undefined;
        },
        { what: 'LLMService reconciled by the production build', timeoutMs: 90_000, intervalMs: 250, abortIf: () => p.assertRunning() },
      );
      expect(svc.status?.allocation?.[0]?.replicas).toBe(tinyReplicas(2));
      const { coordination, custom } = makeClients(kc);
      expect((await coordination.readNamespacedLease({ name: lease, namespace: ns.name })).spec?.holderIdentity).toMatch(/_/);

      // kubelet's stop: SIGTERM to the container's PID 1, which is node itself (setpriv exec'd it).
      const t0 = Date.now();
      process.kill(p.record.pid, 'SIGTERM');
      await waitFor(() => p.exit !== undefined, { what: 'controller exit after SIGTERM', timeoutMs: 15_000, intervalMs: 50 });
      const stopMs = Date.now() - t0;
      console.log(`[ship-image] controller exited ${JSON.stringify(p.exit)} ${stopMs} ms after SIGTERM`);
      expect(p.exit).toEqual({ code: 0, signal: null });
      expect(stopMs).toBeLessThan(10_000); // well inside the chart's 30 s terminationGracePeriodSeconds
      const logs = readFileSync(logFile, 'utf8');
      expect(logs).toContain('"msg":"released the leader lease"');
      expect(logs).toContain('"msg":"melange-operator stopped"');
      expect(logs).not.toMatch(/EACCES|EROFS|permission denied/i);
      expect((await coordination.readNamespacedLease({ name: lease, namespace: ns.name })).spec?.holderIdentity ?? '').toBe('');
      await custom.deleteClusterCustomObject({ group: 'melange.dev', version: 'v1alpha1', plural: 'gpupools', name: tiny.poolName }).catch(() => {});
    } finally {
      await stopProcess(p.record, 2_000).catch(() => {});
    }
  });

  it('SIGTERM before the API server was ever reached (unreachable kubeconfig) still exits 0 at once', async () => {
    const bad = join(userTmp, 'unreachable.kubeconfig');
    const port = await freePort(); // nothing listens there
    writeFileSync(
      bad,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'x', cluster: { server: `https://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'x', user: { token: 'not-a-real-token' } }],
        contexts: [{ name: 'x', context: { cluster: 'x', user: 'x' } }],
        'current-context': 'x',
      }),
    );
    chownSync(bad, RUNTIME_UID, RUNTIME_UID);
    const health = await freePort();
    const logFile = join(env.runDir, 'logs', `ship-image-unreachable-${Date.now().toString(36)}.log`);
    const p = startProcess({
      name: 'ship-image-unreachable',
      command: setpriv[0]!,
      args: [...setpriv.slice(1), process.execPath, join(app, 'bin', 'melangectl.js'), 'controller', `--kubeconfig=${bad}`, `--health-addr=127.0.0.1:${health}`, '--metrics-addr=0'],
      logFile,
      cwd: app,
      env: runtimeEnv(userTmp),
    });
    procs.push(p);
    try {
      // Alive (liveness 200) but not ready: the caches cannot sync.
      await waitFor(async () => (await httpGet(`http://127.0.0.1:${health}/healthz`)).status === 200, { what: '/healthz', timeoutMs: 30_000, abortIf: () => p.assertRunning() });
      expect((await httpGet(`http://127.0.0.1:${health}/readyz`)).status).toBe(503);
      const t0 = Date.now();
      process.kill(p.record.pid, 'SIGTERM');
      await waitFor(() => p.exit !== undefined, { what: 'exit after SIGTERM', timeoutMs: 10_000, intervalMs: 50 });
      console.log(`[ship-image] unsynced controller exited ${JSON.stringify(p.exit)} ${Date.now() - t0} ms after SIGTERM`);
      expect(p.exit).toEqual({ code: 0, signal: null });
      expect(Date.now() - t0).toBeLessThan(5_000);
    } finally {
      await stopProcess(p.record, 2_000).catch(() => {});
    }
  });
});
