/**
 * What the integration global setup provides to tests, read with vitest's `inject` (falling back
 * to the environment variables it also sets, for code running outside a vitest worker).
 */
import { inject } from 'vitest';
import type { Profile } from './control-plane.js';

export interface TestEnv {
  profile: Profile;
  /** Admin (system:masters) client-cert kubeconfig, server https://127.0.0.1:<port>. */
  kubeconfig: string;
  apiUrl: string;
  /** http://127.0.0.1:<port> */
  prometheusUrl: string;
  /** Write <name>.json target lists here (see prometheus.ts `writeScrapeTargets`). */
  fileSdDir: string;
  /** etcd, kube-apiserver, kubectl, helm, kwok… */
  binDir: string;
  /** Directory of this run's logs, PKI and data. */
  runDir: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    melangeTestEnv: TestEnv;
  }
}

const ENV_KEYS = {
  profile: 'MELANGE_TEST_PROFILE',
  kubeconfig: 'KUBECONFIG',
  apiUrl: 'MELANGE_TEST_API_URL',
  prometheusUrl: 'PROMETHEUS_URL',
  fileSdDir: 'MELANGE_TEST_FILE_SD_DIR',
  binDir: 'MELANGE_TEST_BIN_DIR',
  runDir: 'MELANGE_TEST_RUN_DIR',
} as const satisfies Record<keyof TestEnv, string>;

/** The environment variables equivalent to a TestEnv (set by the global setup, too). */
export function testEnvVars(env: TestEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(ENV_KEYS)) out[v] = env[k as keyof TestEnv];
  return out;
}

/** The test cluster of this run (integration project only). */
export function testEnv(): TestEnv {
  let provided: TestEnv | undefined;
  try {
    provided = inject('melangeTestEnv');
  } catch {
    provided = undefined;
  }
  if (provided) return provided;
  const get = (k: keyof TestEnv) => {
    const v = process.env[ENV_KEYS[k]];
    if (!v) throw new Error(`no test cluster: ${ENV_KEYS[k]} is not set (run through the integration project's global setup)`);
    return v;
  };
  const profile = get('profile');
  return {
    profile: profile === 'api' ? 'api' : 'full',
    kubeconfig: get('kubeconfig'),
    apiUrl: get('apiUrl'),
    prometheusUrl: get('prometheusUrl'),
    fileSdDir: get('fileSdDir'),
    binDir: get('binDir'),
    runDir: get('runDir'),
  };
}
