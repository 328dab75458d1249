import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  signConfig,
  signedBytes,
  trustedKeyFromPem,
  verifySignedConfig,
} from '../../../agent/fleet/signed-config.js';
import type { SignedConfig, TrustedKey } from '../../../agent/fleet/signed-config.js';

function keyPair(): { privatePem: string; trusted: TrustedKey } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    trusted: trustedKeyFromPem(publicPem, 'operator.pem'),
  };
}

const operator = keyPair();
const stranger = keyPair();
const self = { gateway: 'gw-1', group: 'boilers' };
const document = 'gateway: gw-1\nmqtt:\n  url: mqtt://127.0.0.1:1883\nsensors: []\n';

function signed(over: Partial<SignedConfig> = {}): SignedConfig {
  return { ...signConfig({ gateway: 'gw-1' }, 5, document, operator.privatePem), ...over };
}

describe('signed config', () => {
  it('verifies a config signed by a trusted key for this gateway', () => {
    expect(verifySignedConfig(signed(), [operator.trusted], self, 4)).toEqual({ ok: true });
  });

  it('refuses a tampered document, version or target', () => {
    const tampered = signed({ document: document.replace('1883', '1884') });
    expect(verifySignedConfig(tampered, [operator.trusted], self, 0)).toMatchObject({
      ok: false,
      code: 'bad-signature',
    });
    const bumped = signed({ version: 6 });
    expect(verifySignedConfig(bumped, [operator.trusted], self, 0)).toMatchObject({
      ok: false,
      code: 'bad-signature',
    });
    // The same signature moved from a gateway target to a group of the same name.
    const moved = signed({ target: { group: 'gw-1' } });
    expect(
      verifySignedConfig(moved, [operator.trusted], { gateway: 'x', group: 'gw-1' }, 0),
    ).toMatchObject({ ok: false, code: 'bad-signature' });
  });

  it('refuses a signature by another key claiming a trusted keyId', () => {
    const forged = signConfig({ gateway: 'gw-1' }, 5, document, stranger.privatePem);
    const claimed = { ...forged, keyId: operator.trusted.keyId };
    expect(verifySignedConfig(claimed, [operator.trusted], self, 0)).toMatchObject({
      ok: false,
      code: 'bad-signature',
    });
  });

  it('refuses a key that is not trusted here', () => {
    const foreign = signConfig({ gateway: 'gw-1' }, 5, document, stranger.privatePem);
    const verdict = verifySignedConfig(foreign, [operator.trusted], self, 0);
    expect(verdict).toMatchObject({ ok: false, code: 'unknown-key' });
    expect(!verdict.ok && verdict.reason).toContain(stranger.trusted.keyId);
    expect(verifySignedConfig(foreign, [operator.trusted, stranger.trusted], self, 0)).toEqual({
      ok: true,
    });
  });

  it("refuses another gateway's config and another group's", () => {
    const other = signConfig({ gateway: 'gw-2' }, 5, document, operator.privatePem);
    expect(verifySignedConfig(other, [operator.trusted], self, 0)).toMatchObject({
      ok: false,
      code: 'wrong-target',
      reason: 'signed for gateway gw-2, this is gw-1',
    });
    const chillers = signConfig({ group: 'chillers' }, 5, document, operator.privatePem);
    expect(verifySignedConfig(chillers, [operator.trusted], self, 0)).toMatchObject({
      ok: false,
      code: 'wrong-target',
    });
    expect(verifySignedConfig(chillers, [operator.trusted], { gateway: 'gw-1' }, 0)).toMatchObject({
      ok: false,
      reason: 'signed for group chillers, this gateway is in no group',
    });
  });

  it("accepts a config signed for this gateway's group", () => {
    const boilers = signConfig({ group: 'boilers' }, 9, document, operator.privatePem);
    expect(verifySignedConfig(boilers, [operator.trusted], self, 8)).toEqual({ ok: true });
  });

  it('refuses a version that is not above the highest seen (replay)', () => {
    expect(verifySignedConfig(signed(), [operator.trusted], self, 5)).toMatchObject({
      ok: false,
      code: 'replay',
      reason: 'version 5 is not above 5, the highest seen here',
    });
    expect(verifySignedConfig(signed(), [operator.trusted], self, 7)).toMatchObject({
      ok: false,
      code: 'replay',
    });
  });

  it('refuses a malformed envelope, naming the field', () => {
    expect(
      verifySignedConfig({ ...signed(), signature: undefined }, [operator.trusted], self, 0),
    ).toMatchObject({
      ok: false,
      code: 'malformed',
      reason: expect.stringMatching(/^signature: /),
    });
    expect(
      verifySignedConfig({ ...signed(), version: 0 }, [operator.trusted], self, 0),
    ).toMatchObject({ ok: false, code: 'malformed', reason: expect.stringMatching(/^version: /) });
    expect(verifySignedConfig('nope', [operator.trusted], self, 0)).toMatchObject({
      ok: false,
      code: 'malformed',
    });
    expect(
      verifySignedConfig({ ...signed(), extra: 1 }, [operator.trusted], self, 0),
    ).toMatchObject({ ok: false, code: 'malformed' });
  });

  it('encodes fields so that none can be shifted into another', () => {
    const a = signedBytes({ gateway: 'ab' }, 1, 'c');
    const b = signedBytes({ gateway: 'a' }, 1, 'bc');
    expect(a.equals(b)).toBe(false);
    expect(
      signedBytes({ gateway: 'x' }, 12, 'd').equals(signedBytes({ gateway: 'x' }, 1, '2d')),
    ).toBe(false);
  });

  it('rejects a key that is not Ed25519', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => trustedKeyFromPem(pem, 'ec.pem')).toThrow('ec.pem: an ec key, not Ed25519');
    expect(() => trustedKeyFromPem('garbage', 'bad.pem')).toThrow('bad.pem: not a PEM public key');
    expect(() => signConfig({ gateway: 'g' }, 0, 'd', operator.privatePem)).toThrow(/positive/);
  });
});
