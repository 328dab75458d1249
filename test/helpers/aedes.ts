/** The embedded Aedes broker on an ephemeral port, for tests (MQTT 3.1.1 only). */
import { startEmbeddedBroker, type EmbeddedBroker } from '../../simulator/broker.js';

export function startAedes(): Promise<EmbeddedBroker> {
  return startEmbeddedBroker({ host: '127.0.0.1', port: 0 });
}
