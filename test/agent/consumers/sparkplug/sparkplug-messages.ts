/**
 * Sparkplug B messages as the tests read them: every spBv1.0 message a subscriber received,
 * decoded with the Eclipse Tahu package the agent encodes with.
 */
import sparkplug from 'sparkplug-payload';
import type { ReceivedMessage } from '../../../helpers/subscriber.js';

const codec = sparkplug.get('spBv1.0')!;

export interface DecodedMetric {
  name: string;
  type: string;
  value: unknown;
  timestamp: number | undefined;
  historical: boolean;
  unit: unknown;
}

export interface SparkplugMessage {
  /** NBIRTH, NDATA, NDEATH, NCMD, … (the third topic level). */
  type: string;
  topic: string;
  seq: number | undefined;
  timestamp: number | undefined;
  metrics: DecodedMetric[];
}

/** protobufjs hands 64-bit fields out as Long objects. */
function toNumber(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number') return v;
  return (v as { toNumber(): number }).toNumber();
}

export function decodeSparkplug(m: ReceivedMessage): SparkplugMessage {
  const payload = codec.decodePayload(m.payload);
  return {
    type: m.topic.split('/')[2],
    topic: m.topic,
    seq: toNumber(payload.seq),
    timestamp: toNumber(payload.timestamp),
    metrics: (payload.metrics ?? []).map((x) => ({
      name: x.name ?? '',
      type: x.type,
      value: typeof x.value === 'object' && x.value !== null ? toNumber(x.value) : x.value,
      timestamp: toNumber(x.timestamp),
      historical: x.isHistorical === true,
      unit: x.properties?.engUnit?.value,
    })),
  };
}

/** Every node message (not STATE, not our own NCMD) received so far, decoded, in arrival order. */
export function nodeMessages(messages: ReceivedMessage[]): SparkplugMessage[] {
  return messages
    .filter((m) => /^spBv1\.0\/[^/]+\/N(BIRTH|DATA|DEATH)\//.test(m.topic))
    .map(decodeSparkplug);
}

export function encodeRebirthCommand(): Buffer {
  return Buffer.from(
    codec.encodePayload({
      timestamp: Date.now(),
      metrics: [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }],
    }),
  );
}

export const bdSeqOf = (m: SparkplugMessage): number | undefined =>
  m.metrics.find((x) => x.name === 'bdSeq')?.value as number | undefined;
