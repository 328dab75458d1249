/**
 * The physical limit of one shared wire: every sensor's round is a chain of steps that either
 * move bytes on the wire (those take turns) or wait for a conversion (those overlap), and at
 * most `inFlight` rounds may run at once (the 1-Wire read limiter). The limit is the
 * finishing time of an ideal schedule of those chains on a wire with no software cost.
 */
import { i2cWireMs } from '../../drivers/i2c/wire-time.js';

/** Bytes on the wire (ms it holds the wire), or a wait that other sensors may overlap. */
export type Step = { readonly wireMs: number } | { readonly waitMs: number };

export interface Chain {
  readonly name: string;
  readonly steps: readonly Step[];
}

export interface WireSchedule {
  /** When the last chain finishes, starting all at 0. */
  makespanMs: number;
  /** Σ of all wire steps: no schedule can be shorter. */
  wireMs: number;
  /** The longest single chain: no schedule can be shorter either. */
  longestChainMs: number;
}

const stepMs = (s: Step): number => ('wireMs' in s ? s.wireMs : s.waitMs);

/**
 * List schedule: whenever the wire is free it goes to the ready chain with the most work
 * left (critical path first), waits run at once, and a chain is admitted when a running one
 * has finished and fewer than `inFlight` run. For the chains here (a few distinct chips)
 * it meets the lower bound max(Σ wire, longest chain, the end-game of identical chips).
 */
export function scheduleWire(chains: readonly Chain[], inFlight = Infinity): WireSchedule {
  interface State {
    chain: Chain;
    next: number;
    readyAt: number;
    left: number;
  }
  const wireMs = chains.reduce(
    (sum, c) => sum + c.steps.reduce((a, s) => a + ('wireMs' in s ? s.wireMs : 0), 0),
    0,
  );
  const totals = chains.map((c) => c.steps.reduce((a, s) => a + stepMs(s), 0));
  const waiting: State[] = chains
    .map((chain, i) => ({ chain, next: 0, readyAt: 0, left: totals[i] }))
    .sort((a, b) => b.left - a.left);
  /** Chains whose next step is on the wire. */
  const running: State[] = [];
  /** Finishing times whose slot has not been handed on yet (time order matters). */
  const finishes: number[] = [];
  let wireFreeAt = 0;
  let makespanMs = 0;

  /** Runs the waits at the head of a chain; a finished chain leaves a finishing time. */
  const runWaits = (s: State): void => {
    while (s.next < s.chain.steps.length && 'waitMs' in s.chain.steps[s.next]) {
      const ms = stepMs(s.chain.steps[s.next]);
      s.readyAt += ms;
      s.left -= ms;
      s.next++;
    }
    if (s.next < s.chain.steps.length) return;
    running.splice(running.indexOf(s), 1);
    finishes.push(s.readyAt);
    finishes.sort((a, b) => a - b);
    makespanMs = Math.max(makespanMs, s.readyAt);
  };
  const start = (at: number): void => {
    const s = waiting.shift()!;
    s.readyAt = at;
    running.push(s);
    runWaits(s);
  };
  for (let i = 0; i < Math.min(inFlight, chains.length); i++) start(0);

  // Each pass moves one wire step or hands on one slot: bounded by steps + chains.
  const bound = chains.reduce((a, c) => a + c.steps.length, 0) + chains.length;
  for (let guard = 0; guard <= bound && (running.length > 0 || finishes.length > 0); guard++) {
    const earliest =
      running.length > 0
        ? Math.max(wireFreeAt, Math.min(...running.map((s) => s.readyAt)))
        : Number.POSITIVE_INFINITY;
    if (finishes.length > 0 && finishes[0] <= earliest) {
      // A slot frees before the wire's next use: the next chain starts then.
      const at = finishes.shift()!;
      if (waiting.length > 0) start(at);
      continue;
    }
    const ready = running.filter((s) => s.readyAt <= earliest);
    const pick = ready.reduce((a, b) => (b.left > a.left ? b : a));
    const ms = stepMs(pick.chain.steps[pick.next]);
    wireFreeAt = earliest + ms;
    pick.readyAt = wireFreeAt;
    pick.left -= ms;
    pick.next++;
    runWaits(pick);
  }
  return { makespanMs, wireMs, longestChainMs: Math.max(0, ...totals) };
}

// ───────────────────────────── I²C ─────────────────────────────

// One transfer: 9 clocks per byte (8 bits + ACK/NACK), the address byte(s) included, plus
// START and STOP, plus a repeated START for a write-then-read, at the Pi's default 100 kHz
// (i2cWireMs, drivers/i2c/wire-time.ts — the drivers time conversions with it, and the
// simulated bus charges the same clocks without the repeated START: 10 µs).

