/**
 * The V8 heap settings the agent runs with: the systemd unit puts them in NODE_OPTIONS,
 * `npm start` passes them, and bench/sampling runs every agent process with them.
 *
 * Why: with its defaults on a machine with a few GB of RAM, V8 lets the old generation
 * grow to several times what is live before a full collection, and keeps 16 MB
 * semi-spaces. An old-space limit puts V8 on its small-heap growing factor, and 2 MB
 * semi-spaces keep the young generation near what the main thread's short-lived garbage
 * needs, which is what a small gateway wants: memory before CPU. With thousands of sensors
 * larger semi-spaces trade memory for fewer scavenges (the figures are in
 * docs/benchmarks/footprint.md and sampling.md). The flags apply to the aggregation
 * worker's heap too. 256 MB is a ceiling, not a budget: the spool lives in SQLite and the
 * ring in a SharedArrayBuffer, both outside it. Raise it for configurations far beyond
 * 10,000 sensors; if it is ever reached, V8 aborts, systemd restarts the agent and nothing
 * spooled is lost.
 */
export const AGENT_NODE_FLAGS = ['--max-old-space-size=256', '--max-semi-space-size=2'] as const;
