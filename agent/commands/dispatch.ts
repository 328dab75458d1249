/**
 * The edge-agent command line without the process around it: parse, dispatch to
 * agent/commands/<name>.ts, and turn a failure into plain lines and an exit code
 * (report-failure.ts). Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
 * Only light modules are imported up front, so `run` and `simulate` catch their signals
 * before the heavy ones load.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { EXIT_OK, EXIT_USAGE, type CommandOutput, type OptionValues as Values } from './common.js';
import { StopRequests } from './stop-requests.js';

type Options = NonNullable<ParseArgsConfig['options']>;

interface Command {
  summary: string;
  usage: string;
  options: Options;
  /** Help text per option, in the order shown. */
  help: Record<string, string>;
  positionals?: { min: number; max: number };
  run(values: Values, positionals: string[], output: CommandOutput): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  run: {
    summary: 'run the agent as a service',
    usage: 'edge-agent run [--config FILE]',
    options: { config: { type: 'string', short: 'c' } },
    help: { config: 'configuration file (default /etc/edge-agent/config.yaml)' },
    run: async (v, _p, output) => {
      // Before the command's modules load: a SIGTERM from here on ends in a clean stop.
      const stops = StopRequests.install();
      return (await import('./run.js')).runCommand(v, { output, stops });
    },
  },
  simulate: {
    summary: 'run the whole agent on simulated hardware',
    usage: [
      'edge-agent simulate [--config FILE] [--broker URL] [--gateway ID]',
      '           [--state-dir DIR] [--duration SECONDS] [--window MS] [--raw]',
      '           [--homeassistant] [--sparkplug] [--verbose]',
      '       edge-agent simulate --sensors N [--latency MS] [--interval MS] [options]',
    ].join('\n'),
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
      homeassistant: { type: 'boolean' },
      sparkplug: { type: 'boolean' },
      verbose: { type: 'boolean', short: 'v' },
    },
    help: {
      config:
        'configuration file (default: built-in scenario); every sensor in it runs against the simulator: I²C, serial and 1-Wire devices at the addresses it names, Modbus TCP and HTTP devices on 127.0.0.1 in place of their hosts',
      broker: 'MQTT broker URL (default: an embedded broker on 127.0.0.1:1883 or a free port)',
      gateway: 'gateway id (default sim)',
      'state-dir': 'directory for the spool (default ./state)',
      duration: 'stop gracefully after this many seconds (default: run until a signal)',
      window: 'aggregation window in ms',
      sensors: 'N simulated network sensors (the concurrency demo; not with --config)',
      latency: 'their response latency in ms (default 100)',
      interval: 'their sampling interval in ms (default 1000)',
      raw: 'publish raw readings too',
      homeassistant:
        'publish Home Assistant MQTT discovery and per-sensor state topics (homeassistant.enabled)',
      sparkplug:
        'also publish Sparkplug B (spBv1.0/<group>/…/<gateway>; group from the config or edge-agent)',
      verbose: 'log at debug level, with the list of sensors at start-up',
    },
    run: async (v, _p, output) => {
      const stops = StopRequests.install();
      return (await import('./simulate.js')).simulateCommand(v, { output, stops });
    },
  },
  'check-config': {
    summary: 'validate a configuration file',
    usage: 'edge-agent check-config FILE',
    options: {},
    help: {},
    positionals: { min: 1, max: 1 },
    run: async (_v, p, output) =>
      (await import('./check-config.js')).checkConfigCommand(p[0], output),
  },
  scan: {
    summary: 'list the I²C addresses that answer, and the likely chip',
    usage: 'edge-agent scan [--bus N] [--simulated]',
    options: { bus: { type: 'string' }, simulated: { type: 'boolean' } },
    help: {
      bus: 'I²C bus number (default 1)',
      simulated: 'scan the simulator’s default bus instead of hardware',
    },
    run: async (v) => (await import('./scan.js')).scanCommand(v),
  },
  keygen: {
    summary: 'make an Ed25519 key pair for signing remote configs',
    usage: 'edge-agent keygen [--out DIR] [--name NAME]',
    options: { out: { type: 'string' }, name: { type: 'string' } },
    help: {
      out: 'directory for the two files (default: the current directory)',
      name: 'file name without extension: NAME.key (private), NAME.pem (public); default edge-agent-operator',
    },
    run: async (v, _p, output) => (await import('./keygen.js')).keygenCommand(v, output),
  },
  tail: {
    summary: 'subscribe and print telemetry, flagging gaps and duplicates',
    usage: 'edge-agent tail [--broker URL] [--gateway ID] [--prefix P] [--json]',
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
    run: async (v) => (await import('./tail.js')).tailCommand(v),
  },
  spool: {
    summary: 'the spool, live or stopped: status, dead letters, requeue or delete them',
    usage:
      'edge-agent spool status | dead-letters | requeue SEQ…|--all | drop SEQ…|--all | forget-limit [--state-dir DIR] [--config FILE] [--json]',
    options: {
      'state-dir': { type: 'string' },
      config: { type: 'string', short: 'c' },
      all: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    help: {
      'state-dir':
        'the agent’s state directory (default: the configuration’s spool.dir, else $STATE_DIRECTORY, else ./state)',
      config:
        'configuration file giving spool.dir (default /etc/edge-agent/config.yaml if present)',
      all: 'requeue or drop every dead letter',
      json: 'status and dead-letters as JSON',
    },
    positionals: { min: 1, max: 10_000 },
    run: async (v, p, output) => (await import('./spool.js')).spoolCommand(v, p, output),
  },
  remote: {
    summary: 'send gateways a command over MQTT and print their answers',
    usage: [
      'edge-agent remote --broker URL --gateway ID[,ID…] [options] <command>',
      '  commands: status | config get | reload | read SENSOR | announce',
      '            | config push FILE --key KEY [--version N] [--group G]',
      '            | spool [ACTION [SEQ…]] [--all] | call NAME [JSON-ARGS]',
    ].join('\n'),
    options: {
      broker: { type: 'string' },
      gateway: { type: 'string' },
      prefix: { type: 'string' },
      protocol: { type: 'string' },
      username: { type: 'string' },
      'password-file': { type: 'string' },
      'ca-file': { type: 'string' },
      timeout: { type: 'string' },
      key: { type: 'string' },
      version: { type: 'string' },
      group: { type: 'string' },
      all: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    help: {
      broker: 'MQTT broker URL (mqtt://, mqtts://, ws://, wss://)',
      gateway: 'gateway id, or several separated by commas',
      prefix: 'topic prefix of the gateways (default edge)',
      protocol: '5 (MQTT 5, default) or 4 (MQTT 3.1.1)',
      username: 'MQTT user name',
      'password-file':
        'file holding the MQTT password (else $EDGE_AGENT_MQTT_PASSWORD; never on the command line)',
      'ca-file': 'CA certificate (PEM) for mqtts://',
      timeout: 'seconds to wait for the answers (default 10; config push 180)',
      key: 'config push: the Ed25519 private key that signs (edge-agent keygen)',
      version: 'config push: the version, above every one pushed before (default: now, in seconds)',
      group: 'config push: sign for this fleet group (fleet.group) instead of each gateway',
      all: 'spool: every dead letter',
      json: 'print one JSON object per gateway',
    },
    positionals: { min: 1, max: 10_000 },
    run: async (v, p, output) => (await import('./remote.js')).remoteCommand(v, p, output),
  },
};

/** Help lines stay within this many columns (a terminal's default width). */
const HELP_WIDTH = 80;

/** `text` in lines of at most `width` columns, cut at spaces. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  return [...lines, line];
}

function commandHelp(name: string, cmd: Command): string {
  const lines = [`edge-agent ${name}: ${cmd.summary}\n\nusage: ${cmd.usage}`];
  const opts = Object.entries(cmd.help);
  if (opts.length > 0) lines.push('\noptions:');
  const all = [...opts, ['help', 'show this help']];
  const column = Math.max(12, ...all.map(([opt]) => opt.length));
  const indent = ' '.repeat(column + 5);
  for (const [opt, text] of all) {
    const [first, ...rest] = wrap(text, HELP_WIDTH - indent.length);
    lines.push(`  --${opt.padEnd(column)} ${first}`);
    for (const more of rest) lines.push(`${indent}${more}`);
  }
  return lines.join('\n');
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

/** The whole command line: argv without `node cli.js`; returns the exit code. */
export async function runCli(argv: string[], output: CommandOutput): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    output.stdout(mainHelp() + '\n');
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (name === '--version' || name === '-V') {
    const { AGENT_VERSION } = await import('../version.js');
    output.stdout(`${AGENT_VERSION}\n`);
    return EXIT_OK;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    output.stderr(`edge-agent: unknown command "${name}"\n\n${mainHelp()}\n`);
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
    output.stderr(`edge-agent ${name}: ${(err as Error).message}\nusage: ${cmd.usage}\n`);
    return EXIT_USAGE;
  }
  if (values.help) {
    output.stdout(commandHelp(name, cmd) + '\n');
    return EXIT_OK;
  }
  const pos = cmd.positionals;
  if (pos && (positionals.length < pos.min || positionals.length > pos.max)) {
    output.stderr(`edge-agent ${name}: wrong number of arguments\nusage: ${cmd.usage}\n`);
    return EXIT_USAGE;
  }
  try {
    return await cmd.run(values, positionals, output);
  } catch (err) {
    const { describeFailure } = await import('./report-failure.js');
    const failure = describeFailure(err, name, cmd.usage);
    output.stderr(failure.text);
    return failure.code;
  }
}
