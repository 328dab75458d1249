/**
 * The V8 heap settings the agent runs with: the systemd unit puts them in NODE_OPTIONS,
 * `npm start` passes them, and bench/sampling runs every agent process with them.
 *
 * Why: with its defaults on a machine with a few GB of RAM, V8 lets the old generation
 * grow to about four times what is live before a full collection, and keeps 16 MB
 * semi-spaces. At 10,000 sensors × 1 Hz the agent keeps ≈ 45 MB live, and peaked at
 * 156–193 MB RSS that way; with a 256 MB old-space limit V8 uses its small-heap growing
 * factor, and 8 MB semi-spaces halve the young generation: 133–138 MB at the same CPU
 * (33 % of a core) and scheduling lag (p99 4–5 ms) — docs/benchmarks/sampling.md.
 * 256 MB is a ceiling, not a budget: the spool lives in SQLite and the ring in a
 * SharedArrayBuffer, both outside it. Raise it for configurations far beyond 10,000
 * sensors; if it is ever reached, V8 aborts, systemd restarts the agent and nothing
 * spooled is lost.
 */
export const AGENT_NODE_FLAGS = ['--max-old-space-size=256', '--max-semi-space-size=8'] as const;
