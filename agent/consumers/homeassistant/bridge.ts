/**
 * Home Assistant on the agent's own MQTT connection: the device discovery message
 * (discovery.ts) and the per-sensor state topics (state.ts), both retained at QoS 1.
 *
 * Announced after every connect, when Home Assistant says `online` on `<prefix>/status`
 * (after a random delay of up to birthJitterMs, as Home Assistant recommends, so a fleet of
 * gateways does not answer at once), and when a reload changes the sensors. Components that
 * are gone — removed by a reload, or missing from the retained discovery a previous run left
 * on the broker — are first sent as `{p: "sensor"}` (Home Assistant deletes the entity), then
 * the retained state topics of the sensors that are gone are cleared, then the components are
 * omitted. A discovery without them is retained only once their states are cleared, so a
 * clear that did not happen is tried again after the next connect or start.
 *
 * Once the broker refuses the discovery, the announcements after a connect and for stale
 * components are held back until one is accepted (discovery-hold.ts): Home Assistant's birth
 * message, the `announce` command, a reload that changes the sensors and a backoff retry
 * still try.
 */
import type { Config } from '../../config/schema.js';
import type { Logger } from '../../ops/logger.js';
import { AGENT_VERSION } from '../../version.js';
import type { ConnectionHooks, RetainedOutcome } from '../../publish/publisher.js';
import type { ConnectionLink } from '../../publish/session-hooks.js';
import {
  birthTopic,
  componentIds,
  deviceDiscovery,
  discoveryTopic,
  sensorOfComponent,
  stateTopic,
  type DiscoveredSensor,
  type DiscoveryContext,
} from './discovery.js';
import { DiscoveryHold } from './discovery-hold.js';
import { LatestStates, type WindowValue } from './state.js';

/** What the bridge needs of the telemetry publisher. */
export interface RetainedChannel {
  attach(hooks: ConnectionHooks): void;
  publishRetained(topic: string, payload: string): Promise<RetainedOutcome>;
}

/** The bridge's figures, as the health report carries them (`homeassistant`). */
export interface HomeAssistantStats {
  /** Discovery messages the broker acknowledged: announcements and removals. */
  discoveries: number;
  /** State messages the broker acknowledged. */
  states: number;
  /** Retained state topics of sensors that are gone, cleared (acknowledged). */
  cleared: number;
  /** Retained publishes that failed: refused by the broker, or lost with the connection. */
  failed: number;
  /** The latest failure, as logged. */
  lastError?: string;
}

type RetainedKind = 'discoveries' | 'states' | 'cleared';

export interface BridgeOptions {
  context: DiscoveryContext;
  channel: RetainedChannel;
  sensors: readonly DiscoveredSensor[];
  logger: Logger;
  /** Longest random delay before answering Home Assistant's birth message (default 2000). */
  birthJitterMs?: number;
  /** First retry after the broker refused the discovery (default one minute), doubling. */
  refusedRetryMinMs?: number;
}

/** Triggers that do not announce while the broker refuses the discovery. */
const AUTOMATIC = new Set(['connected', 'stale components on the broker']);

export class HomeAssistantBridge {
  private sensors: readonly DiscoveredSensor[];
  private readonly states = new LatestStates();
  /** Component ids to delete in Home Assistant at the next announcement. */
  private readonly removing = new Set<string>();
  /** Sensors whose retained state topic is to be cleared. */
  private readonly clearing = new Set<string>();
  private chain: Promise<void> = Promise.resolve();
  private queued = false;
  private birthTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly ctx: DiscoveryContext;
  private readonly topic: string;
  private readonly counts = { discoveries: 0, states: 0, cleared: 0, failed: 0 };
  private lastError: string | undefined;
  private link: ConnectionLink | undefined;
  private readonly hold: DiscoveryHold;

  constructor(private readonly options: BridgeOptions) {
    this.ctx = options.context;
    this.sensors = options.sensors;
    this.topic = discoveryTopic(this.ctx);
    this.hold = new DiscoveryHold({
      topic: this.topic,
      logger: options.logger,
      retry: () => this.announce('retry after the refusal'),
      closedAfterDiscovery: (error) => {
        this.counts.failed += 1;
        this.lastError = error;
      },
      ...(options.refusedRetryMinMs !== undefined ? { retryMinMs: options.refusedRetryMinMs } : {}),
    });
  }

