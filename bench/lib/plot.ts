/**
 * A small dependency-free SVG line chart for benchmark results: linear or log axes, one
 * line per series with markers and a legend, an optional horizontal reference line.
 * Enough for a README figure; not a charting library.
 */

export interface Series {
  name: string;
  points: [number, number][];
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  logX?: boolean;
  logY?: boolean;
  width?: number;
  height?: number;
  reference?: { y: number; label: string };
}

const COLOURS = ['#d62728', '#ff7f0e', '#1f77b4', '#2ca02c', '#9467bd', '#8c564b'];
const MARGIN = { left: 78, right: 150, top: 44, bottom: 56 };

const escapeXml = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Round-number ticks: powers of ten on a log axis, 1-2-5 steps on a linear one. */
export function axisTicks(min: number, max: number, log: boolean): number[] {
  if (log) {
    const ticks: number[] = [];
    for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
      ticks.push(10 ** e);
    }
    return ticks;
  }
  const span = max - min || 1;
  const raw = span / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let v = Math.floor(min / step) * step; v <= max + step / 2 && ticks.length < 50; v += step) {
    ticks.push(Number(v.toPrecision(12)));
  }
  return ticks;
}

export function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1000) return v.toLocaleString('en-US');
  if (a >= 1) return String(Number(v.toPrecision(6)));
  return String(Number(v.toPrecision(3)));
}

/** Map a data value to a pixel along one axis. */
export function scale(
  domain: [number, number],
  range: [number, number],
  log: boolean,
): (v: number) => number {
  const f = log ? Math.log10 : (v: number) => v;
  const [d0, d1] = [f(domain[0]), f(domain[1])];
  const k = d1 === d0 ? 0 : (range[1] - range[0]) / (d1 - d0);
  return (v) => range[0] + (f(v) - d0) * k;
}

export function lineChartSvg(o: LineChartOptions): string {
  const width = o.width ?? 760;
  const height = o.height ?? 440;
  const all = o.series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]).concat(o.reference ? [o.reference.y] : []);
  const xTicks = axisTicks(Math.min(...xs), Math.max(...xs), o.logX ?? false);
  const yTicks = axisTicks(Math.min(...ys), Math.max(...ys), o.logY ?? false);
  const xDomain: [number, number] = [xTicks[0], xTicks[xTicks.length - 1]];
  const yDomain: [number, number] = [yTicks[0], yTicks[yTicks.length - 1]];
  const plotRight = width - MARGIN.right;
  const plotBottom = height - MARGIN.bottom;
  const x = scale(xDomain, [MARGIN.left, plotRight], o.logX ?? false);
  const y = scale(yDomain, [plotBottom, MARGIN.top], o.logY ?? false);
  const px = (v: number) => x(v).toFixed(1);
  const py = (v: number) => y(v).toFixed(1);

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(o.title)}</text>`,
  );
  for (const t of xTicks) {
    out.push(
      `<line x1="${px(t)}" y1="${MARGIN.top}" x2="${px(t)}" y2="${plotBottom}" stroke="#e5e5e5"/>`,
      `<text x="${px(t)}" y="${plotBottom + 18}" text-anchor="middle">${formatTick(t)}</text>`,
    );
  }
  for (const t of yTicks) {
    out.push(
      `<line x1="${MARGIN.left}" y1="${py(t)}" x2="${plotRight}" y2="${py(t)}" stroke="#e5e5e5"/>`,
      `<text x="${MARGIN.left - 8}" y="${py(t)}" text-anchor="end" dominant-baseline="middle">${formatTick(t)}</text>`,
    );
  }
  out.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotRight - MARGIN.left}" height="${plotBottom - MARGIN.top}" fill="none" stroke="#333"/>`,
    `<text x="${(MARGIN.left + plotRight) / 2}" y="${height - 14}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`,
    `<text transform="translate(20 ${(MARGIN.top + plotBottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(o.yLabel)}</text>`,
  );
  if (o.reference) {
    out.push(
      `<line x1="${MARGIN.left}" y1="${py(o.reference.y)}" x2="${plotRight}" y2="${py(o.reference.y)}" stroke="#555" stroke-dasharray="6 4"/>`,
      `<text x="${MARGIN.left + 6}" y="${Number(py(o.reference.y)) - 6}" fill="#555">${escapeXml(o.reference.label)}</text>`,
    );
  }
  o.series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    if (pts.length > 1) {
      out.push(
        `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${pts.map(([a, b]) => `${px(a)},${py(b)}`).join(' ')}"/>`,
      );
    }
    for (const [a, b] of pts) {
      out.push(`<circle cx="${px(a)}" cy="${py(b)}" r="3.5" fill="${colour}"/>`);
    }
    const ly = MARGIN.top + 10 + i * 20;
    out.push(
      `<line x1="${plotRight + 14}" y1="${ly}" x2="${plotRight + 38}" y2="${ly}" stroke="${colour}" stroke-width="2"/>`,
      `<text x="${plotRight + 44}" y="${ly}" dominant-baseline="middle">${escapeXml(s.name)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
