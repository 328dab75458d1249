import { readFileSync } from 'node:fs';

/**
 * The package version. package.json sits two levels above dist/agent/version.js and one
 * above agent/version.ts (tests and tsx run the sources): take the first that is ours.
 */
function readVersion(): string {
  for (const rel of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'edge-agent' && pkg.version) return pkg.version;
    } catch {
      // Not there: try the next candidate.
    }
  }
  return '0.0.0-unknown';
}

export const AGENT_VERSION: string = readVersion();
