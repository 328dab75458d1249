/**
 * What a broker's refusal or a failed connection means for the operator, in one line that
 * names the setting to change. CONNACK codes are MQTT 3.1.1 return codes (1..5) or MQTT 5
 * reason codes (>= 0x80); mqtt.js puts either in the error's numeric `code`.
 */

/** 3.1.1 "unacceptable protocol version" and MQTT 5 "unsupported protocol version". */
const PROTOCOL_REFUSED = new Set([1, 0x84]);
const CREDENTIALS_REFUSED = new Set([4, 5, 0x86, 0x87, 0x8a, 0x8c]);
const CLIENT_ID_REFUSED = new Set([2, 0x85]);
const BROKER_BUSY = new Set([3, 0x88, 0x89, 0x9f]);

export type ConnectFailureKind =
  | 'protocol-version'
  | 'credentials'
  | 'client-id'
  | 'broker-busy'
  | 'refused'
  | 'tls-mismatch'
  | 'network';

export interface ConnectFailure {
  kind: ConnectFailureKind;
  /** A CONNACK refusal (as opposed to a network or TLS failure). */
  refused: boolean;
  /** What is likely wrong and what to change; never holds a secret. */
  hint: string;
  /**
   * A plain connection reset before CONNACK, not yet known to be a TLS port: a TLS port does
   * that to plain MQTT, and so does a broker going down (a restart). Probe the port
   * (tls-probe.ts) to tell, then explain again with `speaksTls`.
   */
  probeTls?: boolean;
}

function numericCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

const TLS_MISMATCH_SIGNS =
  /ECONNRESET|EPIPE|socket hang up|before secure TLS connection|wrong version number|packet length too long|unknown protocol|Invalid header|EPROTO/i;

/**
 * Explains why a connection attempt failed. `beforeConnack`: the failure came before the
 * broker answered CONNECT (a reset there, on a port that accepted TCP, is the typical sign
 * of TLS spoken to a plain port or the reverse).
 */
export function explainConnectFailure(
  err: unknown,
  context: {
    url: string;
    protocolVersion: 4 | 5;
    /** mqtt.protocolVersion unset: 5 was tried first, then 3.1.1. */
    negotiated: boolean;
    beforeConnack: boolean;
    /** The port answered a TLS ClientHello with TLS (tls-probe.ts); unset: not known. */
    speaksTls?: boolean;
  },
): ConnectFailure {
  const code = numericCode(err);
  const version = context.protocolVersion === 5 ? 'MQTT 5' : 'MQTT 3.1.1';
  if (code !== undefined) {
    if (PROTOCOL_REFUSED.has(code)) {
      return {
        kind: 'protocol-version',
        refused: true,
        hint: context.negotiated
          ? 'the broker refuses both MQTT 5 and MQTT 3.1.1 (mqtt.protocolVersion unset): check that the URL points to an MQTT broker'
          : context.protocolVersion === 5
            ? `the broker refuses ${version} (mqtt.protocolVersion: 5); it likely speaks MQTT 3.1.1 only: set mqtt.protocolVersion: 4, or leave it unset to fall back automatically`
            : `the broker refuses ${version} (mqtt.protocolVersion: 4); set mqtt.protocolVersion: 5 or leave it unset`,
      };
    }
    if (CREDENTIALS_REFUSED.has(code)) {
      return {
        kind: 'credentials',
        refused: true,
        hint: 'check mqtt.username and the password (mqtt.passwordFile or mqtt.passwordCredential), and that the broker lets this user connect',
      };
    }
    if (CLIENT_ID_REFUSED.has(code)) {
      return {
        kind: 'client-id',
        refused: true,
        hint: 'the broker rejects the client identifier: check mqtt.clientId',
      };
    }
    if (BROKER_BUSY.has(code)) {
      return {
        kind: 'broker-busy',
        refused: true,
        hint: 'the broker is unavailable or busy; retrying',
      };
    }
    return {
      kind: 'refused',
      refused: true,
      hint: `the broker refused the ${version} connection (reason ${code}); see the broker's log`,
    };
  }
  const message = (err as { message?: string }).message ?? String(err);
  const errno = (err as { code?: unknown }).code;
  if (context.beforeConnack && TLS_MISMATCH_SIGNS.test(`${message} ${String(errno ?? '')}`)) {
    const tls = context.url.startsWith('mqtts:') || context.url.startsWith('wss:');
    if (tls) {
      return {
        kind: 'tls-mismatch',
        refused: false,
        hint: 'the connection was reset during the TLS handshake: the port likely speaks plain MQTT, not TLS (mqtts:// to a plain port?): use mqtt:// or the TLS port (often 8883)',
      };
    }
    // Only the port's own answer to a TLS hello tells a TLS port from a broker going down.
    if (context.speaksTls === true) {
      return {
        kind: 'tls-mismatch',
        refused: false,
        hint: 'the broker reset the connection before answering CONNECT, and the port answers TLS: it expects TLS (mqtt:// to a TLS port): use mqtts:// and mqtt.caFile, or the plain port (often 1883)',
      };
    }
    return {
      kind: 'network',
      refused: false,
      hint: 'cannot reach the broker; retrying',
      ...(context.speaksTls === undefined ? { probeTls: true } : {}),
    };
  }
  return { kind: 'network', refused: false, hint: 'cannot reach the broker; retrying' };
}

