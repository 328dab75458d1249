/**
 * `edge-agent keygen [--out DIR] [--name NAME]`: an operator's Ed25519 key pair for signing
 * remote configs (docs/remote-config.md): NAME.key (PKCS#8 PEM, 0600, stays with the operator)
 * and NAME.pem (SPKI PEM, goes to each gateway's trusted keys directory). Never overwrites.
 */
import { generateKeyPairSync } from 'node:crypto';
import { closeSync, constants, fchmodSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { keyIdOf } from '../fleet/signed-config.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  stringOption,
  UsageError,
  type CommandOutput,
  type OptionValues,
} from './common.js';

const DEFAULT_NAME = 'edge-agent-operator';
const DEFAULT_TRUSTED_KEYS_DIR = '/etc/edge-agent/trusted-keys';

/** Creates `path` with `text`, failing if it exists; mode set whatever the umask. */
function createFile(path: string, text: string, mode: number): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    fchmodSync(fd, mode);
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

export function keygenCommand(values: OptionValues, output: CommandOutput): number {
  const dir = resolve(stringOption(values, 'out') ?? '.');
  const name = stringOption(values, 'name') ?? DEFAULT_NAME;
  if (!/^[A-Za-z0-9_.-]+$/.test(name) || name.startsWith('.')) {
    throw new UsageError(
      `--name: letters, digits, '.', '_' and '-' only, got ${JSON.stringify(name)}`,
    );
  }
  const privatePath = join(dir, `${name}.key`);
  const publicPath = join(dir, `${name}.pem`);
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  try {
    createFile(privatePath, privatePem, 0o600);
  } catch (err) {
    output.stderr(`edge-agent keygen: cannot create ${privatePath}: ${reason(err)}\n`);
    return EXIT_FAILURE;
  }
  try {
    createFile(publicPath, publicPem, 0o644);
  } catch (err) {
    unlinkSync(privatePath);
    output.stderr(`edge-agent keygen: cannot create ${publicPath}: ${reason(err)}\n`);
    return EXIT_FAILURE;
  }
  output.stdout(
    [
      `key id:      ${keyIdOf(publicKey)}`,
      `private key: ${privatePath} (mode 0600; keep it off the gateways, it signs configs)`,
      `public key:  ${publicPath}`,
      '',
      'On each gateway, put the public key in the trusted keys directory (fleet.remoteConfig.trustedKeysDir), owned by root and writable by root only:',
      `  sudo install -D -o root -g root -m 0644 ${publicPath} ${DEFAULT_TRUSTED_KEYS_DIR}/${name}.pem`,
      '',
    ].join('\n'),
  );
  return EXIT_OK;
}

function reason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EEXIST')
    return 'the file exists (keygen never overwrites a key; choose another --name or --out)';
  if (code === 'ENOENT') return 'no such directory';
  if (code === 'EACCES') return 'permission denied';
  return code ?? String(err);
}
