/** MQTT topics of one gateway: `<prefix>/<gateway>/{telemetry,status,health}` (DESIGN.md). */
export interface GatewayTopics {
  telemetry: string;
  status: string;
  health: string;
}

export function gatewayTopics(prefix: string, gateway: string): GatewayTopics {
  const base = `${prefix}/${gateway}`;
  return { telemetry: `${base}/telemetry`, status: `${base}/status`, health: `${base}/health` };
}

/** Which gateway and kind a received topic belongs to, or undefined if it is not ours. */
export function parseGatewayTopic(
  prefix: string,
  topic: string,
): { gateway: string; kind: keyof GatewayTopics } | undefined {
  const parts = topic.split('/');
  if (parts.length !== 3 || parts[0] !== prefix) return undefined;
  const kind = parts[2];
  if (kind !== 'telemetry' && kind !== 'status' && kind !== 'health') return undefined;
  return { gateway: parts[1], kind };
}
