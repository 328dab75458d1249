/**
 * Commands over MQTT on the telemetry connection (fleet.enabled): subscribes to
 * `<prefix>/<gw>/cmd/#`, hands each request to the CommandSet and publishes the one answer it
 * gets (wire format: command-protocol.ts). Every request admitted by the rate limit is
 * answered — unknown command, malformed request, bad arguments, refusal, failure or a result
 * too large for the broker —; over the limit, at most one `rate-limited` answer a second goes
 * out and the rest are dropped unparsed and counted. Answers go only below
 * `<prefix>/<gw>/reply/`.
 */
import type { IPublishPacket } from 'mqtt';
import type { Logger } from '../ops/logger.js';
import type { ConnectionHooks, ConnectionLink } from '../publish/session-hooks.js';
import { failure, type Answer, type CommandSet } from '../control/command.js';
import { fitAnswer } from './answer-size.js';
import {
  ANSWER_SCHEMA,
  commandOfTopic,
  commandTopicFilter,
  isReplyTopic,
  parseRequest,
  replyTopic,
  type AnswerMessage,
  type RequestId,
} from './command-protocol.js';
import { RequestLimiter } from './rate-limit.js';

/** Our own bound on an answer's payload, whatever the broker would take. */
export const MAX_ANSWER_BYTES = 256 * 1024;
/** Room for the PUBLISH's fixed header, packet id and property lengths besides topic and data. */
const PACKET_OVERHEAD = 32;

/** The commands' figures in the health report (`commands`). */
export interface CommandCounters {
  /** Requests received. */
  requests: number;
  /** Answers published (the broker may still refuse one). */
  answered: number;
  /** Answers that were not a result: unknown command, bad request, refused, failed, too large. */
  refused: number;
  /** Requests over the rate limit, answered `rate-limited` or dropped. */
  rateLimited: number;
  /** Requests over the rate limit left unanswered (beyond one `rate-limited` answer a second). */
  dropped: number;
  /** Answers that could not be sent: the connection was down when they were ready. */
  unsent: number;
}

/** What the transport needs of the telemetry publisher. */
export interface CommandChannel {
  attach(hooks: ConnectionHooks): void;
}

export interface CommandTransportOptions {
  prefix: string;
  gateway: string;
  commands: CommandSet;
  channel: CommandChannel;
  rateLimit: { perSecond: number; burst: number };
  logger: Logger;
}

/** Where an answer goes, and what the requester gave to match it. */
interface Route {
  topic: string;
  correlationData?: Buffer;
  note?: string;
}

export class CommandTransport {
  private readonly limiter: RequestLimiter;
  private link: ConnectionLink | undefined;
  private stopped = false;
  private readonly figures: CommandCounters = {
    requests: 0,
    answered: 0,
    refused: 0,
    rateLimited: 0,
    dropped: 0,
    unsent: 0,
  };

  constructor(private readonly options: CommandTransportOptions) {
    this.limiter = new RequestLimiter(options.rateLimit);
  }

  start(): void {
    const { prefix, gateway } = this.options;
    this.options.channel.attach({
      subscriptions: [commandTopicFilter(prefix, gateway)],
      connected: (link) => {
        this.link = link;
      },
      message: (topic, payload, retained, packet) =>
        this.onRequest(topic, payload, retained, packet),
    });
    this.options.logger.info(
      { topics: commandTopicFilter(prefix, gateway) },
      'answering commands over MQTT',
    );
  }

  /** No more answers; requests from now on are ignored. */
  stop(): void {
    this.stopped = true;
    this.link = undefined;
  }

  counters(): CommandCounters {
    return { ...this.figures };
  }

  private onRequest(topic: string, payload: Buffer, retained: boolean, packet: IPublishPacket) {
    const { prefix, gateway } = this.options;
    const name = commandOfTopic(prefix, gateway, topic);
    if (this.stopped || name === undefined) return;
    this.figures.requests++;
    const admission = this.limiter.admit();
    if (admission === 'drop') {
      this.figures.rateLimited++;
      this.figures.dropped++;
      return;
    }
    const route = this.routeOf(name, packet);
    const parsed = parseRequest(payload);
    const id = parsed.ok ? parsed.request.id : parsed.id;
    if (admission === 'rate-limited') {
      this.figures.rateLimited++;
      const limit = this.options.rateLimit;
      this.send(
        name,
        id,
        route,
        failure(
          'rate-limited',
          `${name}: more than ${limit.perSecond} requests a second (burst ${limit.burst}); try again later`,
        ),
      );
      return;
    }
    if (retained) {
      // A retained request would run again on every connect: never carried out.
      this.send(
        name,
        id,
        route,
        failure(
          'bad-request',
          `${name}: a retained request is not carried out (publish it without retain)`,
        ),
      );
      return;
    }
    if (!parsed.ok) {
      this.send(name, id, route, failure('bad-request', `${name}: ${parsed.message}`));
      return;
    }
    this.options.logger.debug({ command: name, id }, 'command request');
    void this.options.commands
      .handle(name, parsed.request.args ?? {}, { origin: 'remote' })
      .then((answer) => this.send(name, id, route, answer));
  }

  /** The request's response topic when it is one of ours, else the fixed reply topic. */
  private routeOf(name: string, packet: IPublishPacket): Route {
    const { prefix, gateway } = this.options;
    const fixed = replyTopic(prefix, gateway, name);
    const props = packet.properties;
    const correlationData = props?.correlationData;
    const route: Route = { topic: fixed };
    if (correlationData !== undefined) route.correlationData = correlationData;
    const wanted = props?.responseTopic;
    if (wanted === undefined) return route;
    if (isReplyTopic(prefix, gateway, wanted)) route.topic = wanted;
    else {
      route.note = `response topic ${JSON.stringify(wanted.slice(0, 200))} is not below ${prefix}/${gateway}/reply/, where this gateway answers: answered on ${fixed}`;
    }
    return route;
  }

  private send(name: string, id: RequestId | undefined, route: Route, answer: Answer): void {
    if (!answer.ok) this.figures.refused += answer.error.code === 'rate-limited' ? 0 : 1;
    const link = this.link;
    if (this.stopped || !link?.client.connected) {
      this.figures.unsent++;
      return;
    }
    const message: AnswerMessage = {
      schema: ANSWER_SCHEMA,
      gateway: this.options.gateway,
      command: name,
      ...(id !== undefined ? { id } : {}),
      ...(route.note !== undefined ? { note: route.note } : {}),
      ...answer,
    };
    const v5 = link.protocolVersion === 5;
    const payload = fitAnswer(message, this.answerLimit(link, route));
    const properties =
      v5 && route.correlationData ? { correlationData: route.correlationData } : undefined;
    link.client.publish(
      route.topic,
      payload,
      { qos: 1, ...(properties ? { properties } : {}) },
      (err) => {
        if (err) {
          this.options.logger.warn(
            { command: name, topic: route.topic, err: err.message },
            'command answer not delivered (refused by the broker, or the connection closed)',
          );
        }
      },
    );
    this.figures.answered++;
  }

  /** Payload bytes an answer may take on this connection. */
  private answerLimit(link: ConnectionLink, route: Route): number {
    const broker = link.maximumPacketSize;
    if (broker === undefined) return MAX_ANSWER_BYTES;
    const overhead =
      PACKET_OVERHEAD +
      Buffer.byteLength(route.topic, 'utf8') +
      (route.correlationData?.length ?? 0);
    return Math.max(0, Math.min(MAX_ANSWER_BYTES, broker - overhead));
  }
}
