/**
 * `edge-agent simulate`: the whole agent — the same pipeline as `run` — on simulated
 * hardware, with an embedded MQTT broker unless --broker is given.
 */
import { resolve } from 'node:path';
import { DAY_MS, MAX_TIMER_MS, MINUTE_MS } from '../../drivers/config/bounds.js';
import { configWarnings, loadConfigFile, validateConfig } from '../config/load.js';
import { NAME_PATTERN } from '../../drivers/config/sensor-keys.js';
import type { ConfigInput } from '../config/schema.js';
import { createLogger } from '../ops/logger.js';
import { Pipeline } from '../pipeline.js';
import { startEmbeddedBroker } from '../../simulator/broker.js';
import {
  startDefaultScenario,
  startNetworkFleet,
  simulateConfiguredSensors,
  type Simulation,
} from '../../simulator/scenario.js';
import {
  EXIT_OK,
  numberOption,
  stringOption,
  UsageError,
  type CommandContext,
  type OptionValues,
} from './common.js';
import { installCrashHandlers, runUntilStopped } from './lifecycle.js';
import { startLiveView } from './live-view.js';
import { startTelemetryEcho } from './telemetry-echo.js';
import { resolveStateDir } from './state-dir.js';

/** Sparkplug group of `simulate --sparkplug` when the config names none. */
const SIMULATE_SPARKPLUG_GROUP = 'edge-agent';

/**
 * The embedded broker (Aedes) speaks MQTT 3.1.1 only: connect with that at once, and let the
 * delivery check confirm that telemetry gets through, instead of the warning for brokers
 * whose ACLs could swallow it unseen (docs/operations.md).
 */
const EMBEDDED_BROKER_TERMS = { protocolVersion: 4, deliveryCheck: true } as const;

