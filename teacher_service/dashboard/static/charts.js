// Small hand-written SVG charts for the dashboard: no library, no CDN, no build step.
//
// Every chart function returns a fresh <svg> element sized by its viewBox (CSS makes it
// fill its container's width). Charts are rebuilt from scratch on each render: the server
// downsamples every series, so a chart holds at most a few hundred points and rebuilding
// is cheaper and simpler than diffing.

export const SVG_NS = "http://www.w3.org/2000/svg";

/** Categorical colours (Tableau 10): one per series / environment. */
export const PALETTE = [
  "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
  "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
];

/** Points are drawn as dots on a line only when a series is this short (keeps the DOM small). */
const MAX_DOTS = 60;

/**
 * Make an SVG element. ``attrs`` values of null/undefined are skipped; ``children`` may hold
 * elements, strings (text nodes) and null/false (skipped).
 */
export function el(tag, attrs = {}, children = []) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== null && v !== undefined) node.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return node;
}

/** A <title> child: the browser shows it as a tooltip. */
function tip(text) {
  return el("title", {}, [text]);
}

const finite = (v) => typeof v === "number" && Number.isFinite(v);

/** [min, max] of the finite numbers in ``values`` (null when there are none). */
export function extent(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!finite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : null;
}

/** A "nice" tick step (1, 2 or 5 times a power of ten) for about ``count`` ticks. */
function tickStep(lo, hi, count) {
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const r = raw / mag;
  return (r >= 7.5 ? 10 : r >= 3.5 ? 5 : r >= 1.5 ? 2 : 1) * mag;
}

/** Widen [lo, hi] to a non-empty interval ending on tick steps. */
export function niceDomain(lo, hi, count = 5) {
  if (!finite(lo) || !finite(hi)) return [0, 1];
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const step = tickStep(lo, hi, count);
  return [Math.floor(lo / step + 1e-9) * step, Math.ceil(hi / step - 1e-9) * step];
}

/** About ``count`` round values inside [lo, hi]. */
export function niceTicks(lo, hi, count = 5) {
  if (!finite(lo) || !finite(hi) || hi <= lo) return finite(lo) ? [lo] : [];
  const step = tickStep(lo, hi, count);
  const ticks = [];
  for (let i = Math.ceil(lo / step - 1e-9); i * step <= hi + step * 1e-9; i++) {
    ticks.push(Number((i * step).toPrecision(12)));
  }
  return ticks;
}

/** Short human formatting of a number: 12, 0.25, 3.1k, 2.4M, 1.2e-5. */
export function fmt(v, digits = 3) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  // Number(...) drops trailing zeros of the fraction only (200k stays 200k)
  const short = (x) => String(Number(x.toPrecision(digits)));
  if (a >= 1e9) return `${short(v / 1e9)}G`;
  if (a >= 1e6) return `${short(v / 1e6)}M`;
  if (a >= 1e4) return `${short(v / 1e3)}k`;
  if (Number.isInteger(v)) return String(v);
  if (a !== 0 && a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(digits)));
}

/** Elapsed seconds as 45s, 12m, 3.5h. */
export function fmtDuration(s) {
  if (!finite(s)) return "–";
  if (Math.abs(s) < 120) return `${fmt(s, 2)}s`;
  if (Math.abs(s) < 7200) return `${fmt(s / 60, 2)}m`;
  return `${fmt(s / 3600, 2)}h`;
}

// Viridis, sampled: perceptually uniform and readable for colour-blind viewers.
const VIRIDIS = [
  [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37],
];