const w = (bytes: number, repeatedStart = false): Step => ({
  wireMs: i2cWireMs(bytes, repeatedStart),
});

/** Conversion times: typical (what the simulator models) and datasheet maximum. */
export interface Conversion {
  typMs: number;
  maxMs: number;
}

/** What each I²C driver puts on the wire per round, and the conversion it waits for. */
export const I2C_ROUNDS = {
  /** One-shot: config write (addr, ptr, 2 B); conversion; config read until OS = 1; T read. */
  tmp102: {
    conversion: { typMs: 26, maxMs: 35 },
    chain: (c: number): Step[] => [w(4), { waitMs: c }, w(5, true), w(5, true)],
  },
  /** Converts continuously (no one-shot mode): one 2-byte read of the last conversion. */
  lm75: { conversion: { typMs: 0, maxMs: 0 }, chain: (): Step[] => [w(5, true)] },
  /** Converts continuously (no one-shot mode): one 2-byte read of T_A. */
  mcp9808: { conversion: { typMs: 0, maxMs: 0 }, chain: (): Step[] => [w(5, true)] },
  /** Single shot, high repeatability, no clock stretching: command; 12.5 / 15 ms; 6 bytes. */
  sht3x: {
    conversion: { typMs: 12.5, maxMs: 15 },
    chain: (c: number): Step[] => [w(3), { waitMs: c }, w(7)],
  },
  /** Forced mode, T/P/H ×1: ctrl_meas write; 8.0 / 9.3 ms; status read; 8-byte burst. */
  bme280: {
    conversion: { typMs: 1 + 2 + 2.5 + 2.5, maxMs: 1.25 + 2.3 + 2.875 + 2.875 },
    chain: (c: number): Step[] => [w(3), { waitMs: c }, w(4, true), w(11, true)],
  },
  /** Si70xx, RH + T: 0xF5; RH 10 + T 7 ms (12 + 10.8 max); 3-byte read; 0xE0 (2 bytes). */
  si7021: {
    conversion: { typMs: 17, maxMs: 22.8 },
    chain: (c: number): Step[] => [w(2), { waitMs: c }, w(4), w(5, true)],
  },
} as const satisfies Record<
  string,
  { conversion: Conversion; chain: (conversionMs: number) => Step[] }
>;

export type I2CChip = keyof typeof I2C_ROUNDS;

export function i2cChains(chips: readonly I2CChip[], which: keyof Conversion): Chain[] {
  return chips.map((chip, i) => ({
    name: `${chip}#${i}`,
    steps: I2C_ROUNDS[chip].chain(I2C_ROUNDS[chip].conversion[which]),
  }));
}

// ───────────────────────────── RS-485 Modbus RTU ─────────────────────────────

export interface RtuLine {
  baudRate: number;
  /** Start + data + parity + stop bits: 10 for 8N1, 11 for 8E1 / 8O1 / 8N2. */
  bitsPerChar: number;
  /** The slave's turnaround after it has seen the end of the request. */
  turnaroundMs: number;
  slaves: number;
  /** Request and reply lengths of one read, characters. */
  requestChars: number;
  replyChars: number;
}

/**
 * N transactions take turns on the line: request; the slave sees the frame end after 3.5
 * silent characters; its turnaround; reply; and 3.5 silent characters before the next
 * request (not after the last).
 */
export function rtuLineMs(l: RtuLine): { transactionMs: number; lineMs: number; charMs: number } {
  const charMs = (l.bitsPerChar * 1000) / l.baudRate;
  const silenceMs = l.baudRate > 19_200 ? 1.75 : 3.5 * charMs;
  const transactionMs =
    l.requestChars * charMs + silenceMs + l.turnaroundMs + l.replyChars * charMs;
  return {
    transactionMs,
    lineMs: l.slaves * transactionMs + (l.slaves - 1) * silenceMs,
    charMs,
  };
}

// ───────────────────────────── 1-Wire ─────────────────────────────

/**
 * The kernel's w1_therm read of one DS18B20 (external power): reset and presence (~0.96 ms),
 * Match ROM + Convert T (80 bits), the conversion with the bus lock released, then reset,
 * Match ROM + Read Scratchpad (80 bits) and 72 scratchpad bits. A 1-Wire time slot is
 * ~70 µs (60 µs slot + recovery).
 */
export const W1_SLOT_MS = 0.07;
export const W1_RESET_MS = 0.96;

export function ds18b20Chain(conversionMs: number, withWire = true): Step[] {
  if (!withWire) return [{ waitMs: conversionMs }];
  return [
    { wireMs: W1_RESET_MS + 80 * W1_SLOT_MS },
    { waitMs: conversionMs },
    { wireMs: W1_RESET_MS + 152 * W1_SLOT_MS },
  ];
}
