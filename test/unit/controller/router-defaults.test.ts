// The router defaults (src/controller/router-defaults.ts): the file schema and its errors, the precedence
// spec.router.* > flags > file > built-ins, the production router Deployment built from them
// (src/controller/router.ts), `melangectl controller --router-defaults`, and deploy/ + the chart agreeing
// with the operator's built-ins.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { ROUTER_USAGE } from '../../../src/cli/router.js';
import { defaultValues } from '../../../src/chart/values.js';
import { APPLIED_HASH_ANNOTATION } from '../../../src/controller/constants.js';
import {
  BUILTIN_ROUTER_DEFAULTS,
  ROUTER_LOG_LEVELS,
  RouterDefaultsError,
  loadRouterDefaultsFile,
  parseRouterDefaults,
  resolveRouterDefaults,
  routerDefaults,
  validateRouterDefaults,
} from '../../../src/controller/router-defaults.js';
import { ROUTER_SETTINGS_HASH_ANNOTATION, buildRouterDeployment, routerImage, routerTerminationGraceSeconds } from '../../../src/controller/router.js';
import { DEFAULT_MAX_BODY_BYTES, DEFAULT_SHUTDOWN_GRACE_MS } from '../../../src/router/server.js';
import { readYamlDocuments } from '../../support/crds.js';
import { repoPath } from '../../support/paths.js';
import { service } from './fixtures.js';

type Obj = Record<string, any>;

