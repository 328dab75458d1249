/** Building a publisher for tests: config defaults from the real schema, a log the test can read. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../../../agent/config/schema.js';
import { TelemetryPublisher } from '../../../agent/publish/publisher.js';
import { Spool, type SpoolOptions } from '../../../agent/publish/spool/spool.js';
import { capturingLogger, type CapturedLog } from '../../helpers/logger.js';

export type MqttInput = Record<string, unknown>;

export function mqttConfig(input: MqttInput) {
  return configSchema.parse({ gateway: { id: 'gw' }, mqtt: input }).mqtt;
}

export interface Harness {
  publisher: TelemetryPublisher;
  spool: Spool;
  dir: string;
  log: CapturedLog;
  /** Stop the publisher (bounded) and delete the state dir. */
  dispose(): Promise<void>;
}

export function makePublisher(options: {
  mqtt: MqttInput;
  gateway?: string;
  spool?: Partial<SpoolOptions>;
  dir?: string;
}): Harness {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'publisher-'));
  const log = capturingLogger();
  const spool = Spool.open(
    dir,
    { maxBytes: 64 << 20, maxAgeSec: 3600, ...options.spool },
    log.logger,
  );
  const publisher = new TelemetryPublisher({
    gateway: options.gateway ?? 'gw',
    mqtt: mqttConfig({ reconnectMinMs: 100, reconnectMaxMs: 1000, ...options.mqtt }),
    spool,
    logger: log.logger,
    status: { version: '0.0.0-test', startedAt: Date.now(), sensors: ['boiler-in', 'dead-probe'] },
  });
  let disposed = false;
  return {
    publisher,
    spool,
    dir,
    log,
    async dispose() {
      if (disposed) return;
      disposed = true;
      await publisher.stop({ drainMs: 0 });
      spool.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
