// Small line charts drawn as SVG from samples the page keeps.

import { h, svg } from './dom.js';

const WIDTH = 320;
const HEIGHT = 90;
const PAD = 4;

/** A chart of `points` ([seconds, value] pairs) titled `title`, values shown by `format`. */
export function lineChart(title, points, format = String) {
  const box = svg('svg', {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    width: WIDTH,
    height: HEIGHT,
    role: 'img',
    'aria-label': title,
  });
  box.append(svg('rect', { x: 0, y: 0, width: WIDTH, height: HEIGHT, class: 'chart-bg' }));
  const last = points.length ? points[points.length - 1][1] : null;
  if (points.length >= 2) {
    const t0 = points[0][0];
    const span = Math.max(points[points.length - 1][0] - t0, 1e-9);
    const values = points.map((p) => p[1]);
    const low = Math.min(...values);
    const high = Math.max(...values);
    const range = high - low;
    const path = points
      .map(([t, v], i) => {
        const x = PAD + ((t - t0) / span) * (WIDTH - 2 * PAD);
        const y = range ? HEIGHT - PAD - ((v - low) / range) * (HEIGHT - 2 * PAD) : HEIGHT / 2;
        return `${i ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`;
      })
      .join(' ');
    box.append(svg('path', { d: path, class: 'chart-line' }));
    const label = (y, text) => {
      const el = svg('text', { x: WIDTH - PAD, y, class: 'chart-axis', 'text-anchor': 'end' });
      el.textContent = text;
      return el;
    };
    box.append(label(12, format(high)));
    if (range) box.append(label(HEIGHT - 6, format(low)));
  }
  return h(
    'figure',
    { class: 'chart' },
    box,
    h('figcaption', {}, title + ': ', h('strong', {}, last === null ? '…' : format(last))),
  );
}

/** Named values of a Prometheus text exposition (unlabelled samples only). */
export function parseMetrics(text) {
  const values = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*) (\S+)/.exec(line);
    if (match) values[match[1]] = Number(match[2]);
  }
  return values;
}