const tmp = mkdtempSync(join(tmpdir(), 'melange-router-defaults-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const f = join(tmp, name);
  writeFileSync(f, text);
  return f;
};
const errorsOf = (text: string) => {
  const r = parseRouterDefaults(text);
  if (r.ok) throw new Error('expected errors');
  return r.errors;
};

describe('router defaults file: schema', () => {
  it('an empty file (or none) gives the built-ins, which match the router CLI defaults', () => {
    for (const text of ['', '{}', '# nothing\n']) {
      const r = parseRouterDefaults(text);
      expect(r.ok && r.defaults).toEqual({ ...BUILTIN_ROUTER_DEFAULTS, imagePullSecrets: [] });
    }
    expect(routerDefaults().image).toBeUndefined();
    expect(BUILTIN_ROUTER_DEFAULTS.maxBodyBytes).toBe(DEFAULT_MAX_BODY_BYTES);
    expect(BUILTIN_ROUTER_DEFAULTS.shutdownGraceMs).toBe(DEFAULT_SHUTDOWN_GRACE_MS);
  });

  it('logLevel takes exactly the levels `melangectl router --log-level` accepts', async () => {
    const err: string[] = [];
    expect(await main(['router', '--config', join(tmp, 'unused.yaml'), '--log-level', 'loud'], { out: () => {}, err: (t) => err.push(t) })).toBe(2);
    expect(err.join('\n')).toContain(`must be one of ${ROUTER_LOG_LEVELS.join(', ')},`);
  });

  it('accepts every field the chart renders', () => {
    const r = parseRouterDefaults(`
image: "reg.example/melange:1.2.3@sha256:${'a'.repeat(64)}"
imagePullPolicy: Always
replicas: 3
port: 8000
metricsPort: 9100
logLevel: debug
maxBodyBytes: 1048576
shutdownGraceMs: 60000
preStopSleepSeconds: 0
workers: 4
resources:
  requests: {cpu: 500m, memory: 256Mi}
  limits: {cpu: 2, memory: 1Gi}
serviceAccountName: melange-router
imagePullSecrets:
  - name: regcred
`);
    expect(r.ok, JSON.stringify(r)).toBe(true);
    if (!r.ok) return;
    expect(r.defaults).toMatchObject({ imagePullPolicy: 'Always', replicas: 3, port: 8000, metricsPort: 9100, logLevel: 'debug', maxBodyBytes: 1048576, shutdownGraceMs: 60000, preStopSleepSeconds: 0 });
    expect(r.defaults.resources).toEqual({ requests: { cpu: '500m', memory: '256Mi' }, limits: { cpu: 2, memory: '1Gi' } });
    expect(r.defaults.imagePullSecrets).toEqual([{ name: 'regcred' }]);
  });

  it.each([
    ['imagePullPolcy: Always', /^imagePullPolcy: unknown field$/],
    ['resources: {requests: {cpu: lots}}', /^resources\.requests\.cpu: not a Kubernetes quantity/],
    ['resources: {requests: {cpu: 1}, limit: {}}', /^resources\.limit: unknown field$/],
    ['port: 70000', /^port: /],
    ['port: 9090', /^metricsPort: must differ from port \(9090\)$/],
    ['logLevel: loud', /^logLevel: /],
    ['maxBodyBytes: "16Mi"', /^maxBodyBytes: /],
    ['shutdownGraceMs: -1', /^shutdownGraceMs: /],
    ['replicas: 1.5', /^replicas: /],
    ['image: "a b"', /^image: must not contain whitespace$/],
    ['image: ""', /^image: /],
    ['serviceAccountName: Not_A_Name', /^serviceAccountName: /],
    ['imagePullSecrets: [{name: x, namespace: y}]', /^imagePullSecrets\[0\]\.namespace: unknown field$/],
    ['- image: x', /^\(root\): must be a mapping/],
    ['image: [unclosed', /^not valid YAML: /],
  ])('%s → an error naming the field', (text, message) => {
    const errors = errorsOf(text);
    expect(errors.some((e) => message.test(e)), errors.join('\n')).toBe(true);
  });

  it('reports every problem at once', () => {
    expect(errorsOf('port: 0\nlogLevel: loud\nbogus: 1')).toHaveLength(3);
  });

  it('loadRouterDefaultsFile names the file, the field and the reason', () => {
    const bad = file('bad.yaml', 'replicas: many\n');
    expect(() => loadRouterDefaultsFile(bad)).toThrow(RouterDefaultsError);
    try {
      loadRouterDefaultsFile(bad);
    } catch (err) {
      expect((err as RouterDefaultsError).file).toBe(bad);
      expect((err as Error).message).toMatch(new RegExp(`^${bad}: replicas: `));
    }
    expect(() => loadRouterDefaultsFile(join(tmp, 'missing.yaml'))).toThrow(/missing\.yaml: cannot read: ENOENT/);
    expect(loadRouterDefaultsFile(file('ok.yaml', 'image: img:1\nreplicas: 4\n'))).toMatchObject({ image: 'img:1', replicas: 4, port: 8080 });
  });
});

describe('precedence: spec.router.* > flags > file > built-ins', () => {
  const fromFile = routerDefaults({ image: 'file:1', logLevel: 'warn', replicas: 5 });

  it('--router-image overrides the file image; every other field comes from the file, else the built-ins', () => {
    expect(resolveRouterDefaults({ file: fromFile, routerImage: 'flag:2' })).toMatchObject({ image: 'flag:2', logLevel: 'warn', replicas: 5, port: 8080 });
    expect(resolveRouterDefaults({ file: fromFile }).image).toBe('file:1');
    expect(resolveRouterDefaults({ routerImage: 'flag:2' })).toEqual({ ...routerDefaults(), image: 'flag:2' });
    expect(resolveRouterDefaults().image).toBeUndefined();
    expect(() => resolveRouterDefaults({ routerImage: 'a b' })).toThrow(/^--router-image: must not contain whitespace$/);
  });

  it('spec.router.image and spec.router.replicas win over the defaults', () => {
    const own = service({ spec: { router: { image: 'spec:3', replicas: 1 } } });
    const plain = service();
    expect(routerImage(own, fromFile)).toBe('spec:3');
    expect(routerImage(plain, fromFile)).toBe('file:1');
    expect(routerImage(plain, routerDefaults())).toBeUndefined();
    const d = buildRouterDeployment(own, fromFile);
    expect(d.spec.template.spec.containers).toMatchObject([{ image: 'spec:3', args: expect.arrayContaining(['--log-level', 'warn']) }]);
    expect(d.spec.replicas).toBe(1);
    // The CRD (and the schema) default spec.router.replicas to 2: it always wins over the file's 5.
    expect(buildRouterDeployment(plain, fromFile).spec.replicas).toBe(2);
  });
});

describe('buildRouterDeployment: a production Deployment', () => {
  const svc = service();
  const d = buildRouterDeployment(svc, routerDefaults({ image: 'img:1' }));
  const pod = d.spec.template.spec as Obj;
  const c = pod.containers[0] as Obj;

  it('runs `melangectl router` from the image layout, with every setting as a flag the router CLI accepts', () => {
    expect(c.image).toBe('img:1');
    expect(c.imagePullPolicy).toBe('IfNotPresent');
    expect(c.command).toEqual(['node', '--max-semi-space-size=4', '/app/bin/melangectl.js', 'router']);
    expect(c.args).toEqual([
      '--config',
      '/etc/melange-router/config.yaml',
      '--host',
      '0.0.0.0',
      '--port',
      '8080',
      '--metrics-port',
      '9090',
      '--log-level',
      'info',
      '--max-body-bytes',
      String(16 * 1024 * 1024),
      '--shutdown-grace-ms',
      '30000',
    ]);
    for (const flag of (c.args as string[]).filter((a) => a.startsWith('--'))) expect(ROUTER_USAGE, flag).toContain(`${flag} `);
  });

  it('--workers only when more than one (a one-process router keeps its args and settings hash), and the CLI takes it', async () => {
    expect(c.args as string[]).not.toContain('--workers');
    const multi = ((buildRouterDeployment(svc, routerDefaults({ image: 'img:1', workers: 3 })).spec.template.spec as Obj).containers[0]) as { args: string[] };
    expect(multi.args.slice(-2)).toEqual(['--workers', '3']);
    expect(ROUTER_USAGE).toContain('--workers ');
    expect(parseRouterDefaults('workers: 0').ok).toBe(false);
    const r = parseRouterDefaults('workers: 0');
    if (!r.ok) expect(r.errors.join('\n')).toMatch(/workers/);
  });

  it('node runs with the young-generation size of maxSemiSpaceSizeMiB (none: Node\'s default), a flag node accepts', () => {
    const nodeFlags = (cmd: unknown) => (cmd as string[]).slice(1, (cmd as string[]).indexOf('/app/bin/melangectl.js'));
    expect(nodeFlags(c.command)).toEqual(['--max-semi-space-size=4']);
    const at = (n: number) => ((buildRouterDeployment(svc, routerDefaults({ image: 'img:1', maxSemiSpaceSizeMiB: n })).spec.template.spec as Obj).containers[0] as Obj).command;
    expect(nodeFlags(at(0))).toEqual([]);
    expect(nodeFlags(at(8))).toEqual(['--max-semi-space-size=8']);
    // The real node takes the flag (an unknown one would stop the pod at start-up).
    const r = spawnSync(process.execPath, [...nodeFlags(c.command), '-e', 'process.stdout.write(JSON.stringify(process.execArgv))'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toContain('--max-semi-space-size=4');
    for (const bad of ['maxSemiSpaceSizeMiB: -1', 'maxSemiSpaceSizeMiB: 300', 'maxSemiSpaceSizeMiB: 1.5']) {
      const p = parseRouterDefaults(bad);
      expect(p.ok, bad).toBe(false);
      if (!p.ok) expect(p.errors.join('\n')).toMatch(/maxSemiSpaceSizeMiB/);
    }
  });

  it('the router CLI parses those args (it only fails on the missing config file, before listening)', async () => {
    const missing = join(tmp, 'no-router-config.yaml');
    const args = (c.args as string[]).map((a) => (a === '/etc/melange-router/config.yaml' ? missing : a === '0.0.0.0' ? '127.0.0.1' : a));
    const err: string[] = [];
    const command = c.command as string[];
    expect(await main([...command.slice(command.indexOf('/app/bin/melangectl.js') + 1), ...args], { out: () => {}, err: (t) => err.push(t) })).toBe(2);
    expect(err.join('\n')).toContain('no-router-config.yaml');
    expect(err.join('\n')).not.toMatch(/Unknown option|must be/);
    expect(c.ports).toEqual([
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { name: 'metrics', containerPort: 9090, protocol: 'TCP' },
    ]);
  });

  it('probes the router: readiness on /readyz, liveness on /healthz, both on the http port', () => {
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(c.livenessProbe.initialDelaySeconds).toBeGreaterThan(0);
  });

  it('is hardened like the operator: non-root 65532, read-only root fs, no capabilities, seccomp RuntimeDefault', () => {
    expect(pod.securityContext).toEqual({ runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } });
    expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(c.volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' });
    expect(c.volumeMounts).toContainEqual({ name: 'config', mountPath: '/etc/melange-router', readOnly: true });
    expect(pod.volumes).toContainEqual({ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } });
  });

  it('resources, graceful shutdown (preStop sleep + drain < terminationGracePeriodSeconds), spread over nodes', () => {
    expect(c.resources).toEqual({ requests: { cpu: '250m', memory: '128Mi' }, limits: { memory: '512Mi' } });
    expect(c.lifecycle).toEqual({ preStop: { sleep: { seconds: 5 } } });
    expect(pod.terminationGracePeriodSeconds).toBe(40);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(5 + 30);
    for (const [sleep, ms] of [[0, 0], [0, 1], [5, 30_000], [10, 120_001]] as const) {
      expect(routerTerminationGraceSeconds({ preStopSleepSeconds: sleep, shutdownGraceMs: ms })).toBeGreaterThanOrEqual(sleep + ms / 1000 + 1);
    }
    const noSleep = buildRouterDeployment(svc, routerDefaults({ image: 'img:1', preStopSleepSeconds: 0, shutdownGraceMs: 90_500 }));
    expect((noSleep.spec.template.spec.containers as Obj[])[0]!.lifecycle).toBeUndefined();
    expect(noSleep.spec.template.spec.terminationGracePeriodSeconds).toBe(91 + 5);
    expect(pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm).toEqual({
      topologyKey: 'kubernetes.io/hostname',
      labelSelector: { matchLabels: d.spec.selector.matchLabels },
    });
  });

  it('the ServiceAccount and pull secrets only when configured; no API token unless a ServiceAccount is named', () => {
    expect(pod.serviceAccountName).toBeUndefined();
    expect(pod.imagePullSecrets).toBeUndefined();
    // The operator's router config discovers backends by DNS: the pods need no API access.
    expect(pod.automountServiceAccountToken).toBe(false);
    const withSa = buildRouterDeployment(svc, routerDefaults({ image: 'img:1', serviceAccountName: 'melange-router', imagePullSecrets: [{ name: 'regcred' }] }));
    expect(withSa.spec.template.spec).toMatchObject({ serviceAccountName: 'melange-router', imagePullSecrets: [{ name: 'regcred' }] });
    // A named ServiceAccount keeps its token (e.g. for EndpointSlice discovery in a hand-written config).
    expect(withSa.spec.template.spec.automountServiceAccountToken).toBeUndefined();
  });

  it('the settings hash on the pod template: a defaults change rolls the pods, replicas and identical settings do not', () => {
    const hash = (x: typeof d) => (x.spec.template.metadata.annotations as Record<string, string>)[ROUTER_SETTINGS_HASH_ANNOTATION];
    expect(hash(d)).toMatch(/^[0-9a-f]{16}$/);
    expect(buildRouterDeployment(svc, routerDefaults({ image: 'img:1' }))).toEqual(d); // pure, deterministic
    const changes = [{ image: 'img:2' }, { workers: 2 }, { logLevel: 'debug' as const }, { resources: { requests: { cpu: '1' } } }, { maxBodyBytes: 2048 }, { imagePullPolicy: 'Always' as const }];
    for (const over of changes) {
      const other = buildRouterDeployment(svc, routerDefaults({ image: 'img:1', ...over }));
      expect(hash(other), JSON.stringify(over)).not.toBe(hash(d));
      expect(other.metadata.annotations[APPLIED_HASH_ANNOTATION]).not.toBe(d.metadata.annotations[APPLIED_HASH_ANNOTATION]);
    }
    const scaled = buildRouterDeployment(service({ spec: { router: { replicas: 7 } } }), routerDefaults({ image: 'img:1' }));
    expect(scaled.spec.replicas).toBe(7);
    expect(hash(scaled)).toBe(hash(d)); // scaling is not a roll
  });

  it('without an image from anywhere it refuses (the reconciler checks routerImage first)', () => {
    expect(() => buildRouterDeployment(svc)).toThrow(/no image/);
    expect(buildRouterDeployment(service({ spec: { router: { image: 'spec:1' } } })).spec.template.spec.containers).toMatchObject([{ image: 'spec:1' }]);
  });
});

describe('melangectl controller --router-defaults', () => {
  const capture = () => {
    const err: string[] = [];
    return { io: { out: () => {}, err: (t: string) => err.push(t) }, err };
  };

  it.each([
    ['a bad field', () => ['--router-defaults', file('bad-cli.yaml', 'logLevel: loud\n')], /^melangectl controller: --router-defaults \S+bad-cli\.yaml: logLevel: /],
    ['an unknown field', () => ['--router-defaults', file('typo-cli.yaml', 'replica: 2\n')], /--router-defaults \S+typo-cli\.yaml: replica: unknown field/],
    ['a missing file', () => ['--router-defaults', join(tmp, 'nope.yaml')], /--router-defaults \S+nope\.yaml: cannot read: ENOENT/],
    ['a bad --router-image', () => ['--router-image', 'a b'], /--router-image: must not contain whitespace/],
  ])('%s: exit 2 with one line naming file, field and reason, before touching any cluster', async (_what, args, message) => {
    const c = capture();
    expect(await main(['controller', '--kubeconfig', join(tmp, 'no-kubeconfig'), ...args()], c.io)).toBe(2);
    expect(c.err).toHaveLength(1);
    expect(c.err[0]).toMatch(message);
  });

  it('is in the usage', async () => {
    const out: string[] = [];
    expect(await main(['controller', '--help'], { out: (t) => out.push(t), err: () => {} })).toBe(0);
    expect(out.join('\n')).toMatch(/--router-defaults FILE/);
    expect(out.join('\n')).toMatch(/--router-image IMAGE/);
  });
});

describe('deploy/ and the chart ship the same defaults as the operator', () => {
  it('deploy/20-operator.yaml: a valid router-defaults ConfigMap, mounted and passed with --router-defaults; its image is the operator image', async () => {
    const docs = (await readYamlDocuments(repoPath('deploy', '20-operator.yaml'))) as Obj[];
    const cm = docs.find((x) => x.kind === 'ConfigMap')!;
    expect(cm.metadata).toMatchObject({ name: 'melange-operator-router-defaults', namespace: 'melange-system' });
    const r = parseRouterDefaults(cm.data['router-defaults.yaml']);
    if (!r.ok) throw new Error(r.errors.join('; '));
    const dep = docs.find((x) => x.kind === 'Deployment')!;
    const pod = dep.spec.template.spec;
    const op = pod.containers[0];
    expect(r.defaults).toEqual({ ...routerDefaults(), image: op.image });
    expect(op.args).toContain('--router-defaults=/etc/melange/router-defaults.yaml');
    expect(op.volumeMounts).toContainEqual({ name: 'router-defaults', mountPath: '/etc/melange', readOnly: true });
    expect(pod.volumes).toContainEqual({ name: 'router-defaults', configMap: { name: cm.metadata.name } });
  });

  it("the chart's values.router defaults are the operator's built-ins", () => {
    const { image, ...rest } = defaultValues().router;
    expect(image).toEqual({ repository: '', tag: '', digest: '', pullPolicy: BUILTIN_ROUTER_DEFAULTS.imagePullPolicy });
    const { imagePullPolicy: _p, ...builtins } = routerDefaults();
    expect(rest).toEqual(builtins);
    expect(validateRouterDefaults({ ...rest, imagePullPolicy: image.pullPolicy, image: 'x:1' }).ok).toBe(true);
  });
});
