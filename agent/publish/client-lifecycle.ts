/**
 * Two moments of an mqtt.js client's life the broker session needs and mqtt.js does not
 * name: when the CONNECT has left for the broker, and a DISCONNECT bounded in time.
 */
import { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { MqttClient } from 'mqtt';

/**
 * Calls `sent` once the CONNECT mqtt.js wrote at connect has left for the broker: mqtt.js
 * writes it into the socket before the socket is connected, so it leaves when TCP (or TLS)
 * is up. For another transport (WebSocket) the CONNECT counts as sent at once: counting one
 * too many is safe where one too few is not (a Sparkplug bdSeq must never repeat).
 */
export function watchConnectSent(client: MqttClient, sent: () => void): void {
  const stream: unknown = client.stream;
  if (stream instanceof TLSSocket) stream.once('secureConnect', sent);
  else if (stream instanceof Socket) stream.once('connect', sent);
  else queueMicrotask(sent);
}

/** DISCONNECT (with `packet`'s reason code under MQTT 5), forced when it takes over `ms`. */
export async function disconnect(
  client: MqttClient,
  packet: { reasonCode?: number } | undefined,
  ms: number,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const graceful = client.endAsync(false, packet ?? {}).then(
    () => true,
    () => false,
  );
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const clean = await Promise.race([graceful, timedOut]);
  clearTimeout(timer);
  if (!clean) await client.endAsync(true).catch(() => undefined);
}
