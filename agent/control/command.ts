/**
 * Commands an operator sends the running agent, whatever carries them: the local control
 * socket in the state directory (`edge-agent spool …` on a live agent) or MQTT
 * (`edge/<gw>/cmd/<name>`, for a fleet). A transport hands (name, args, context) to a
 * CommandSet and sends back the one Answer it gets: an unknown command, malformed arguments
 * or a refusal is an answer with a reason, never an exception and never silence.
 */
import { z } from 'zod';

/** Why a request got no result. Transports add their own (rate-limited, too-large). */
export type AnswerErrorCode =
  'unknown-command' | 'bad-request' | 'refused' | 'failed' | 'rate-limited' | 'too-large';

export type Answer =
  { ok: true; result: unknown } | { ok: false; error: { code: AnswerErrorCode; message: string } };

export interface CommandContext {
  /** Where the request came from: a remote one may be refused what a local operator may do. */
  origin: 'local' | 'remote';
}

export interface Command<A> {
  /** As it appears in a topic (`cmd/<name>`): lower case, words joined by '-' or '/'. */
  readonly name: string;
  /** One line for help and for the answer to an unknown command. */
  readonly summary: string;
  readonly args: z.ZodType<A>;
  /** The result is JSON-serialisable and carries no secret. Throw CommandRefused to refuse. */
  run(args: A, context: CommandContext): Promise<unknown>;
}

/** A command that takes no arguments (any given are a bad request). */
export function arglessCommand(
  name: string,
  summary: string,
  run: () => Promise<unknown>,
): Command<Record<string, never>> {
  return { name, summary, args: z.strictObject({}), run };
}

/** A request the command understood and will not carry out; the message says why. */
export class CommandRefused extends Error {
  override name = 'CommandRefused';
}

export function failure(code: AnswerErrorCode, message: string): Answer {
  return { ok: false, error: { code, message } };
}

export class CommandSet {
  private readonly commands = new Map<string, Command<unknown>>();

  add<A>(command: Command<A>): this {
    if (this.commands.has(command.name)) throw new Error(`command ${command.name} added twice`);
    this.commands.set(command.name, command as Command<unknown>);
    return this;
  }

  names(): string[] {
    return [...this.commands.keys()].sort();
  }

  /** Run one request. Never rejects: every outcome is an Answer. */
  async handle(name: string, rawArgs: unknown, context: CommandContext): Promise<Answer> {
    const command = this.commands.get(name);
    if (!command) {
      return failure(
        'unknown-command',
        `unknown command ${JSON.stringify(name)}: one of ${this.names().join(', ')}`,
      );
    }
    const parsed = command.args.safeParse(rawArgs ?? {});
    if (!parsed.success) {
      const problems = parsed.error.issues.map(
        (i) => `${i.path.length > 0 ? i.path.join('.') : 'arguments'}: ${i.message}`,
      );
      return failure('bad-request', `${name}: ${problems.join('; ')}`);
    }
    try {
      return { ok: true, result: await command.run(parsed.data, context) };
    } catch (err) {
      if (err instanceof CommandRefused) return failure('refused', `${name}: ${err.message}`);
      const message = err instanceof Error ? err.message : String(err);
      return failure('failed', `${name} failed: ${message}`);
    }
  }
}
