/**
 * What went wrong with a broker session's connections, explained and logged once: an error
 * before CONNACK is diagnosed (broker-errors.ts) into a protocol fallback, a refusal (retry
 * slower), a TLS/plain mismatch or a network failure, with a TLS probe of the port after a
 * plain reset (tls-probe.ts); an error after CONNACK and an MQTT 5 DISCONNECT with a reason
 * are logged. Keeps the latest error (for stats and health) and the current attempt's (for
 * the line that logs its close).
 */
import type { IDisconnectPacket } from 'mqtt';
import type { Logger } from '../ops/logger.js';
import { explainConnectFailure } from './broker-errors.js';
import type { BrokerTerms } from './broker-terms.js';
import { describeError } from './connection-options.js';
import { TlsPorts } from './tls-probe.js';

/** The attempt an error belongs to, as the session sees it when the error arrives. */
export interface AttemptView {
  url: string;
  /** How logs name the broker (brokerFields()). */
  fields: { broker: string; brokerIndex?: number };
  /** The attempt got its CONNACK: the error is one of a connection that was up. */
  gotConnack: boolean;
  clientId: unknown;
}

/** What the session does about an error before CONNACK. */
export type ErrorVerdict = 'retry-now' | 'backoff';

export class ConnectionErrors {
  private readonly tlsPorts = new TlsPorts();
  private latest: string | undefined;
  private current: string | undefined;
  private refused = false;

  constructor(
    private readonly terms: BrokerTerms,
    private readonly logger: Logger,
    /** Begins the log lines of a session besides telemetry (`sparkplug: `), else ''. */
    private readonly prefix: string,
    /** The view of the session's attempt now: a TLS probe's answer about another is dropped. */
    private readonly attemptNow: () => AttemptView | undefined,
  ) {}

  /** The latest connection or publish error; undefined before any. */
  get lastError(): string | undefined {
    return this.latest;
  }

  /** The current attempt's error, for the line that logs its close; undefined when none. */
  get currentError(): string | undefined {
    return this.current;
  }

  /** The last attempt was refused in CONNACK (credentials, authorization). */
  get refusedLast(): boolean {
    return this.refused;
  }

  /** A new attempt: it has no error yet. */
  attemptStarted(): void {
    this.current = undefined;
  }

  /** CONNACK accepted at `url`. */
  connected(url: string): void {
    this.refused = false;
    this.tlsPorts.connected(url);
  }

  /** An error the owner saw (a publish refused, ...): the latest, for stats. */
  note(text: string): void {
    this.latest = text;
  }

  /** An mqtt.js 'error' of the attempt `at`; 'retry-now' asks for the protocol fallback. */
  onError(err: Error, at: AttemptView): ErrorVerdict {
    this.set(describeError(err));
    const where = at.fields;
    if (at.gotConnack) {
      this.logger.warn({ ...where, error: this.latest }, `${this.prefix}MQTT connection error`);
      return 'backoff';
    }
    const failure = explainConnectFailure(err, {
      url: at.url,
      protocolVersion: this.terms.protocolVersion,
      negotiated: this.terms.negotiated(),
      beforeConnack: true,
      speaksTls: this.tlsPorts.speaksTls(at.url),
    });
    if (failure.kind === 'protocol-version' && this.terms.versionRefused(where.broker)) {
      return 'retry-now';
    }
    if (failure.kind !== 'network') this.set(`${describeError(err)}: ${failure.hint}`);
    if (failure.refused) {
      this.refused = true;
      this.logger.error(
        { ...where, error: this.latest, clientId: at.clientId },
        `${this.prefix}MQTT BROKER REFUSED THE CONNECTION (${failure.hint}); retrying with a slower backoff`,
      );
    } else if (failure.kind === 'tls-mismatch') {
      this.logger.warn(
        { ...where, error: this.latest },
        `${this.prefix}MQTT connection failed: ${failure.hint}`,
      );
    } else {
      this.logger.warn({ ...where, error: this.latest }, `${this.prefix}MQTT connection error`);
    }
    if (failure.probeTls) this.tlsPorts.check(at.url, (tls) => this.probedTls(at.url, err, tls));
    return 'backoff';
  }

  /** An MQTT 5 broker says why it closes the connection (e.g. 0x95 packet too large). */
  onBrokerDisconnect(packet: IDisconnectPacket, fields: AttemptView['fields']): void {
    const code = packet.reasonCode ?? 0;
    if (code < 0x80) return;
    this.set(
      `broker disconnected us (reason 0x${code.toString(16)}${code === 0x95 ? ', packet too large' : ''})`,
    );
    this.logger.warn({ ...fields, reasonCode: code }, this.latest);
  }

  /** The answer of a TLS probe after a plain reset before CONNACK: said when it is TLS. */
  private probedTls(url: string, err: Error, tls: boolean): void {
    const at = this.attemptNow();
    this.logger.debug({ ...at?.fields, tls }, 'broker port probed for TLS after a reset');
    if (!tls || !at || at.gotConnack || url !== at.url) return;
    const failure = explainConnectFailure(err, {
      url,
      protocolVersion: this.terms.protocolVersion,
      negotiated: this.terms.negotiated(),
      beforeConnack: true,
      speaksTls: true,
    });
    this.set(`${describeError(err)}: ${failure.hint}`);
    this.logger.warn(
      { ...at.fields, error: this.latest },
      `${this.prefix}MQTT connection failed: ${failure.hint}`,
    );
  }

  private set(text: string): void {
    this.latest = text;
    this.current = text;
  }
}
