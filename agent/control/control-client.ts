/**
 * Asking the agent that runs on a state directory, through its control socket
 * (control-socket.ts): one request, one answer. `no-agent` when none listens there (no
 * socket, or one left by a killed agent), so the caller can work on the files instead.
 */
import { createConnection } from 'node:net';
import { join } from 'node:path';
import type { Answer } from './command.js';
import { ANSWER_MAX_BYTES, CONTROL_SOCKET } from './control-socket.js';

/** Bound on one request, the spool thread's own bound included. */
export const ASK_TIMEOUT_MS = 30_000;

export type AgentReply = { kind: 'answer'; answer: Answer } | { kind: 'no-agent' };

/** The control socket exists but cannot be used (permissions, a hung agent, a bad answer). */
export class ControlClientError extends Error {
  override name = 'ControlClientError';
}

export function askAgent(
  stateDir: string,
  name: string,
  args: unknown,
  timeoutMs = ASK_TIMEOUT_MS,
): Promise<AgentReply> {
  const path = join(stateDir, CONTROL_SOCKET);
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let buffered = '';
    let settled = false;
    const finish = (err: Error | undefined, reply?: AgentReply) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(
      () =>
        finish(
          new ControlClientError(
            `the agent did not answer on ${path} within ${timeoutMs / 1000} s`,
          ),
        ),
      timeoutMs,
    );
    socket.once('connect', () => {
      socket.write(`${JSON.stringify({ id: 1, name, args })}\n`);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        finish(undefined, { kind: 'no-agent' });
      } else if (err.code === 'EACCES' || err.code === 'EPERM') {
        finish(
          new ControlClientError(
            `permission denied on ${path}: the running agent answers root and its own user (sudo edge-agent spool …)`,
          ),
        );
      } else finish(new ControlClientError(`cannot reach the agent on ${path}: ${err.message}`));
    });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl >= 0) {
        try {
          const answer = JSON.parse(buffered.slice(0, nl)) as Answer;
          finish(undefined, { kind: 'answer', answer });
        } catch {
          finish(new ControlClientError(`the agent on ${path} sent an answer that is not JSON`));
        }
      } else if (buffered.length > ANSWER_MAX_BYTES * 2) {
        finish(new ControlClientError(`the agent on ${path} sent an answer too large`));
      }
    });
    socket.on('close', () =>
      finish(
        new ControlClientError(`the agent on ${path} closed the connection without an answer`),
      ),
    );
  });
}
