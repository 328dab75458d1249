/** The `sparkplug` config section: defaults, required group, Sparkplug topic tokens. */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../agent/config/load.js';
import { configProblems as problems } from './problems.js';

describe('sparkplug config', () => {
  it('is off by default, and the edge node id defaults to the gateway id (left unset)', () => {
    const cfg = validateConfig({ gateway: { id: 'gw' } });
    expect(cfg.sparkplug).toEqual({ enabled: false });
    const on = validateConfig({
      gateway: { id: 'gw' },
      sparkplug: { enabled: true, groupId: 'Plant-1' },
    });
    expect(on.sparkplug).toEqual({ enabled: true, groupId: 'Plant-1' });
  });

  it('needs a group id when enabled', () => {
    expect(problems({ gateway: { id: 'gw' }, sparkplug: { enabled: true } })).toEqual([
      'sparkplug.groupId: is required when sparkplug.enabled is true',
    ]);
    expect(problems({ gateway: { id: 'gw' }, sparkplug: { groupId: 'plant' } })).toEqual([]);
  });

  it('refuses ids that are not Sparkplug topic tokens, naming the field and the value', () => {
    for (const [field, value] of [
      ['groupId', 'a/b'],
      ['edgeNodeId', 'node+1'],
      ['primaryHostId', 'scada#'],
      ['groupId', 'two words'],
    ] as const) {
      const found = problems({
        gateway: { id: 'gw' },
        sparkplug: { enabled: true, groupId: 'plant', [field]: value },
      });
      expect(found).toHaveLength(1);
      expect(found[0]).toMatch(
        new RegExp(`^sparkplug\\.${field}: .*must not contain / \\+ # or blanks`),
      );
      expect(found[0]).toContain(JSON.stringify(value));
    }
    expect(problems({ gateway: { id: 'gw' }, sparkplug: { groupId: '' } })[0]).toMatch(
      /^sparkplug\.groupId: .*must not be empty/,
    );
    // Tokens are wider than gateway ids: dots and UTF-8 are fine in Sparkplug.
    expect(
      problems({
        gateway: { id: 'gw' },
        sparkplug: {
          enabled: true,
          groupId: 'Werk.Süd',
          edgeNodeId: 'Linie:3',
          primaryHostId: 'ignition-1',
        },
      }),
    ).toEqual([]);
  });
});
