// Writes crds/*.yaml and the catalog-derived examples from src/api. `npm run gen:crds`.
// The generation itself lives in src/api/generate.ts so the drift test can run it in memory.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generatedFiles } from '../src/api/generate.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

for (const file of generatedFiles()) {
  const target = join(root, file.path);
  await mkdir(dirname(target), { recursive: true });
  await writeFile(target, file.content);
  console.log(`wrote ${relative(root, target)}`);
}
