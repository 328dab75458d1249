/**
 * The spool's operator commands, as transport-agnostic Commands (command.ts): the control
 * socket serves them to `edge-agent spool …` on a live agent, and MQTT may serve the same
 * objects. Every answer is JSON, bounded (lists cut at DEAD_LETTER_LIST_MAX, with the total)
 * and free of secrets (figures and seqs, no batch bodies).
 *
 * - `spool/status`: the spool's figures (as `edge-agent spool status` shows them) and the
 *   packet limits the publisher learned from the broker's refusals.
 * - `spool/dead-letters`: the dead letters, oldest first.
 * - `spool/requeue` {seqs | all}: dead letters back into the publish queue under their own
 *   seqs, published without a restart; the learned packet limits are forgotten too, so they
 *   go at full size (an operator requeues after raising the broker's limit).
 * - `spool/drop` {seqs | all}: dead letters deleted for good.
 * - `spool/forget-limit`: forget the learned packet limits only.
 * A seq that is not a dead letter refuses the whole request: nothing changes.
 */
import { z } from 'zod';
import type { LearnedLimits } from '../publish/publisher.js';
import {
  DEAD_LETTER_LIST_MAX,
  missingMessage,
  type DeadLetterSelection,
  type SpoolFigures,
} from '../publish/spool/operator.js';
import type { SpoolPort } from '../publish/spool/spool-port.js';
import { CommandRefused, type Command } from './command.js';

/** Seqs one request may name. */
export const SEQS_PER_REQUEST_MAX = 10_000;

/** What the spool commands use of the running pipeline. */
export interface SpoolCommandParts {
  spool: Pick<SpoolPort, 'figures' | 'listDeadLetters' | 'changeDeadLetters'>;
  publisher: { learnedLimits(): LearnedLimits; forgetLearnedLimits(): LearnedLimits };
}

/** `spool/status`'s result. */
export interface LiveSpoolFigures extends SpoolFigures {
  /** Payload limits learned from the broker's refusals (empty when none). */
  learnedLimits: LearnedLimits;
}

/** `spool/requeue`'s and `spool/drop`'s result. */
export interface DeadLetterChangeResult {
  count: number;
  /** The seqs changed (the first DEAD_LETTER_LIST_MAX). */
  seqs: number[];
  /** requeue: the learned limits forgotten (empty when there were none). */
  forgotten?: LearnedLimits;
}

const noArgs = z.object({}).strict();

const selection = z
  .object({
    seqs: z.array(z.number().int().positive()).min(1).max(SEQS_PER_REQUEST_MAX).optional(),
    all: z.literal(true).optional(),
  })
  .strict()
  .refine((a) => (a.seqs === undefined) !== (a.all === undefined), {
    message: 'give seqs (a list of positive whole numbers) or all: true, not both',
  })
  .transform((a): DeadLetterSelection => (a.all ? { all: true } : { seqs: a.seqs! }));

const listArgs = z
  .object({ limit: z.number().int().min(1).max(DEAD_LETTER_LIST_MAX).optional() })
  .strict();

export function spoolCommands(parts: SpoolCommandParts): Command<unknown>[] {
  const { spool, publisher } = parts;
  const change =
    (kind: 'requeue' | 'drop') =>
    async (sel: DeadLetterSelection): Promise<DeadLetterChangeResult> => {
      const done = await spool.changeDeadLetters(kind, sel);
      if (!done.ok) throw new CommandRefused(missingMessage(done));
      const result: DeadLetterChangeResult = {
        count: done.seqs.length,
        seqs: done.seqs.slice(0, DEAD_LETTER_LIST_MAX),
      };
      if (kind === 'requeue') result.forgotten = publisher.forgetLearnedLimits();
      return result;
    };
  const commands = [
    command({
      name: 'spool/status',
      summary: "the spool's depth, oldest batch, drops, dead letters and learned packet limits",
      args: noArgs,
      run: async (): Promise<LiveSpoolFigures> => ({
        ...(await spool.figures()),
        learnedLimits: publisher.learnedLimits(),
      }),
    }),
    command({
      name: 'spool/dead-letters',
      summary: 'the batches the broker refused for good, oldest first',
      args: listArgs,
      run: (a) => spool.listDeadLetters(a.limit ?? DEAD_LETTER_LIST_MAX),
    }),
    command({
      name: 'spool/requeue',
      summary:
        'put dead letters back into the publish queue under their own seqs; forgets learned packet limits',
      args: selection,
      run: change('requeue'),
    }),
    command({
      name: 'spool/drop',
      summary: 'delete dead letters for good (counted)',
      args: selection,
      run: change('drop'),
    }),
    command({
      name: 'spool/forget-limit',
      summary: 'forget the packet limits learned from the broker: try full-size messages again',
      args: noArgs,
      run: () => Promise.resolve({ forgotten: publisher.forgetLearnedLimits() }),
    }),
  ];
  return commands;
}

/** A Command with its argument type checked here, stored as Command<unknown>. */
export function command<A>(c: Command<A>): Command<unknown> {
  return c as Command<unknown>;
}
