/**
 * The whole agent in-process (Pipeline.start) against a real mosquitto, with HTTP JSON
 * sensors served by the simulator on loopback, so a test can inject a sensor fault for real
 * and watch what a subscriber receives.
 *
 *   const sim = await startSimPipeline({ sensors: 1, config: { aggregation: { windowMs: 200 } } });
 *   sim.http.inject(0, 'http-500');   // sensor "http-0" fails until inject(0, null)
 *   ... sim.subscriber.on('/telemetry') ...
 *   await sim.close();
 */
import { validateConfig, type ConfigInput } from '../../agent/config/load.js';
import { silentLogger, type Logger } from '../../agent/ops/logger.js';
import { Pipeline } from '../../agent/pipeline.js';
import { Seams } from '../../drivers/seams.js';
import {
  startHttpSensorServer,
  type HttpSensorServer,
} from '../../simulator/network/http-server.js';
import { SimulatedSerialBinding } from '../../simulator/serial/binding.js';
import { type MosquittoBroker, type MosquittoOptions } from './mosquitto.js';
import { type TestSubscriber } from './subscriber.js';
import { teardownList } from './teardown.js';

export interface SimPipeline {
  pipeline: Pipeline;
  broker: MosquittoBroker;
  /** Subscribed (QoS 1) to the gateway's telemetry and health topics before the start. */
  subscriber: TestSubscriber;
  http: HttpSensorServer;
  /** Sensor i is `http-<i>`, reading http.url(i). */
  sensorId(i: number): string;
  /** Stops the pipeline (drain bounded), then everything else. Safe to call twice. */
  close(): Promise<void>;
}

export async function startSimPipeline(options: {
  sensors: number;
  /** Merged over the defaults (gateway gw, the broker's URL, the HTTP sensors). */
  config?: Omit<ConfigInput, 'gateway' | 'sensors'>;
  /** Keys added to every sensor entry (e.g. intervalMs, backoffMaxMs). */
  sensor?: Record<string, unknown>;
  /** The broker's options, e.g. `extraConfig: ['max_packet_size 2048']` to make batches travel in parts. */
  mosquitto?: MosquittoOptions;
  /** The agent's logger (default silent), e.g. capturingLogger() to read what it logged. */
  logger?: Logger;
}): Promise<SimPipeline> {
  const t = teardownList();
  const close = () => t.run();
  try {
    const broker = await t.mosquitto(options.mosquitto);
    const subscriber = await t.subscriber({
      url: broker.url,
      topics: ['edge/gw/telemetry', 'edge/gw/health'],
    });
    const http = t.own(await startHttpSensorServer({ delayMs: 2, sensors: options.sensors }));
    const stateDir = t.tempDir('sim-pipeline-');
    const sensorId = (i: number) => `http-${i}`;
    const config = validateConfig(
      {
        ...options.config,
        gateway: { id: 'gw' },
        mqtt: { ...options.config?.mqtt, url: broker.url },
        sensors: Array.from({ length: options.sensors }, (_, i) => ({
          id: sensorId(i),
          driver: 'http-json',
          url: http.url(i),
          path: 'data.temperature',
          ...options.sensor,
        })) as ConfigInput['sensors'],
      },
      'test',
    );
    const seams = new Seams(
      {
        openI2C: () => Promise.reject(new Error('no I²C in this test')),
        serialBinding: new SimulatedSerialBinding(),
      },
      options.logger ?? silentLogger,
    );
    t.own(seams);
    const logger = options.logger ?? silentLogger;
    const pipeline = await Pipeline.start({ config, seams, stateDir, logger });
    t.add(() => pipeline.stop(2000));
    return { pipeline, broker, subscriber, http, sensorId, close };
  } catch (err) {
    // The start's own error is the one to report.
    await close().catch(() => undefined);
    throw err;
  }
}
