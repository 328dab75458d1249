import { createRequire } from 'node:module';

// package.json sits two levels above both agent/version.ts and dist/agent/version.js.
const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };
export const AGENT_VERSION: string = pkg.version;