/** Colour of ``t`` in [0, 1] (clamped) on the viridis map. */
export function viridis(t) {
  const x = Math.min(1, Math.max(0, finite(t) ? t : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const c = VIRIDIS[i].map((a, k) => Math.round(a + (VIRIDIS[i + 1][k] - a) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/** Linear map from ``domain`` to ``range``. */
export function scale([d0, d1], [r0, r1]) {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  const f = (v) => r0 + (v - d0) * k;
  f.k = k; // pixels per data unit (signed): used to carry covariances into pixel space
  return f;
}

/**
 * The frame every xy chart shares: an <svg>, scales, axes with ticks and labels, and a
 * clipping <svg> viewport (``plot``) in which marks cannot spill over the axes.
 *
 * opts: width, height, x {domain, label, format}, y {domain, label, format},
 *       y2 (optional right axis, same fields), testid, title.
 */
function frame(opts) {
  const width = opts.width ?? 560;
  const height = opts.height ?? 240;
  // the top margin leaves room for a legend above the plot (never over the lines)
  const m = { top: opts.legendRow ? 26 : 14, right: opts.y2 ? 48 : 14, bottom: 36, left: 52 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const sx = scale(opts.x.domain, [0, pw]);
  const sy = scale(opts.y.domain, [ph, 0]);
  const sy2 = opts.y2 ? scale(opts.y2.domain, [ph, 0]) : null;
  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "chart",
    role: "img",
    "aria-label": opts.title ?? "",
  });
  const root = el("g", { transform: `translate(${m.left},${m.top})` });
  svg.append(root);

  const xf = opts.x.format ?? fmt;
  const yf = opts.y.format ?? fmt;
  const axes = el("g", { class: "axes" });
  root.append(axes);
  // grid lines and tick labels
  for (const t of niceTicks(...opts.y.domain, 4)) {
    axes.append(
      el("line", { x1: 0, x2: pw, y1: sy(t), y2: sy(t), class: "grid" }),
      el("text", { x: -6, y: sy(t), class: "tick", "text-anchor": "end", dy: "0.32em" }, [yf(t)]),
    );
  }
  for (const t of niceTicks(...opts.x.domain, Math.max(2, Math.round(pw / 90)))) {
    axes.append(
      el("line", { x1: sx(t), x2: sx(t), y1: ph, y2: ph + 4, class: "tickmark" }),
      el("text", { x: sx(t), y: ph + 16, class: "tick", "text-anchor": "middle" }, [xf(t)]),
    );
  }
  if (sy2) {
    const f2 = opts.y2.format ?? fmt;
    for (const t of niceTicks(...opts.y2.domain, 4)) {
      axes.append(
        el("text", { x: pw + 6, y: sy2(t), class: "tick", dy: "0.32em" }, [f2(t)]),
      );
    }
    axes.append(
      el("text", {
        class: "label", transform: `translate(${pw + 40},${ph / 2}) rotate(90)`,
        "text-anchor": "middle",
      }, [opts.y2.label ?? ""]),
    );
  }
  axes.append(
    el("line", { x1: 0, x2: pw, y1: ph, y2: ph, class: "axis" }),
    el("line", { x1: 0, x2: 0, y1: 0, y2: ph, class: "axis" }),
    el("text", { x: pw / 2, y: ph + 31, class: "label", "text-anchor": "middle" }, [
      opts.x.label ?? "",
    ]),
    el("text", {
      class: "label", transform: `translate(${-40},${ph / 2}) rotate(-90)`,
      "text-anchor": "middle",
    }, [opts.y.label ?? ""]),
  );
  // A nested <svg> clips what is drawn in it to the plot area, without needing unique ids.
  const plot = el("svg", { x: 0, y: 0, width: pw, height: ph, overflow: "hidden", class: "plot" });
  root.append(plot);
  return { svg, root, plot, sx, sy, sy2, pw, ph };
}

/** Legend entries (colour swatch + name) in a row at the top right of a frame. */
function legend(f, items) {
  const g = el("g", { class: "legend" });
  let x = f.pw;
  // laid out right to left so that it ends at the right edge
  for (const { name, color, dashed } of [...items].reverse()) {
    const w = 24 + 6.8 * String(name).length; // ~6.5px per character at 11px
    x -= w;
    g.append(
      el("line", {
        x1: x, x2: x + 14, y1: -14, y2: -14, stroke: color, "stroke-width": 2.5,
        "stroke-dasharray": dashed ? "4 3" : null,
      }),
      el("text", { x: x + 18, y: -14, dy: "0.32em", class: "legend-text" }, [String(name)]),
    );
  }
  f.root.append(g);
}

/** "M x y L x y ..." through the finite points; a null or non-finite value breaks the line. */
function linePath(xs, ys, sx, sy) {
  let d = "";
  let pen = false;
  let n = 0;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i];
    const y = ys[i];
    if (!finite(x) || !finite(y)) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
    pen = true;
    n++;
  }
  return { d, n };
}

/**
 * Line chart: one <path class="series" data-series=name data-points=n> per series.
 *
 * opts: width, height, title, x {label, format, domain?}, y {label, format, domain?},
 *       y2 {label, format, domain?} (series with ``axis: "right"`` use it),
 *       series [{name, x: [], y: [], color?, axis?, dashed?}], empty (text when no data).
 */
export function lineChart(opts) {
  const series = opts.series.map((s, i) => ({ color: PALETTE[i % PALETTE.length], ...s }));
  const left = series.filter((s) => s.axis !== "right");
  const right = series.filter((s) => s.axis === "right");
  const xs = extent(series.flatMap((s) => s.x));
  const yl = extent(left.flatMap((s) => s.y));
  const yr = extent(right.flatMap((s) => s.y));
  const xDomain = opts.x.domain ?? (xs ? niceDomain(xs[0], xs[1]) : [0, 1]);
  const yDomain = opts.y.domain ?? (yl ? niceDomain(yl[0], yl[1]) : [0, 1]);
  const y2 = right.length && opts.y2
    ? { ...opts.y2, domain: opts.y2.domain ?? (yr ? niceDomain(yr[0], yr[1]) : [0, 1]) }
    : null;
  const withLegend = series.length > 1 || Boolean(opts.legend);
  const f = frame({
    ...opts, legendRow: withLegend, x: { ...opts.x, domain: xDomain }, y: { ...opts.y, domain: yDomain }, y2,
  });
  let total = 0;
  for (const s of series) {
    const sy = s.axis === "right" && f.sy2 ? f.sy2 : f.sy;
    const { d, n } = linePath(s.x, s.y, f.sx, sy);
    total += n;
    const path = el("path", {
      d: d || "M0,0", // an empty series still gets its (invisible) path: one per series
      class: "series",
      fill: "none",
      stroke: color(s),
      "stroke-width": 2,
      "stroke-dasharray": s.dashed ? "5 3" : null,
      "stroke-linejoin": "round",
      "data-series": s.name,
      "data-points": n,
      visibility: n ? null : "hidden",
    }, [tip(s.name)]);
    f.plot.append(path);
    if (n && n <= MAX_DOTS) {
      const dots = el("g", { fill: color(s) });
      for (let i = 0; i < s.x.length; i++) {
        if (finite(s.x[i]) && finite(s.y[i])) {
          dots.append(el("circle", { cx: f.sx(s.x[i]).toFixed(1), cy: sy(s.y[i]).toFixed(1), r: 2.5 }));
        }
      }
      f.plot.append(dots);
    }
  }
  if (withLegend) legend(f, series.map((s) => ({ name: s.name, color: color(s), dashed: s.dashed })));
  if (!total && opts.empty) emptyText(f, opts.empty);
  return f.svg;
}

const color = (s) => s.color;

function emptyText(f, text) {
  f.root.append(
    el("text", { x: f.pw / 2, y: f.ph / 2, class: "empty", "text-anchor": "middle" }, [text]),
  );
}

/**
 * Half-axes and rotation (degrees) of the ``k``-sigma ellipse of a 2x2 covariance
 * ``[[a, b], [b, c]]`` given in pixel units.
 */
export function ellipseOf(a, b, c, k = 2) {
  const mid = (a + c) / 2;
  const rad = Math.sqrt(((a - c) / 2) ** 2 + b * b);
  const l1 = Math.max(0, mid + rad);
  const l2 = Math.max(0, mid - rad);
  const angle = (0.5 * Math.atan2(2 * b, a - c) * 180) / Math.PI;
  return { rx: k * Math.sqrt(l1), ry: k * Math.sqrt(l2), angle };
}

/** A small vertical colour bar for a [lo, hi] value range, at the right of a frame. */
function colorBar(f, [lo, hi], label, x) {
  const g = el("g", { class: "colorbar", transform: `translate(${x},0)` });
  const steps = 16;
  const h = f.ph / steps;
  for (let i = 0; i < steps; i++) {
    g.append(el("rect", {
      x: 0, y: f.ph - (i + 1) * h, width: 10, height: h + 0.5, fill: viridis((i + 0.5) / steps),
    }));
  }
  g.append(
    el("text", { x: 14, y: f.ph, class: "tick", dy: "0.32em" }, [fmt(lo)]),
    el("text", { x: 14, y: 0, class: "tick", dy: "0.32em" }, [fmt(hi)]),
    el("text", {
      class: "label", transform: `translate(${34},${f.ph / 2}) rotate(90)`, "text-anchor": "middle",
    }, [label]),
  );
  f.root.append(g);
}

/**
 * Scatter plot with optional ellipses (e.g. GMM components) and rectangles (e.g. RIAC
 * regions), coloured on the viridis map.
 *
 * opts: width, height, title, x {domain, label}, y {domain, label},
 *       points {x: [], y: [], c: []} with cDomain [lo, hi] and cLabel,
 *       ellipses [{cx, cy, cov: [a, b, c] (data units), c, weight, title}],
 *       rects [{x0, x1, y0, y1, c, title}], ellipseTestid, rectTestid.
 */
export function scatterChart(opts) {
  const f = frame({ ...opts, width: opts.width ?? 560, height: opts.height ?? 340 });
  // leave room for the colour bar: the frame's right margin is small, so draw it outside
  // the plot by shrinking nothing and widening the viewBox instead
  const cDomain = opts.cDomain ?? [0, 1];
  const norm = (v) => (cDomain[1] > cDomain[0] ? (v - cDomain[0]) / (cDomain[1] - cDomain[0]) : 0.5);

  for (const r of opts.rects ?? []) {
    const x0 = f.sx(r.x0);
    const x1 = f.sx(r.x1);
    const y0 = f.sy(r.y1);
    const y1 = f.sy(r.y0);
    f.plot.append(el("rect", {
      x: Math.min(x0, x1).toFixed(1), y: Math.min(y0, y1).toFixed(1),
      width: Math.abs(x1 - x0).toFixed(1), height: Math.abs(y1 - y0).toFixed(1),
      fill: viridis(norm(r.c)), "fill-opacity": 0.55, stroke: "#fff", "stroke-width": 1,
      "data-testid": opts.rectTestid ?? null, "data-value": r.c,
    }, [tip(r.title ?? fmt(r.c))]));
  }

  const pts = opts.points;
  if (pts) {
    const g = el("g", { class: "points" });
    for (let i = 0; i < pts.x.length; i++) {
      if (!finite(pts.x[i]) || !finite(pts.y[i])) continue;
      g.append(el("circle", {
        cx: f.sx(pts.x[i]).toFixed(1), cy: f.sy(pts.y[i]).toFixed(1), r: 2.6,
        fill: viridis(norm(pts.c?.[i])),
      }));
    }
    f.plot.append(g);
  }

  const wmax = Math.max(1e-12, ...(opts.ellipses ?? []).map((e) => e.weight ?? 1));
  for (const e of opts.ellipses ?? []) {
    // carry the covariance into pixel space (the axes may be scaled differently, and y
    // is flipped), then take its principal axes there
    const kx = f.sx.k;
    const ky = f.sy.k;
    const [a, b, c] = e.cov;
    const { rx, ry, angle } = ellipseOf(kx * kx * a, kx * ky * b, ky * ky * c, 2);
    const cx = f.sx(e.cx);
    const cy = f.sy(e.cy);
    if (![cx, cy, rx, ry, angle].every(finite)) continue;
    const col = viridis(norm(e.c));
    f.plot.append(el("ellipse", {
      cx: cx.toFixed(1), cy: cy.toFixed(1), rx: Math.max(rx, 0.5).toFixed(1), ry: Math.max(ry, 0.5).toFixed(1),
      transform: `rotate(${angle.toFixed(2)} ${cx.toFixed(1)} ${cy.toFixed(1)})`,
      fill: col, "fill-opacity": (0.06 + 0.3 * (e.weight ?? 1) / wmax).toFixed(3),
      stroke: col, "stroke-width": 2, class: "ellipse",
      "data-testid": opts.ellipseTestid ?? null, "data-weight": e.weight, "data-value": e.c,
    }, [tip(e.title ?? "")]));
    f.plot.append(el("circle", { cx: cx.toFixed(1), cy: cy.toFixed(1), r: 2, fill: "#222" }));
  }

  if (opts.cLabel) {
    // widen the viewBox to make room for the colour bar on the right
    const vb = f.svg.getAttribute("viewBox").split(" ").map(Number);
    f.svg.setAttribute("viewBox", `0 0 ${vb[2] + 56} ${vb[3]}`);
    colorBar(f, cDomain, opts.cLabel, f.pw + 12);
  }
  if (opts.empty && !(pts?.x.length) && !(opts.rects?.length)) emptyText(f, opts.empty);
  return f.svg;
}

/**
 * Histogram from bin ``edges`` (n + 1) and ``counts`` (n): one <rect class="bar"
 * data-count> per bin.
 */
export function histogram(opts) {
  const { edges, counts } = opts;
  const lo = edges.length ? edges[0] : 0;
  const hi = edges.length ? edges[edges.length - 1] : 1;
  const cmax = Math.max(1, ...counts);
  const f = frame({
    ...opts,
    width: opts.width ?? 560,
    height: opts.height ?? 240,
    x: { ...opts.x, domain: lo < hi ? [lo, hi] : niceDomain(lo, hi) },
    y: { ...opts.y, domain: niceDomain(0, cmax, 4) },
  });
  for (let i = 0; i < counts.length; i++) {
    const x0 = f.sx(edges[i]);
    const x1 = f.sx(edges[i + 1]);
    const y = f.sy(counts[i]);
    f.plot.append(el("rect", {
      x: (x0 + 0.5).toFixed(1), y: y.toFixed(1), width: Math.max(0.5, x1 - x0 - 1).toFixed(1),
      height: Math.max(0, f.ph - y).toFixed(1), class: "bar", fill: opts.color ?? PALETTE[0],
      "data-count": counts[i],
    }, [tip(`[${fmt(edges[i])}, ${fmt(edges[i + 1])}): ${counts[i]}`)]));
  }
  if (!counts.length && opts.empty) emptyText(f, opts.empty);
  return f.svg;
}

/** A heat map of a 2-D array (rows top to bottom), e.g. PAIRED's goal distribution. */
export function heatmap(grid, { cell = 12, testid = null, label = "" } = {}) {
  const h = grid.length;
  const w = h ? Math.max(...grid.map((r) => r.length)) : 0;
  // scaled from the smallest to the largest value: a near-uniform map still shows its shape
  const [vmin, vmax] = extent(grid.flat()) ?? [0, 1];
  const norm = (v) => (vmax > vmin ? (v - vmin) / (vmax - vmin) : 0.5);
  const svg = el("svg", {
    viewBox: `0 0 ${w} ${h}`, width: w * cell, height: h * cell, class: "heatmap",
    "data-testid": testid, "shape-rendering": "crispEdges", role: "img", "aria-label": label,
  });
  grid.forEach((row, y) => row.forEach((v, x) => {
    svg.append(el("rect", { x, y, width: 1, height: 1, fill: viridis(norm(v)) }, [tip(fmt(v))]));
  }));
  return svg;
}

// MiniGrid's own colours: black floor, grey walls, green goal, red agent.
const TILE_COLORS = {
  "#": "#7f7f7f", G: "#2ca02c", L: "#ff7f0e", K: "#e6c200", D: "#8b5a2b",
};
// agent triangle pointing right, rotated per direction character
const AGENT_ROT = { ">": 0, v: 90, "<": 180, "^": 270 };

/**
 * A level (ASCII rows joined by "\n", see env_generators/levels.py) as a small SVG image.
 * One rect per horizontal run of walls keeps the DOM small even for 51 x 51 mazes.
 */
export function levelImage(ascii, { size = 120, title = "", testid = "level-image" } = {}) {
  const rows = String(ascii ?? "").split("\n").filter((r) => r.length);
  const h = rows.length;
  const w = h ? Math.max(...rows.map((r) => r.length)) : 0;
  const side = Math.max(w, h, 1);
  const svg = el("svg", {
    viewBox: `0 0 ${w} ${h}`, width: (size * w) / side, height: (size * h) / side,
    class: "level", "data-testid": testid, "data-width": w, "data-height": h,
    "shape-rendering": "crispEdges", role: "img", "aria-label": title,
  }, [title ? tip(title) : null, el("rect", { x: 0, y: 0, width: w, height: h, fill: "#111" })]);
  rows.forEach((row, y) => {
    let x = 0;
    while (x < row.length) {
      const ch = row[x];
      let run = 1;
      while (x + run < row.length && row[x + run] === ch) run++;
      if (ch === "#") {
        svg.append(el("rect", { x, y, width: run, height: 1, fill: TILE_COLORS["#"] }));
      } else if (ch === "G" || ch === "L") {
        svg.append(el("rect", { x, y, width: run, height: 1, fill: TILE_COLORS[ch] }));
      } else if (ch === "D") {
        for (let i = 0; i < run; i++) {
          svg.append(el("rect", {
            x: x + i + 0.1, y: y + 0.1, width: 0.8, height: 0.8, fill: "none",
            stroke: TILE_COLORS.D, "stroke-width": 0.2,
          }));
        }
      } else if (ch === "K") {
        for (let i = 0; i < run; i++) {
          svg.append(el("circle", { cx: x + i + 0.5, cy: y + 0.4, r: 0.22, fill: "none", stroke: TILE_COLORS.K, "stroke-width": 0.12 }),
            el("rect", { x: x + i + 0.45, y: y + 0.55, width: 0.1, height: 0.35, fill: TILE_COLORS.K }));
        }
      } else if (ch in AGENT_ROT) {
        for (let i = 0; i < run; i++) {
          const cx = x + i + 0.5;
          const cy = y + 0.5;
          svg.append(el("path", {
            d: `M${cx + 0.38},${cy} L${cx - 0.3},${cy - 0.3} L${cx - 0.3},${cy + 0.3} Z`,
            fill: "#e53935", transform: `rotate(${AGENT_ROT[ch]} ${cx} ${cy})`,
            "shape-rendering": "auto",
          }));
        }
      }
      x += run;
    }
  });
  return svg;
}