  /** Hooks into the publisher's connection; announces at once if it is connected. */
  start(): void {
    const birth = birthTopic(this.ctx.discoveryPrefix);
    this.options.channel.attach({
      subscriptions: [birth, this.topic],
      connected: (link) => {
        this.link = link;
        this.announce('connected');
      },
      message: (topic, payload, retained) => {
        if (topic === birth) this.onBirth(payload.toString('utf8'), retained);
        else if (topic === this.topic && retained) this.onRetainedDiscovery(payload);
      },
    });
  }

  /** The windows of a batch from the aggregation worker: publish the state of the sensors they update. */
  onWindows(windows: readonly WindowValue[]): void {
    if (this.stopped) return;
    const known = new Set(this.sensors.map((s) => s.id));
    const changed = this.states.apply(windows, (id) => known.has(id));
    for (const sensor of changed) void this.publishState(sensor);
  }

  /** After a reload: the enabled sensors now. Removed components are deleted in Home Assistant. */
  updateSensors(sensors: readonly DiscoveredSensor[]): void {
    const before = componentIds(this.sensors);
    const after = componentIds(sensors);
    const ids = new Set(sensors.map((s) => s.id));
    for (const id of before) if (!after.has(id)) this.removing.add(id);
    for (const id of after) this.removing.delete(id);
    for (const s of this.sensors) {
      if (ids.has(s.id)) continue;
      this.clearing.add(s.id);
      this.states.forget(s.id);
    }
    for (const id of ids) this.clearing.delete(id);
    const changed =
      before.size !== after.size ||
      [...after].some((id) => !before.has(id)) ||
      JSON.stringify(this.sensors) !== JSON.stringify(sensors);
    this.sensors = sensors;
    if (changed) this.announce('sensors changed');
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.birthTimer);
    this.hold.stop();
  }

  stats(): HomeAssistantStats {
    return {
      ...this.counts,
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
    };
  }

  private onBirth(payload: string, retained: boolean): void {
    // A retained "online" arrives with every subscribe: the connect already announced.
    if (payload !== 'online' || retained || this.stopped) return;
    if (this.birthTimer) return;
    const delay = Math.floor(Math.random() * (this.options.birthJitterMs ?? 2000));
    this.birthTimer = setTimeout(() => {
      this.birthTimer = undefined;
      this.announce('Home Assistant online');
    }, delay);
    this.birthTimer.unref();
  }

  /**
   * The discovery a previous run left: components it has that this run does not are deleted,
   * and the state topics of its sensors that this run does not have are cleared.
   */
  private onRetainedDiscovery(payload: Buffer): void {
    let cmps: unknown;
    try {
      cmps = (JSON.parse(payload.toString('utf8')) as { cmps?: unknown }).cmps;
    } catch {
      return;
    }
    if (cmps === null || typeof cmps !== 'object') return;
    const current = componentIds(this.sensors);
    const stale = Object.keys(cmps).filter((id) => !current.has(id));
    if (stale.length === 0) return;
    const sensors = new Set(this.sensors.map((s) => s.id));
    for (const id of stale) {
      this.removing.add(id);
      const sensor = sensorOfComponent(id);
      if (sensor !== undefined && !sensors.has(sensor)) this.clearing.add(sensor);
    }
    this.announce('stale components on the broker');
  }

  /**
   * Discovery again on the operator's request (the `announce` command); resolves true once
   * it was announced, false when it could not be (not connected, or stopped).
   */
  async announceOnRequest(): Promise<boolean> {
    if (this.stopped) return false;
    let announced = false;
    const done = this.chain.then(async () => {
      announced = await this.announceNow('requested by the operator');
    });
    this.chain = done.catch(() => undefined);
    await done;
    return announced;
  }

  /** Queues one announcement; triggers while one is queued fold into it. */
  private announce(why: string): void {
    if (this.queued || this.stopped) return;
    if (AUTOMATIC.has(why) && this.hold.holding) {
      this.options.logger.debug({ why }, 'Home Assistant announcement held back (refused)');
      return;
    }
    this.queued = true;
    this.chain = this.chain
      .then(async () => {
        this.queued = false;
        await this.announceNow(why);
      })
      .catch((err: unknown) => {
        this.options.logger.warn({ err }, 'Home Assistant announcement failed');
      });
  }

  private async announceNow(why: string): Promise<boolean> {
    const { logger } = this.options;
    const removing = [...this.removing];
    if (removing.length > 0) {
      const removal = deviceDiscovery(this.ctx, this.sensors, removing);
      if (!(await this.publishDiscovery(JSON.stringify(removal)))) return false;
    }
    // After the removal, so Home Assistant never reads an empty state of a live entity; before
    // the discovery that omits the components, which would hide them from the next start.
    for (const sensor of [...this.clearing]) {
      const topic = stateTopic(this.ctx.topicPrefix, this.ctx.gateway, sensor);
      if (!(await this.publish('cleared', topic, ''))) return false;
      this.clearing.delete(sensor);
    }
    const discovery = deviceDiscovery(this.ctx, this.sensors);
    if (!(await this.publishDiscovery(JSON.stringify(discovery)))) return false;
    for (const id of removing) this.removing.delete(id);
    // Home Assistant wants the states again after a config; ours are retained, so this
    // matters only when a broker lost them.
    for (const s of this.sensors) void this.publishState(s.id);
    logger.info(
      {
        topic: this.topic,
        components: Object.keys(discovery.cmps).length,
        ...(removing.length > 0 ? { removed: removing } : {}),
        why,
      },
      'Home Assistant discovery announced',
    );
    return true;
  }

  private publishState(sensor: string): Promise<boolean> {
    const payload = this.states.payload(sensor);
    if (payload === undefined) return Promise.resolve(false);
    return this.publish(
      'states',
      stateTopic(this.ctx.topicPrefix, this.ctx.gateway, sensor),
      payload,
    );
  }

  /** The discovery (or a removal), watched for a refusal: see discovery-hold.ts. */
  private async publishDiscovery(payload: string): Promise<boolean> {
    const link = this.link;
    const v311 = link?.protocolVersion === 4;
    // Watched before the publish: the broker may close right after its acknowledgement. A
    // connection already gone would never report its close.
    if (link && v311 && link.client.connected) this.hold.sentUnconfirmed(link.client);
    const outcome = await this.publishOutcome('discoveries', this.topic, payload);
    if (outcome.sent) {
      // Under MQTT 3.1.1 an acknowledgement does not say the broker took it.
      if (!v311) this.hold.accepted();
    } else if (outcome.refused === true && outcome.error !== undefined) {
      this.hold.refused(outcome.error);
    }
    return outcome.sent;
  }

  private async publish(kind: RetainedKind, topic: string, payload: string): Promise<boolean> {
    return (await this.publishOutcome(kind, topic, payload)).sent;
  }

  /** A retained publish, counted by kind when acknowledged and as failed when it failed. */
  private async publishOutcome(
    kind: RetainedKind,
    topic: string,
    payload: string,
  ): Promise<RetainedOutcome> {
    const outcome = await this.options.channel.publishRetained(topic, payload);
    if (outcome.sent) this.counts[kind] += 1;
    else if (outcome.error !== undefined) {
      this.counts.failed += 1;
      this.lastError = outcome.error;
      // A refused discovery is logged once by the hold.
      if (!(kind === 'discoveries' && outcome.refused === true)) {
        this.options.logger.warn(
          { topic, err: outcome.error },
          'Home Assistant retained publish failed (refused by the broker, or the connection closed)',
        );
      }
    }
    return outcome;
  }
}

/** A sampled sensor as the pipeline knows it. */
interface SampledLike {
  id: string;
  intervalMs?: number;
  driver: { readonly quantities: DiscoveredSensor['quantities'] };
}

export function discoveredSensors(sampled: readonly SampledLike[]): DiscoveredSensor[] {
  return sampled.map((s) => ({
    id: s.id,
    quantities: [...s.driver.quantities],
    intervalMs: s.intervalMs,
  }));
}

/** The bridge when `homeassistant.enabled`, started on the publisher's connection. */
export function startHomeAssistant(
  config: Config,
  channel: RetainedChannel,
  sampled: readonly SampledLike[],
  logger: Logger,
): HomeAssistantBridge | undefined {
  if (!config.homeassistant.enabled) return undefined;
  const bridge = new HomeAssistantBridge({
    context: {
      gateway: config.gateway.id,
      topicPrefix: config.mqtt.topicPrefix,
      discoveryPrefix: config.homeassistant.discoveryPrefix,
      version: AGENT_VERSION,
      windowMs: config.aggregation.windowMs,
    },
    channel,
    sensors: discoveredSensors(sampled),
    logger,
  });
  bridge.start();
  return bridge;
}
