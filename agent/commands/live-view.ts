/**
 * The concurrency demo's live view: one block of figures redrawn in place on a terminal,
 * or one plain line per interval when stdout is a pipe or a file.
 */
import type { Pipeline } from '../pipeline.js';

export interface LiveViewOptions {
  intervalMs: number;
  /** Target per-sensor rate, to show achieved / target. */
  targetHz: number;
  out?: NodeJS.WriteStream;
}

export interface LiveFigures {
  readingsPerSec: number;
  sensors: number;
  achievedHz: number;
  lagP50Ms: number;
  lagP99Ms: number;
  loopP99Ms: number;
  ringFill: number;
  ringCapacity: number;
  ringDropped: number;
  spoolDepth: number;
  rssMb: number;
}

export function startLiveView(pipeline: Pipeline, opts: LiveViewOptions): { stop(): void } {
  const out = opts.out ?? process.stdout;
  const tty = out.isTTY === true;
  let lastWritten = pipeline.liveFigures().written;
  let lastAt = performance.now();
  let drawnLines = 0;

  const tick = () => {
    const now = performance.now();
    const f = pipeline.liveFigures();
    const perSec = ((f.written - lastWritten) * 1000) / Math.max(1, now - lastAt);
    lastWritten = f.written;
    lastAt = now;
    const fig: LiveFigures = { ...f, readingsPerSec: perSec };
    if (tty) {
      const lines = render(fig, opts.targetHz);
      out.write(
        (drawnLines > 0 ? `\x1b[${drawnLines}A` : '') + lines.map((l) => `\x1b[2K${l}\n`).join(''),
      );
      drawnLines = lines.length;
    } else {
      out.write(
        `readings/s=${fig.readingsPerSec.toFixed(0)} sensors=${fig.sensors} rate/sensor=${fig.achievedHz.toFixed(3)}Hz ` +
          `lag.p50=${fig.lagP50Ms.toFixed(1)}ms lag.p99=${fig.lagP99Ms.toFixed(1)}ms loop.p99=${fig.loopP99Ms.toFixed(1)}ms ` +
          `ring=${fig.ringFill}/${fig.ringCapacity} dropped=${fig.ringDropped} spool=${fig.spoolDepth} rss=${fig.rssMb.toFixed(0)}MB\n`,
      );
    }
  };
  const timer = setInterval(tick, opts.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

function render(f: LiveFigures, targetHz: number): string[] {
  const pct =
    targetHz > 0
      ? ` (${((100 * f.achievedHz) / targetHz).toFixed(1)} % of ${targetHz.toFixed(2)} Hz)`
      : '';
  return [
    `edge-agent simulate — ${f.sensors} sensors`,
    `  readings/s          ${f.readingsPerSec.toFixed(0)}`,
    `  per-sensor rate     ${f.achievedHz.toFixed(3)} Hz${pct}`,
    `  scheduling lag      p50 ${f.lagP50Ms.toFixed(1)} ms   p99 ${f.lagP99Ms.toFixed(1)} ms`,
    `  event-loop delay    p99 ${f.loopP99Ms.toFixed(1)} ms`,
    `  ring                ${f.ringFill} / ${f.ringCapacity}   dropped ${f.ringDropped}`,
    `  spool depth         ${f.spoolDepth} batches`,
    `  RSS                 ${f.rssMb.toFixed(0)} MB`,
  ];
}
