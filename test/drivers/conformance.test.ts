/**
 * Every driver in DRIVERS passes the conformance suite (test/helpers/driver-conformance.ts)
 * against its simulator fixture (sim-fixtures.ts). A new descriptor is covered as soon as it
 * is listed; without a fixture its "has a simulator fixture" test fails.
 */
import { describe, expect, it } from 'vitest';
import { DRIVERS } from '../../drivers/registry.js';
import { describeConformance } from '../helpers/driver-conformance.js';
import { SIM_FIXTURES } from './sim-fixtures.js';

describe.each(DRIVERS.map((d) => d.name))('driver %s on the simulator', (name) => {
  const fixture = SIM_FIXTURES[name];
  it('has a simulator fixture (test/drivers/sim-fixtures.ts)', () => {
    expect(fixture, `no simulator fixture for driver "${name}"`).toBeDefined();
  });
  if (fixture) describeConformance('conformance', { kind: name, ...fixture });
});
