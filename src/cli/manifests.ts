import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import {
  formatFieldErrors, validateManifest, type GPUPool, type GPUProfile, type LLMService, type MelangeResource,
} from '../api/index.js';

/** A user-facing input problem: one line each, `file: field: problem`. The CLI exits 2 on these. */
export class ManifestError extends Error {
  constructor(readonly lines: string[]) {
    super(lines.join('\n'));
  }
}

export interface ManifestSet {
  services: Array<{ file: string; value: LLMService }>;
  profiles: GPUProfile[];
  pools: GPUPool[];
}

/** Reads multi-document YAML (or JSON) files and validates every melange.dev object in them. */
export async function loadManifests(files: readonly string[]): Promise<ManifestSet> {
  const set: ManifestSet = { services: [], profiles: [], pools: [] };
  const problems: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      problems.push(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      continue;
    }
    const docs = parseAllDocuments(text);
    if (!Array.isArray(docs)) {
      problems.push(`${file}: not a YAML document stream`);
      continue;
    }
    docs.forEach((doc, i) => {
      const where = docs.length > 1 ? `${file} (document ${i + 1})` : file;
      if (doc.errors.length > 0) {
        problems.push(`${where}: invalid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
        return;
      }
      const obj: unknown = doc.toJS();
      if (obj === null || obj === undefined) return; // empty document between separators
      const v = validateManifest(obj);
      if (!v.ok) {
        problems.push(...formatFieldErrors(v.errors, where));
        return;
      }
      add(set, v.value, file);
    });
  }
  if (problems.length > 0) throw new ManifestError(problems);
  return set;
}

function add(set: ManifestSet, r: MelangeResource, file: string): void {
  if (r.kind === 'LLMService') set.services.push({ file, value: r });
  else if (r.kind === 'GPUProfile') set.profiles.push(r);
  else set.pools.push(r);
}
