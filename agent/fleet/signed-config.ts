/**
 * A whole config document signed with an operator's Ed25519 key, for one gateway or one fleet
 * group, with a version that only rises. The signature covers an unambiguous encoding of
 * (target, version, document) — see signedBytes — so no field can be moved into another,
 * and a document signed for one gateway or group is refused by every other. Verification
 * trusts only the keys it is given (the gateway's trusted-keys directory), never a key that
 * travels with the envelope: keyId only says which trusted key to try.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { z } from 'zod';

export type ConfigTarget = { gateway: string } | { group: string };

export interface SignedConfig {
  target: ConfigTarget;
  /** Positive integer; a gateway accepts only a version above the highest it has seen. */
  version: number;
  /** The YAML or JSON text of the whole config file. */
  document: string;
  /** First 16 hex digits of the sha256 of the signing key's public SPKI DER. */
  keyId: string;
  /** Base64 Ed25519 signature over signedBytes(target, version, document). */
  signature: string;
}

/** The envelope as it arrives from the network; a config file is at most this long. */
export const MAX_DOCUMENT_BYTES = 256 * 1024;
const ID = /^[A-Za-z0-9_-]+$/;

export const signedConfigSchema: z.ZodType<SignedConfig> = z
  .object({
    target: z.union([
      z.object({ gateway: z.string().regex(ID, 'letters, digits, _ and - only') }).strict(),
      z.object({ group: z.string().regex(ID, 'letters, digits, _ and - only') }).strict(),
    ]),
    version: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
    document: z.string().refine((d) => Buffer.byteLength(d, 'utf8') <= MAX_DOCUMENT_BYTES, {
      message: `at most ${MAX_DOCUMENT_BYTES} bytes`,
    }),
    keyId: z.string().regex(/^[0-9a-f]{16}$/, '16 lower-case hex digits'),
    signature: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, 'base64 of a 64-byte Ed25519 signature'),
  })
  .strict();

export interface TrustedKey {
  keyId: string;
  key: KeyObject;
  /** Where the key came from (a file name), for messages. */
  source: string;
}

/** First 16 hex digits of sha256(SPKI DER) of an Ed25519 public key. */
export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex').slice(0, 16);
}

/** Parses one PEM public key; throws a message naming `source` unless it is Ed25519. */
export function trustedKeyFromPem(pem: string, source: string): TrustedKey {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new Error(`${source}: not a PEM public key`);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new Error(`${source}: an ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
  }
  return { keyId: keyIdOf(key), key, source };
}

function field(tag: string, value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([Buffer.from(tag, 'ascii'), length, bytes]);
}

/**
 * The bytes a signature covers: a fixed domain string, then each field as a one-letter tag,
 * a 4-byte big-endian length and its UTF-8 bytes — target kind, target id, version (decimal),
 * document. Length prefixes make the encoding injective; the domain string keeps a signature
 * made for anything else from ever verifying here.
 */
export function signedBytes(target: ConfigTarget, version: number, document: string): Buffer {
  const [kind, id] = 'gateway' in target ? ['gateway', target.gateway] : ['group', target.group];
  return Buffer.concat([
    Buffer.from('edge-agent/signed-config/1\n', 'ascii'),
    field('k', kind),
    field('t', id),
    field('v', String(version)),
    field('d', document),
  ]);
}

export function signConfig(
  target: ConfigTarget,
  version: number,
  document: string,
  privateKeyPem: string,
): SignedConfig {
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new Error(`version must be a positive integer, got ${version}`);
  }
  const privateKey = createPrivateKey(privateKeyPem);
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new Error(`the signing key is ${privateKey.asymmetricKeyType ?? 'unknown'}, not Ed25519`);
  }
  const signature = sign(null, signedBytes(target, version, document), privateKey);
  return {
    target,
    version,
    document,
    keyId: keyIdOf(createPublicKey(privateKey)),
    signature: signature.toString('base64'),
  };
}

export type RefusalCode = 'malformed' | 'unknown-key' | 'bad-signature' | 'wrong-target' | 'replay';

export type Verdict = { ok: true } | { ok: false; code: RefusalCode; reason: string };

export interface ConfigSelf {
  gateway: string;
  group?: string | undefined;
}

/**
 * Checks, in this order: shape, a trusted key with that keyId, the signature, the target
 * (this gateway's id or its group), the version (above `currentVersion`, the highest seen).
 * The signature is checked before anything signed is believed.
 */
export function verifySignedConfig(
  envelope: unknown,
  trustedKeys: readonly TrustedKey[],
  self: ConfigSelf,
  currentVersion: number,
): Verdict {
  const parsed = signedConfigSchema.safeParse(envelope);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.join('.') : 'envelope';
    return { ok: false, code: 'malformed', reason: `${where}: ${issue?.message ?? 'malformed'}` };
  }
  const { target, version, document, keyId, signature } = parsed.data;
  const trusted = trustedKeys.filter((k) => k.keyId === keyId);
  if (trusted.length === 0) {
    return { ok: false, code: 'unknown-key', reason: `key ${keyId} is not a trusted key here` };
  }
  const bytes = signedBytes(target, version, document);
  const signatureBytes = Buffer.from(signature, 'base64');
  if (!trusted.some((k) => verify(null, bytes, k.key, signatureBytes))) {
    return {
      ok: false,
      code: 'bad-signature',
      reason: `the signature does not verify with key ${keyId}`,
    };
  }
  if ('gateway' in target && target.gateway !== self.gateway) {
    return {
      ok: false,
      code: 'wrong-target',
      reason: `signed for gateway ${target.gateway}, this is ${self.gateway}`,
    };
  }
  if ('group' in target && target.group !== self.group) {
    const mine =
      self.group === undefined ? 'this gateway is in no group' : `this gateway is in ${self.group}`;
    return { ok: false, code: 'wrong-target', reason: `signed for group ${target.group}, ${mine}` };
  }
  if (version <= currentVersion) {
    return {
      ok: false,
      code: 'replay',
      reason: `version ${version} is not above ${currentVersion}, the highest seen here`,
    };
  }
  return { ok: true };
}
