/**
 * The `config/set` command: arguments are a SignedConfig envelope (agent/fleet/signed-config.ts),
 * checked by RemoteConfig itself so that a missing or malformed signature is refused with the
 * reason and recorded as `rejected`, like every other refusal. The answer comes after the
 * probation: `{status: 'applied' | 'rolled-back', version, hash, applied, reason}`.
 */
import { z } from 'zod';
import type { Command } from '../control/command.js';
import type { RemoteConfig } from './remote-config.js';

export function configSetCommand(remote: RemoteConfig): Command<unknown> {
  return {
    name: 'config/set',
    summary:
      'apply a whole config signed with a trusted key; answers applied or rolled-back after the probation',
    args: z.unknown(),
    run: (envelope) => remote.set(envelope),
  };
}
