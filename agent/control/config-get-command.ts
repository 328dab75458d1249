/**
 * `config/get`: the running configuration with every secret redacted (redact.ts), the
 * SHA-256 of the configuration file's bytes as they are on disk now, and the version of a
 * remotely set configuration (null when there is none).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { arglessCommand, type Command } from './command.js';
import type { AgentControl } from './agent-control.js';
import { redactSecrets } from './redact.js';

export interface ConfigAnswer {
  config: unknown;
  /** The file the agent read; null when its configuration came from the command line. */
  file: string | null;
  /** Hex SHA-256 of the file's bytes now; null without a file or when it cannot be read. */
  hash: string | null;
  version: number | null;
}

export function configGetCommand(agent: AgentControl): Command<Record<string, never>> {
  return arglessCommand(
    'config/get',
    'the running configuration, secrets redacted, with its file hash and version',
    async (): Promise<ConfigAnswer> => {
      const file = agent.configFile();
      return {
        config: redactSecrets(agent.config()),
        file: file ?? null,
        hash: file === undefined ? null : await fileHash(file),
        version: agent.configVersion(),
      };
    },
  );
}

async function fileHash(file: string): Promise<string | null> {
  try {
    return createHash('sha256')
      .update(await readFile(file))
      .digest('hex');
  } catch {
    return null;
  }
}