/** Why a telemetry publish was refused (PUBACK reason code >= 0x80), and whether it is about the topic. */
export interface PublishRefusal {
  code: number;
  /** Not about this batch: every batch on this topic would be refused the same way. */
  topicLevel: boolean;
  /** The batch is too large for the broker. */
  tooLarge: boolean;
  hint: string;
}

const REASON_TEXT: Record<number, string> = {
  0x80: 'unspecified error',
  0x83: 'implementation specific error',
  0x87: 'not authorized',
  0x90: 'topic name invalid',
  0x91: 'packet identifier in use',
  0x95: 'packet too large',
  0x97: 'quota exceeded',
  0x99: 'payload format invalid',
};

/** A PUBACK refusal from mqtt.js' publish callback error, or undefined for other errors. */
export function publishRefusal(err: unknown, topic: string): PublishRefusal | undefined {
  const code = numericCode(err);
  if (code === undefined || code < 0x80) return undefined;
  const reason = REASON_TEXT[code] ?? `reason code 0x${code.toString(16)}`;
  if (code === 0x87) {
    return {
      code,
      topicLevel: true,
      tooLarge: false,
      hint: `the broker does not authorize publishing to ${topic} (${reason}): grant this client write access to ${topic} in the broker's ACL, or change mqtt.topicPrefix or gateway.id`,
    };
  }
  if (code === 0x90) {
    return {
      code,
      topicLevel: true,
      tooLarge: false,
      hint: `the broker refuses the topic ${topic} (${reason}): change mqtt.topicPrefix or gateway.id`,
    };
  }
  if (code === 0x97) {
    return {
      code,
      topicLevel: true,
      tooLarge: false,
      hint: `the broker refuses more messages from this client (${reason}): raise its quota or publish less often (aggregation.windowMs, batch.raw)`,
    };
  }
  return {
    code,
    topicLevel: false,
    tooLarge: code === 0x95,
    hint: `the broker refused the batch (${reason})`,
  };
}

/**
 * Tells a batch the broker refuses from a stream it refuses. A refusal that is not about
 * size or the topic (0x80 unspecified, 0x83 implementation specific, 0x99 payload format
 * invalid, …) for two different batches with nothing acknowledged between is about the
 * stream: splitting cannot help and setting batches aside would discard good data.
 */
export class RefusalPattern {
  private readonly seqs = new Set<number>();

  /** The broker took a publish: refusals so far were about their batches. */
  acknowledged(): void {
    this.seqs.clear();
  }

  /** True when this refusal, with the ones before it, is about the stream. */
  refused(seq: number): boolean {
    this.seqs.add(seq);
    return this.seqs.size >= 2;
  }
}
