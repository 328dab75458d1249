/**
 * Pi in the loop: the driver conformance suite against REAL hardware, opt-in. Set
 * EDGE_AGENT_HW_CONFIG to an agent config file; every enabled sensor in it is opened on its
 * real bus / port / device / URL through the agent's hardware seams and must pass the suite
 * (fault injection excepted: real devices cannot be made to fail on demand). Without the
 * variable the suite is skipped, saying why. See test/helpers/README.md.
 */
import { describe, it } from 'vitest';
import { loadConfigFile } from '../../agent/config/load.js';
import { createDriver, type SensorConfig } from '../../drivers/registry.js';
import { hardwareSeams } from '../../drivers/seams.js';
import { nullLogger } from '../../drivers/types.js';
import { describeConformance } from '../helpers/driver-conformance.js';

const configFile = process.env.EDGE_AGENT_HW_CONFIG;

/** The sensors to run the suite on; a config that does not load fails here, naming why. */
function sensorsOf(file: string): SensorConfig[] {
  return loadConfigFile(file).sensors.filter((s) => s.enabled);
}

if (!configFile) {
  const reason =
    'conformance on real hardware skipped: EDGE_AGENT_HW_CONFIG is not set ' +
    '(EDGE_AGENT_HW_CONFIG=/path/config.yaml runs the driver suite on every sensor in it)';
  console.log(reason);
  describe('driver conformance on real hardware', () => {
    it.skip(reason, () => undefined);
  });
} else {
  const sensors = sensorsOf(configFile);
  describe(`driver conformance on real hardware (${configFile})`, () => {
    it.skipIf(sensors.length > 0)('has enabled sensors to test', () => {
      throw new Error(`${configFile} has no enabled sensors`);
    });
    for (const sensor of sensors) {
      describeConformance(`${sensor.id} (${sensor.driver})`, {
        kind: sensor.driver,
        faults: [],
        noFaults: 'real devices cannot be made to fail on demand',
        start: async () => {
          const seams = await hardwareSeams(nullLogger);
          return { driver: createDriver(sensor, seams), close: () => seams.close() };
        },
      });
    }
  });
}
