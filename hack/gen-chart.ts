// Writes the generated parts of charts/melange-operator (Chart.yaml, values.yaml, values.schema.json,
// templates/crds/*, templates/_rbac-rules.tpl). `npm run gen:chart`; run `npm run gen:crds` first when the
// schemas changed. The generation lives in src/chart/generate.ts so the drift test runs it in memory.
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHART_DIR, chartFiles } from '../src/chart/generate.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const files = chartFiles(root);

// A CRD removed from crds/ must disappear from the chart too.
const crdDir = join(root, CHART_DIR, 'templates', 'crds');
const wanted = new Set(files.map((f) => join(root, f.path)));
for (const f of await readdir(crdDir).catch(() => [] as string[])) {
  if (!wanted.has(join(crdDir, f))) {
    await rm(join(crdDir, f));
    console.log(`removed ${relative(root, join(crdDir, f))}`);
  }
}
for (const file of files) {
  const target = join(root, file.path);
  await mkdir(dirname(target), { recursive: true });
  await writeFile(target, file.content);
  console.log(`wrote ${relative(root, target)}`);
}
