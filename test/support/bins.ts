import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoPath } from './paths.js';

/**
 * The directory holding etcd, kube-apiserver, … built by hack/test-bins.sh: $MELANGE_TEST_BIN_DIR
 * (exported by hack/test.sh) or, failing that, what `hack/test-bins.sh --print` reports. Never
 * builds (a cold build takes 25-45 min): throws with instructions if the binaries are missing.
 */
export function locateBinDir(): string {
  const fromEnv = process.env.MELANGE_TEST_BIN_DIR;
  if (fromEnv) {
    if (!existsSync(join(fromEnv, '.complete'))) throw new Error(`MELANGE_TEST_BIN_DIR=${fromEnv} is not a complete test-bins directory`);
    return fromEnv;
  }
  try {
    return execFileSync('bash', [repoPath('hack', 'test-bins.sh'), '--print'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    const e = err as { stderr?: string };
    throw new Error(
      'the test control-plane binaries are not built yet: run `npm test` or `bash hack/test-bins.sh` (cold build 25-45 min), ' +
        `or set MELANGE_TEST_BIN_DIR${e.stderr ? `\n${e.stderr}` : ''}`,
    );
  }
}
