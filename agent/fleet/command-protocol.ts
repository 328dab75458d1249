/**
 * The wire format of commands over MQTT, shared by the agent (command-transport.ts) and the
 * fleet tool (`edge-agent remote`):
 *
 * - request on `<prefix>/<gw>/cmd/<name>` (a name may contain '/', e.g. `config/get`), payload
 *   empty or JSON `{ "id"?: string | number, "args"?: {...} }`;
 * - answer on the request's MQTT 5 response topic with its correlation data when that topic
 *   is below `<prefix>/<gw>/reply/`, else on `<prefix>/<gw>/reply/<name>`; JSON
 *   `{ "schema", "gateway", "command", "id"?, "ok", "result" | "error", "note"? }`.
 *
 * Everything the gateway publishes stays below `<prefix>/<gw>/`, so one ACL line covers it.
 */
import { z } from 'zod';
import type { Answer } from '../control/command.js';

export const ANSWER_SCHEMA = 'edge-agent/answer/1';

/** Bound of a request id, characters: it is echoed in every answer. */
export const MAX_ID_LENGTH = 128;

export const requestId = z.union([
  z.string().min(1).max(MAX_ID_LENGTH),
  z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
]);
export type RequestId = z.infer<typeof requestId>;

export const requestEnvelope = z.strictObject({
  id: requestId.optional(),
  args: z.record(z.string(), z.unknown()).optional(),
});
export type RequestEnvelope = z.infer<typeof requestEnvelope>;

/** An answer as published. */
export type AnswerMessage = {
  schema: typeof ANSWER_SCHEMA;
  gateway: string;
  command: string;
  id?: RequestId;
  /** Something the requester should know, e.g. why its response topic was not used. */
  note?: string;
} & Answer;

export const answerMessage = z.object({
  schema: z.literal(ANSWER_SCHEMA),
  gateway: z.string(),
  command: z.string(),
  id: requestId.optional(),
  note: z.string().optional(),
  ok: z.boolean(),
  result: z.unknown().optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
});

export function commandTopicFilter(prefix: string, gateway: string): string {
  return `${prefix}/${gateway}/cmd/#`;
}

export function requestTopic(prefix: string, gateway: string, name: string): string {
  return `${prefix}/${gateway}/cmd/${name}`;
}

export function replyTopic(prefix: string, gateway: string, name: string): string {
  return `${prefix}/${gateway}/reply/${name}`;
}

/** The command name of a request topic, or undefined when the topic is not one. */
export function commandOfTopic(prefix: string, gateway: string, topic: string): string | undefined {
  const head = `${prefix}/${gateway}/cmd/`;
  if (!topic.startsWith(head)) return undefined;
  return topic.slice(head.length);
}

/**
 * Whether an answer may go to `topic`: a plain topic name below `<prefix>/<gw>/reply/` — the
 * gateway's own topics (one ACL line), and never its telemetry, status or health.
 */
export function isReplyTopic(prefix: string, gateway: string, topic: string): boolean {
  const head = `${prefix}/${gateway}/reply/`;
  return (
    topic.startsWith(head) &&
    topic.length > head.length &&
    !topic.includes('+') &&
    !topic.includes('#') &&
    !topic.includes('\0')
  );
}

/**
 * Read a request payload: empty means no id and no arguments. `id` is what could be read of
 * the id even when the rest is malformed, so that the answer still carries it.
 */
export function parseRequest(
  payload: Buffer,
): { ok: true; request: RequestEnvelope } | { ok: false; id?: RequestId; message: string } {
  if (payload.length === 0) return { ok: true, request: {} };
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    return { ok: false, message: `request is not JSON (${(err as Error).message})` };
  }
  const parsed = requestEnvelope.safeParse(json);
  if (parsed.success) return { ok: true, request: parsed.data };
  const problems = parsed.error.issues.map(
    (i) => `${i.path.length > 0 ? i.path.join('.') : 'request'}: ${i.message}`,
  );
  const id = requestId.safeParse((json as { id?: unknown } | null)?.id);
  return {
    ok: false,
    ...(id.success ? { id: id.data } : {}),
    message: `request must be {"id"?: string | number, "args"?: {...}}: ${problems.join('; ')}`,
  };
}
