#!/usr/bin/env node
/**
 * edge-agent command line. Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
 * Each subcommand lives in agent/commands/; this file only parses and dispatches.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from './config/load.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  UsageError,
  type OptionValues as Values,
} from './commands/common.js';

type Options = NonNullable<ParseArgsConfig['options']>;

const OPERATOR_ERRORS = new Set(['SpoolInUseError', 'MqttSetupError', 'I2CBusOpenError']);

interface Command {
  summary: string;
  usage: string;
  options: Options;
  /** Help text per option, in the order shown. */
  help: Record<string, string>;
  positionals?: { min: number; max: number };
  run(values: Values, positionals: string[]): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  run: {
    summary: 'run the agent as a service',
    usage: 'edge-agent run [--config FILE]',
    options: { config: { type: 'string', short: 'c' } },
    help: { config: 'configuration file (default /etc/edge-agent/config.yaml)' },
    run: async (v) => (await import('./commands/run.js')).runCommand(v),
  },
  simulate: {
    summary: 'run the whole agent on simulated hardware',
    usage:
      'edge-agent simulate [--config FILE] [--broker URL] [--gateway ID] [--state-dir DIR] [--duration SECONDS] [--window MS] [--sensors N --latency MS --interval MS]',
    options: {
      config: { type: 'string', short: 'c' },
      broker: { type: 'string' },
      gateway: { type: 'string' },
      'state-dir': { type: 'string' },
      duration: { type: 'string' },
      window: { type: 'string' },
      sensors: { type: 'string' },
      latency: { type: 'string' },
      interval: { type: 'string' },
      raw: { type: 'boolean' },
    },
    help: {
      config:
        'configuration file; its sensors run against the simulator (default: built-in scenario)',
      broker: 'MQTT broker URL (default: an embedded broker on 127.0.0.1:1883 or a free port)',
      gateway: 'gateway id (default sim)',
      'state-dir': 'directory for the spool (default ./state)',
      duration: 'stop gracefully after this many seconds (default: run until a signal)',
      window: 'aggregation window in ms',
      sensors: 'N simulated network sensors (the concurrency demo)',
      latency: 'their response latency in ms (default 100)',
      interval: 'their sampling interval in ms (default 1000)',
      raw: 'publish raw readings too',
    },
    run: async (v) => (await import('./commands/simulate.js')).simulateCommand(v),
  },
  'check-config': {
    summary: 'validate a configuration file',
    usage: 'edge-agent check-config FILE',
    options: {},
    help: {},
    positionals: { min: 1, max: 1 },
    run: async (_v, p) => (await import('./commands/check-config.js')).checkConfigCommand(p[0]),
  },
  scan: {
    summary: 'list the I²C addresses that answer, and the likely chip',
    usage: 'edge-agent scan [--bus N] [--simulated]',
    options: { bus: { type: 'string' }, simulated: { type: 'boolean' } },
    help: {
      bus: 'I²C bus number (default 1)',
      simulated: 'scan the simulator’s default bus instead of hardware',
    },
    run: async (v) => (await import('./commands/scan.js')).scanCommand(v),
  },
  tail: {
    summary: 'subscribe and print telemetry, flagging gaps and duplicates',
    usage: 'edge-agent tail [--broker URL] [--gateway ID]',
    options: {
      broker: { type: 'string' },
      gateway: { type: 'string' },
      prefix: { type: 'string' },
      json: { type: 'boolean' },
    },
    help: {
      broker: 'MQTT broker URL (default mqtt://127.0.0.1:1883)',
      gateway: 'gateway id (default: all, +)',
      prefix: 'topic prefix (default edge)',
      json: 'print one JSON object per line',
    },
    run: async (v) => (await import('./commands/tail.js')).tailCommand(v),
  },
};

function commandHelp(name: string, cmd: Command): string {
  const lines = [`${cmd.summary}\n\nusage: ${cmd.usage}`];
  const opts = Object.entries(cmd.help);
  if (opts.length > 0) {
    lines.push('\noptions:');
    for (const [opt, text] of opts) lines.push(`  --${opt.padEnd(12)} ${text}`);
  }
  lines.push(`  --${'help'.padEnd(12)} show this help`);
  return `edge-agent ${name}: ${lines.join('\n')}`;
}

function mainHelp(): string {
  const rows = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(13)} ${c.summary}`);
  return [
    'edge-agent — sensors to MQTT, concurrently, without loss',
    '',
    'usage: edge-agent <command> [options]',
    '',
    'commands:',
    ...rows,
    '',
    'edge-agent <command> --help shows the options of a command.',
    'exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(mainHelp() + '\n');
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (name === '--version' || name === '-V') {
    const { AGENT_VERSION } = await import('./version.js');
    process.stdout.write(`${AGENT_VERSION}\n`);
    return EXIT_OK;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`edge-agent: unknown command "${name}"\n\n${mainHelp()}\n`);
    return EXIT_USAGE;
  }
  let values: Values;
  let positionals: string[];
  try {
    const parsed = parseArgs({
      args: rest,
      options: { ...cmd.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: cmd.positionals !== undefined,
      strict: true,
    });
    values = parsed.values as Values;
    positionals = parsed.positionals;
  } catch (err) {
    process.stderr.write(`edge-agent ${name}: ${(err as Error).message}\nusage: ${cmd.usage}\n`);
    return EXIT_USAGE;
  }
  if (values.help) {
    process.stdout.write(commandHelp(name, cmd) + '\n');
    return EXIT_OK;
  }
  const pos = cmd.positionals;
  if (pos && (positionals.length < pos.min || positionals.length > pos.max)) {
    process.stderr.write(`edge-agent ${name}: wrong number of arguments\nusage: ${cmd.usage}\n`);
    return EXIT_USAGE;
  }
  try {
    return await cmd.run(values, positionals);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.source}: invalid configuration\n${err.problems.join('\n')}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`edge-agent ${name}: ${err.message}\nusage: ${cmd.usage}\n`);
      return EXIT_USAGE;
    }
    // Problems an operator can fix (state dir in use, unreadable TLS file, missing bus) are
    // told plainly; anything else is a bug and keeps its stack.
    const e = err as Error;
    process.stderr.write(
      `edge-agent ${name}: ${OPERATOR_ERRORS.has(e.name) ? e.message : (e.stack ?? String(err))}\n`,
    );
    return EXIT_FAILURE;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Normally nothing is left and the process ends by itself; a handle some library keeps
    // open must not turn a finished command into a hang (systemd would SIGKILL it).
    setTimeout(() => process.exit(code), 1000).unref();
  },
  (err: unknown) => {
    process.stderr.write(`edge-agent: ${String(err)}\n`);
    process.exitCode = EXIT_FAILURE;
  },
);