export async function simulateCommand(
  values: OptionValues,
  { stops }: CommandContext,
): Promise<number> {
  // Timers hold at most MAX_TIMER_MS; the rest are the config's own ranges.
  const durationSec = numberOption(values, 'duration', 0, Math.floor(MAX_TIMER_MS / 1000));
  const windowMs = numberOption(values, 'window', 100, DAY_MS);
  const fleetSize = numberOption(values, 'sensors', 1, 100_000);
  // The fleet's round timeout is 5 × latency, within sampling.timeoutMs's 10 min.
  const latencyMs = numberOption(values, 'latency', 0, MINUTE_MS);
  const intervalMs = numberOption(values, 'interval', 10, DAY_MS);
  if (fleetSize === undefined && (latencyMs !== undefined || intervalMs !== undefined)) {
    throw new UsageError('--latency and --interval go with --sensors N');
  }
  const configFile = stringOption(values, 'config');
  if (configFile !== undefined && fleetSize !== undefined) {
    throw new UsageError('--config and --sensors are alternatives');
  }
  const gateway = stringOption(values, 'gateway');
  if (gateway !== undefined && !NAME_PATTERN.test(gateway)) {
    throw new UsageError(
      `--gateway may only contain A-Z a-z 0-9 _ - (it becomes an MQTT topic level), got "${gateway}"`,
    );
  }

  const userConfig = configFile !== undefined ? loadConfigFile(configFile) : undefined;
  const liveView = fleetSize !== undefined;
  const terminal = process.stdout.isTTY === true;
  // The live view owns a terminal; logs then only speak up for warnings.
  const logger = createLogger(
    values.verbose === true
      ? 'debug'
      : liveView && terminal
        ? 'warn'
        : (userConfig?.log.level ?? 'info'),
  );
  installCrashHandlers(logger);
  // Before any broker or simulated device is started: a state dir that cannot be made is
  // the operator's to fix, and nothing needs tearing down.
  const stateDir = resolveStateDir(userConfig?.spool.dir, stringOption(values, 'state-dir'));
  if (stops.requested) {
    logger.info({ why: stops.requested }, 'stop requested during start-up; nothing started');
    return EXIT_OK;
  }

  const cleanups: Array<() => Promise<void>> = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  };
  try {
    let brokerUrl = stringOption(values, 'broker');
    const embedded = brokerUrl === undefined;
    if (brokerUrl === undefined) {
      const broker = await startEmbeddedBroker();
      cleanups.push(() => broker.close());
      brokerUrl = broker.url;
      process.stdout.write(`embedded MQTT broker: ${brokerUrl}\n`);
    }

    let sim: Simulation;
    if (fleetSize !== undefined) {
      sim = await startNetworkFleet({
        count: fleetSize,
        latencyMs: latencyMs ?? 100,
        intervalMs: intervalMs ?? 1000,
        logger,
      });
    } else if (userConfig) {
      sim = await simulateConfiguredSensors(userConfig.sensors, logger);
    } else {
      sim = await startDefaultScenario(logger);
    }
    cleanups.push(() => sim.close());

    // The simulation's broker replaces the configured one (or cluster).
    const { urls: _configuredBrokers, ...userMqtt } = userConfig?.mqtt ?? {};
    const input: ConfigInput = {
      ...(userConfig ?? {}),
      gateway: { id: gateway ?? userConfig?.gateway.id ?? 'sim' },
      mqtt: { ...userMqtt, url: brokerUrl, ...(embedded ? EMBEDDED_BROKER_TERMS : {}) },
      aggregation: {
        ...(userConfig?.aggregation ?? {}),
        ...(windowMs !== undefined ? { windowMs } : {}),
      },
      batch: { ...(userConfig?.batch ?? {}), ...(values.raw === true ? { raw: true } : {}) },
      sampling: { ...(userConfig?.sampling ?? {}), ...(sim.sampling ?? {}) },
      buffer: { ...(userConfig?.buffer ?? {}), ...(sim.buffer ?? {}) },
      ...(values.homeassistant === true
        ? { homeassistant: { ...(userConfig?.homeassistant ?? {}), enabled: true } }
        : {}),
      sparkplug: {
        ...(userConfig?.sparkplug ?? {}),
        ...(values.sparkplug === true
          ? { enabled: true, groupId: userConfig?.sparkplug.groupId ?? SIMULATE_SPARKPLUG_GROUP }
          : {}),
      },
      sensors: sim.sensors,
    };
    const config = validateConfig(input, 'simulate');
    for (const warning of configWarnings(config)) logger.warn(warning);
    process.stdout.write(
      `simulating ${config.sensors.length} sensors (${sim.describe()}); gateway ${config.gateway.id}; ` +
        `telemetry on ${config.mqtt.topicPrefix}/${config.gateway.id}/telemetry; state in ${stateDir}\n`,
    );
    if (config.homeassistant.enabled) {
      process.stdout.write(
        `Home Assistant discovery on ${config.homeassistant.discoveryPrefix}/device/${config.gateway.id}/config; ` +
          `states on ${config.mqtt.topicPrefix}/${config.gateway.id}/state/<sensor>\n`,
      );
    }
    if (config.sparkplug.enabled) {
      const node = config.sparkplug.edgeNodeId ?? config.gateway.id;
      process.stdout.write(
        `sparkplug B on spBv1.0/${config.sparkplug.groupId}/+/${node} (NBIRTH, NDATA, NDEATH; NCMD for rebirth)\n`,
      );
    }
    const pipeline = await Pipeline.start({
      config,
      seams: sim.seams,
      stateDir,
      logger,
      ...(configFile !== undefined ? { configFile: resolve(configFile) } : {}),
    });
    if (liveView) {
      const view = startLiveView(pipeline, {
        intervalMs: 1000,
        targetHz: 1000 / (intervalMs ?? 1000),
      });
      // The last frame stays the last one drawn while sampling ran, not a stopped pipeline's.
      stops.onStop(() => view.stop());
      cleanups.push(async () => view.stop());
    } else if (terminal) {
      process.stdout.write(
        `each telemetry batch is shown below as a subscriber receives it (every ${config.aggregation.windowMs / 1000} s); Ctrl-C stops\n`,
      );
      const echo = startTelemetryEcho(config, (line) => void process.stdout.write(line + '\n'));
      cleanups.push(() => echo.stop());
    }
    return await runUntilStopped(pipeline, {
      logger,
      stops,
      durationSec,
      onStopped: async () => {
        await sim.seams.close();
        await cleanup();
      },
    });
  } catch (err) {
    await cleanup();
    throw err;
  }
}
