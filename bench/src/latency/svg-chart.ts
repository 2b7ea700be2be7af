/** One line of a chart: points in data units, drawn in `color` with an optional SVG dash pattern. */
export interface ChartSeries {
  label: string;
  color: string;
  dash?: string;
  points: { x: number; y: number }[];
}

export interface ChartPanel {
  title: string;
  xLabel: string;
  yLabel: string;
  series: ChartSeries[];
}

const width = 460;
const height = 300;
const margin = { left: 60, right: 16, top: 30, bottom: 44 };
const legendLine = 16;

const xmlText = (s: string) => s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
const fmt = (n: number) =>
  n >= 1000 ? `${(n / 1000).toFixed(n >= 10_000 ? 0 : 1)}k` : n >= 10 ? n.toFixed(0) : n.toFixed(1);

/** About five round ticks from 0 to at least `max`: steps of 1, 2 or 5 times a power of ten. */
function ticks(max: number): number[] {
  const raw = (max > 0 ? max : 1) / 5;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? raw;
  return Array.from({ length: Math.ceil((max > 0 ? max : 1) / step) + 1 }, (_, i) => i * step);
}

function panel(p: ChartPanel): string {
  const offsetX = 0;
  const points = p.series
    .flatMap((s) => s.points)
    .filter((pt) => Number.isFinite(pt.x) && Number.isFinite(pt.y));
  const xs = ticks(Math.max(0, ...points.map((pt) => pt.x)));
  const ys = ticks(Math.max(0, ...points.map((pt) => pt.y)));
  const xMax = xs[xs.length - 1] ?? 1;
  const yMax = ys[ys.length - 1] ?? 1;
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const sx = (x: number) => offsetX + margin.left + (x / xMax) * plotW;
  const sy = (y: number) => margin.top + plotH - (y / yMax) * plotH;
  const out: string[] = [
    `<text x="${offsetX + width / 2}" y="18" text-anchor="middle" font-weight="bold">${xmlText(p.title)}</text>`,
    ...xs.map(
      (x) =>
        `<line x1="${sx(x)}" y1="${margin.top}" x2="${sx(x)}" y2="${margin.top + plotH}" stroke="#eee"/>` +
        `<text x="${sx(x)}" y="${margin.top + plotH + 14}" text-anchor="middle">${fmt(x)}</text>`,
    ),
    ...ys.map(
      (y) =>
        `<line x1="${offsetX + margin.left}" y1="${sy(y)}" x2="${offsetX + margin.left + plotW}" y2="${sy(y)}" stroke="#eee"/>` +
        `<text x="${offsetX + margin.left - 6}" y="${sy(y) + 4}" text-anchor="end">${fmt(y)}</text>`,
    ),
    `<rect x="${offsetX + margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`,
    `<text x="${offsetX + margin.left + plotW / 2}" y="${height - 8}" text-anchor="middle">${xmlText(p.xLabel)}</text>`,
    `<text transform="translate(${offsetX + 14} ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">${xmlText(p.yLabel)}</text>`,
  ];
  for (const s of p.series) {
    const valid = s.points
      .filter((pt) => Number.isFinite(pt.x) && Number.isFinite(pt.y))
      .sort((a, b) => a.x - b.x);
    if (valid.length === 0) continue;
    const path = valid
      .map((pt, i) => `${i === 0 ? "M" : "L"}${sx(pt.x).toFixed(1)},${sy(pt.y).toFixed(1)}`)
      .join(" ");
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : "";
    out.push(`<path d="${path}" fill="none" stroke="${s.color}" stroke-width="1.8"${dash}/>`);
    out.push(
      ...valid.map(
        (pt) => `<circle cx="${sx(pt.x).toFixed(1)}" cy="${sy(pt.y).toFixed(1)}" r="2.5" fill="${s.color}"/>`,
      ),
    );
  }
  return out.join("\n");
}

/**
 * Panels in a grid of `columns`, with the first panel's series as the legend below them, as a
 * standalone SVG document: lines and labels only, no script, no external font or stylesheet. Axes
 * start at 0; each panel scales to its data.
 */
export function renderChart(panels: ChartPanel[], caption: string, columns = 2): string {
  const legend = panels[0]?.series ?? [];
  const rows = Math.ceil(panels.length / columns);
  const totalW = width * Math.min(columns, panels.length);
  const gridH = height * rows;
  const totalH = gridH + 30 + legend.length * legendLine;
  const items = legend.map((s, i) => {
    const y = gridH + 22 + i * legendLine;
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : "";
    return (
      `<line x1="${margin.left}" y1="${y - 4}" x2="${margin.left + 30}" y2="${y - 4}" stroke="${s.color}" stroke-width="1.8"${dash}/>` +
      `<text x="${margin.left + 38}" y="${y}">${xmlText(s.label)}</text>`
    );
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${totalW}" height="${totalH}" viewBox="0 0 ${totalW} ${totalH}" font-family="sans-serif" font-size="11">`,
    // The chart's name for screen readers and file browsers: its panels' titles.
    `<title>${xmlText(panels.map((p) => p.title).join("; "))}</title>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...panels.map(
      (p, i) =>
        `<g transform="translate(${(i % columns) * width} ${Math.floor(i / columns) * height})">\n${panel(p)}\n</g>`,
    ),
    `<text x="${totalW - 8}" y="${totalH - 6}" text-anchor="end" fill="#666">${xmlText(caption)}</text>`,
    ...items,
    "</svg>",
    "",
  ].join("\n");
}
