/**
 * Ending a Sparkplug session on purpose so that hosts still see its NDEATH: under MQTT 3.1.1
 * it is published by hand before DISCONNECT (which makes the broker drop the Will); under
 * MQTT 5 DISCONNECT carries reason 0x04 (disconnect with Will message) and the broker
 * publishes it. Used as BrokerSession's goodbye.
 */
import type { MqttClient } from 'mqtt';
import type { Logger } from '../../ops/logger.js';
import { GOODBYE_MS } from '../../publish/broker-session.js';
import { describeError } from '../../publish/connection-options.js';
import { encodeDeath } from './payload.js';

/** MQTT 5 DISCONNECT reason: the broker publishes the Will all the same. */
const DISCONNECT_WITH_WILL = 0x04;

export async function sparkplugGoodbye(
  client: MqttClient,
  version: 4 | 5,
  session: { ndeathTopic: string; bdSeq: number; logger: Logger },
): Promise<{ reasonCode: number } | undefined> {
  const { ndeathTopic, bdSeq, logger } = session;
  if (version === 5) {
    logger.info({ bdSeq }, 'sparkplug session ended; the broker publishes its NDEATH');
    return { reasonCode: DISCONNECT_WITH_WILL };
  }
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, GOODBYE_MS);
    client.publish(
      ndeathTopic,
      Buffer.from(encodeDeath(bdSeq, Date.now())),
      { qos: 1, retain: false },
      (err) => {
        clearTimeout(timer);
        if (err) logger.warn({ err: describeError(err) }, 'sparkplug NDEATH not published');
        else logger.info({ bdSeq }, 'sparkplug NDEATH published; session ended');
        resolve();
      },
    );
  });
  return undefined;
}
