import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** Repository root (two levels above test/support). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const repoPath = (...parts: string[]) => join(REPO_ROOT, ...parts);
/** Default state file of a cluster started by `npm run cluster:up`. */
export const DEFAULT_STATE_FILE = repoPath('.run', 'cluster.json');
