/** Where the repository root is, from a bench module run as .ts (tsx) or compiled .js. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The nearest directory above `moduleUrl` holding package.json: the repository root whether
 * the module runs from bench/ or from the compiled tree under bench/out/dist/ (which has none).
 */
export function repoRoot(moduleUrl: string): string {
  let dir = path.dirname(fileURLToPath(moduleUrl));
  // A path has finitely many parents; the filesystem root is its own parent.
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(moduleUrl)}`);
    dir = parent;
  }
}
