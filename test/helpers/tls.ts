/**
 * Throw-away PKI for TLS tests, made with the openssl CLI: a CA and a server certificate
 * for localhost / 127.0.0.1 signed by it, plus an unrelated CA the server does not use.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestPki {
  caFile: string;
  certFile: string;
  keyFile: string;
  /** A CA that did not sign the server certificate. */
  otherCaFile: string;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function selfSignedCa(dir: string, name: string): { key: string; cert: string } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  openssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
  ]);
  return { key, cert };
}

export function makeTestPki(dir: string): TestPki {
  const ca = selfSignedCa(dir, 'edge-test-ca');
  const other = selfSignedCa(dir, 'edge-other-ca');
  const keyFile = join(dir, 'server.key');
  const csr = join(dir, 'server.csr');
  const certFile = join(dir, 'server.pem');
  const ext = join(dir, 'server.ext');
  writeFileSync(ext, 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    csr,
    '-subj',
    '/CN=localhost',
  ]);
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-CAcreateserial',
    '-out',
    certFile,
    '-days',
    '2',
    '-extfile',
    ext,
  ]);
  return { caFile: ca.cert, certFile, keyFile, otherCaFile: other.cert };
}
