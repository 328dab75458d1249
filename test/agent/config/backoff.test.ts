import { describe, expect, it } from 'vitest';
import { ConfigError, validateConfig } from '../../../agent/config/load.js';

const sensor = { id: 't', driver: 'tmp102' };

function problems(input: unknown): string {
  try {
    validateConfig(input, 'test');
    return '';
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
}

describe('backoff ceiling in the config', () => {
  it('defaults sampling.backoffMaxMs to 30 s and takes a per-sensor override', () => {
    const config = validateConfig(
      {
        gateway: { id: 'gw' },
        sensors: [sensor, { ...sensor, id: 'u', address: 0x49, backoffMaxMs: 5000 }],
      },
      'test',
    );
    expect(config.sampling.backoffMaxMs).toBe(30_000);
    expect(config.sensors.map((s) => s.backoffMaxMs)).toEqual([undefined, 5000]);
  });

  it('bounds it to 250 ms .. 1 h, naming the field', () => {
    expect(
      problems({ gateway: { id: 'gw' }, sampling: { backoffMaxMs: 100 }, sensors: [] }),
    ).toMatch(/sampling\.backoffMaxMs/);
    expect(
      problems({ gateway: { id: 'gw' }, sensors: [{ ...sensor, backoffMaxMs: 4e9 }] }),
    ).toMatch(/sensors\[0\]\.backoffMaxMs/);
    expect(problems({ gateway: { id: 'gw' }, sampling: { backoffMaxMs: 3_600_000 } })).toBe('');
  });
});
