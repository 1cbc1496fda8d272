// The autocurriculum dashboard: the experiment list, and one experiment's live view.
//
// Plain ES2020 module, no framework, no build step, nothing fetched from outside the
// teacher service. Data comes from the service's /v1 API:
//   GET /v1/experiments                          the list (polled)
//   GET /v1/experiments/{id}/events              server-sent "frame" events (DashboardFrame)
//   GET /v1/experiments/{id}/export?format=jsonl the history, for the Export button
// The stream is read with fetch() rather than EventSource, because only fetch can send
// the bearer token in a header: the token never appears in a URL sent to the server.

import {
  PALETTE, fmt, fmtDuration, extent, niceDomain, lineChart, scatterChart, histogram,
  heatmap, levelImage,
} from "./charts.js";
import { readEvents } from "./sse.js";

// ----------------------------------------------------------------------------- settings
const params = new URLSearchParams(location.search);
/** Most points per series the server sends (it downsamples). */
const MAX_POINTS = clampInt(params.get("max_points"), 10, 2048, 300);
/** Seconds between the server's checks for news. */
const INTERVAL = clampNum(params.get("interval"), 0.1, 60, 1);
/** At most one render per this many ms, whatever the frame rate. */
const RENDER_EVERY_MS = 500;
/** List page refresh period. */
const LIST_EVERY_MS = 5000;
/** Reconnect backoff: first delay, cap. */
const BACKOFF_MS = [500, 15000];
/** No byte (frame or keep-alive comment) for this long: the stream is presumed dead. */
const STALL_MS = 45000;
const TOKEN_KEY = "autocurriculum.token";

function clampInt(v, lo, hi, dflt) {
  const n = Number.parseInt(v ?? "", 10);
  return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : dflt;
}
function clampNum(v, lo, hi, dflt) {
  const n = Number.parseFloat(v ?? "");
  return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : dflt;
}

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** An HTML element: ``h("td", {class: "num"}, "12")``. */
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** API URLs resolve against the page's own address (so a path prefix keeps working). */
const apiUrl = (path) => new URL(path, document.baseURI).toString();
const expPath = (id, suffix = "") => `v1/experiments/${encodeURIComponent(id)}${suffix}`;

// -------------------------------------------------------------------------------- token
/**
 * Take a token handed over in the address fragment (``#token=...``), keep it in this
 * tab's sessionStorage, and remove it from the address bar and the history entry.
 */
function adoptTokenFromFragment() {
  // parsed by hand: URLSearchParams would turn a "+" of the token into a space
  const parts = location.hash.replace(/^#/, "").split("&").filter(Boolean);
  const i = parts.findIndex((p) => p.startsWith("token="));
  if (i < 0) return;
  let token = parts[i].slice("token=".length);
  try {
    token = decodeURIComponent(token);
  } catch {
    // not percent-encoded: taken as it is
  }
  parts.splice(i, 1);
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  const rest = parts.join("&");
  history.replaceState(history.state, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
}

const getToken = () => sessionStorage.getItem(TOKEN_KEY) || "";
const authHeaders = () => {
  const t = getToken();
  return t ? { Authorization: `Bearer ${t}` } : {};
};

class ApiError extends Error {
  constructor(status, detail) {
    super(detail ? `${status}: ${detail}` : `HTTP ${status}`);
    this.status = status;
  }
}
class Unauthorised extends ApiError {}

/** Error detail of a JSON error answer ({"detail": ...}), or its status text. */
async function detailOf(resp) {
  try {
    const body = await resp.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
  } catch {
    return resp.statusText;
  }
}

/** fetch() with the token; throws Unauthorised on 401 and ApiError on other failures. */
async function apiFetch(path, init = {}) {
  const resp = await fetch(apiUrl(path), {
    cache: "no-store",
    ...init,
    headers: { Accept: "application/json", ...authHeaders(), ...(init.headers ?? {}) },
  });
  if (resp.status === 401) throw new Unauthorised(401, await detailOf(resp));
  if (!resp.ok) throw new ApiError(resp.status, await detailOf(resp));
  return resp;
}

// One pending prompt at a time; every caller that hit a 401 waits on the same promise.
let tokenWaiters = null;

/**
 * Show the token prompt and resolve once the user submitted a token. ``rejected`` says
 * the current token was refused (then the prompt says so).
 */
function askForToken(rejected) {
  setStatus("unauthorised", "unauthorised");
  const overlay = $("token-overlay");
  const err = $("token-error");
  err.hidden = !(rejected && getToken());
  err.textContent = "That token was refused. Try again.";
  overlay.hidden = false;
  $("token-input").focus();
  if (!tokenWaiters) {
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    tokenWaiters = { promise, resolve };
  }
  return tokenWaiters.promise;
}

function setupTokenForm() {
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = $("token-input").value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token-input").value = "";
    $("token-overlay").hidden = true;
    setStatus("connecting", "connecting…");
    const w = tokenWaiters;
    tokenWaiters = null;
    w?.resolve();
  });
}

// ------------------------------------------------------------------------------- status
/** The connection badge: state is idle / connecting / live / reconnecting / unauthorised / error. */
function setStatus(state, text, seq) {
  const s = $("live-status");
  s.dataset.state = state;
  if (seq !== undefined) s.dataset.seq = String(seq);
  s.textContent = text;
}

// ---------------------------------------------------------------------------- list page
function spaceSummary(space) {
  if (!space) return "";
  if (space.kind === "box") return `box · ${space.dims.length}d (${space.dims.map((d) => d.name).join(", ")})`;
  if (space.kind === "discrete") return `discrete · ${space.tasks.length} tasks`;
  if (space.kind === "level") {
    const cfg = Object.entries(space.config ?? {}).map(([k, v]) => `${k}=${v}`).join(" ");
    return `level · ${space.generator}${cfg ? ` (${cfg})` : ""}`;
  }
  return space.kind;
}

async function showList() {
  $("list-view").hidden = false;
  $("crumb").textContent = "experiments";
  document.title = "experiments · autocurriculum";
  let rejected = false;
  for (;;) {
    try {
      const resp = await apiFetch("v1/experiments");
      renderList(await resp.json());
      rejected = false;
      setStatus("live", `updated ${new Date().toLocaleTimeString()}`);
    } catch (e) {
      if (e instanceof Unauthorised) {
        await askForToken(rejected);
        rejected = true;
        continue; // at once, with the new token
      }
      setStatus("reconnecting", `list unavailable (${e.message}); retrying`);
    }
    await sleep(LIST_EVERY_MS);
  }
}

function renderList(body) {
  const rows = (body.data ?? []).map((x) => {
    const c = x.counters ?? {};
    const link = `?exp=${encodeURIComponent(x.id)}`;
    return h("tr", { "data-testid": "experiment-row", "data-id": x.id, "data-name": x.name },
      h("td", {}, h("a", { href: link, "data-testid": "experiment-link" }, x.name)),
      h("td", { "data-testid": "experiment-teacher-kind" }, x.teacher?.kind ?? ""),
      h("td", { "data-testid": "experiment-space-kind", title: spaceSummary(x.space) }, spaceSummary(x.space)),
      h("td", { class: "num" }, fmt(c.tasks_issued)),
      h("td", { class: "num", "data-testid": "experiment-reports" }, fmt(c.reports_accepted)),
      h("td", { class: "num" }, fmt(c.outstanding)),
      h("td", { class: "num" }, fmt(c.expired)),
      h("td", {}, x.created_at ? new Date(x.created_at * 1000).toLocaleString() : ""),
    );
  });
  $("experiment-rows").replaceChildren(...rows);
  $("list-note").textContent = rows.length
    ? `${body.count ?? rows.length} experiment(s). Open one for its live view.`
    : "No experiments yet: create one with POST /v1/experiments.";
}

// -------------------------------------------------------------------------- SSE stream
/**
 * A self-reconnecting stream of dashboard frames. Calls ``onFrame(frame, seq)`` and keeps
 * the status badge up to date; on a 401 it shows the token prompt and goes on once a
 * token is given.
 */
class FrameStream {
  constructor(expId, onFrame, onFatal) {
    this.expId = expId;
    this.onFrame = onFrame;
    this.onFatal = onFatal;
    this.stopped = false;
    this.controller = null;
    this.lastSeq = null;
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
  }

  async run() {
    let delay = BACKOFF_MS[0];
    let rejected = false;
    while (!this.stopped) {
      this.controller = new AbortController();
      let watchdog = null;
      const kick = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => this.controller.abort(), STALL_MS);
      };
      try {
        setStatus(this.lastSeq === null ? "connecting" : "reconnecting",
          this.lastSeq === null ? "connecting…" : "reconnecting…", this.lastSeq ?? undefined);
        const q = `?interval=${INTERVAL}&max_points=${MAX_POINTS}`;
        const resp = await apiFetch(expPath(this.expId, `/events${q}`), {
          headers: { Accept: "text/event-stream" },
          signal: this.controller.signal,
        });
        rejected = false;
        kick();
        await readEvents(resp.body.getReader(), (ev) => {
          if (ev.event !== "frame") return;
          let frame;
          try {
            frame = JSON.parse(ev.data);
          } catch {
            return; // a torn event: the next one will do
          }
          delay = BACKOFF_MS[0]; // a frame arrived: the connection is healthy again
          this.lastSeq = frame.seq ?? Number(ev.id);
          setStatus("live", `live · seq ${this.lastSeq}`, this.lastSeq);
          this.onFrame(frame);
        }, kick);
      } catch (e) {
        if (this.stopped) return;
        if (e instanceof Unauthorised) {
          await askForToken(rejected);
          rejected = true;
          continue;
        }
        if (e instanceof ApiError && e.status === 404) {
          this.onFatal(`Unknown experiment ${JSON.stringify(this.expId)}.`);
          setStatus("error", "not found");
          return;
        }
        // network failure, aborted by the watchdog, or a 5xx: retry below
      } finally {
        clearTimeout(watchdog);
      }
      if (this.stopped) return;
      // The stream ended or failed: try again after a jittered, capped, doubling delay.
      const wait = delay * (0.75 + 0.5 * Math.random());
      setStatus("reconnecting", `reconnecting in ${(wait / 1000).toFixed(1)}s…`, this.lastSeq ?? undefined);
      await sleep(wait);
      delay = Math.min(BACKOFF_MS[1], delay * 2);
    }
  }
}

// ---------------------------------------------------------------------------- live page
const COUNTERS = [
  ["tasks_issued", "tasks", "counter-tasks"],
  ["reports_accepted", "reports", "counter-reports"],
  ["outstanding", "outstanding", "counter-outstanding"],
  ["expired", "expired", "counter-expired"],
  ["duplicates", "duplicates", "counter-duplicates"],
  ["late_reports", "late reports", "counter-late"],
  ["events", "events", "counter-events"],
];

/** One experiment's live page: frames in, throttled renders out. */
class LiveView {
  constructor(expId) {
    this.expId = expId;
    this.frame = null; // latest frame received
    this.rendered = null; // frame last drawn
    this.lastRender = 0;
    this.timer = null;
    this.teacher = null; // the teacher panel (made for the first frame's teacher kind)
    this.stream = new FrameStream(expId, (f) => this.receive(f), (msg) => this.fatal(msg));
  }

  start() {
    $("live-view").hidden = false;
    $("crumb").textContent = this.expId;
    $("export-button").addEventListener("click", () => this.export());
    this.buildCounters();
    this.stream.run();
  }

  fatal(msg) {
    const e = $("live-error");
    e.textContent = msg;
    e.hidden = false;
  }

  buildCounters() {
    const cards = COUNTERS.map(([key, label, testid]) =>
      h("div", { class: "card" },
        h("div", { class: "card-label" }, label),
        h("div", { class: "card-value", id: testid, "data-testid": testid, "data-value": 0 }, "–")));
    cards.push(h("div", { class: "card wide", "data-testid": "throughput" },
      h("div", { class: "card-label" }, "throughput"),
      h("div", { class: "card-value" },
        h("span", { id: "throughput-tasks", "data-testid": "throughput-tasks" }, "–"), " tasks/s · ",
        h("span", { id: "throughput-reports", "data-testid": "throughput-reports" }, "–"), " reports/s")));
    $("counters").replaceChildren(...cards);
  }

  /** A new frame: keep only the latest, draw it at most every RENDER_EVERY_MS. */
  receive(frame) {
    this.frame = frame;
    if (this.timer !== null) return;
    const wait = Math.max(0, this.lastRender + RENDER_EVERY_MS - performance.now());
    this.timer = setTimeout(() => {
      // rendering in an animation frame: nothing is drawn while the tab is hidden
      requestAnimationFrame(() => {
        this.timer = null;
        this.lastRender = performance.now();
        this.render();
      });
    }, wait);
  }

  render() {
    const f = this.frame;
    if (!f || f === this.rendered) return;
    const first = this.rendered === null;
    this.rendered = f;
    if (first) {
      $("exp-title").textContent = f.name;
      $("exp-teacher").textContent = f.teacher_kind;
      $("exp-space").textContent = spaceSummary(f.space);
      $("crumb").textContent = f.name;
      document.title = `${f.name} · autocurriculum`;
      $("teacher-kind").textContent = f.teacher_kind;
    }
    this.renderCounters(f);
    this.renderReturn(f);
    this.renderSolveRate(f);
    if (!this.teacher || this.teacher.kind !== f.teacher_kind) {
      this.teacher = makeTeacherPanel(f, () => this.teacher.update(this.rendered));
      $("teacher-body").replaceChildren(this.teacher.node);
    }
    this.teacher.update(f);
    this.renderRecentLevels(f);
    renderKV($("hyperparameters"), f.hyperparameters ?? {}, "hp");
    $("live-view").dataset.seq = String(f.seq); // what is drawn (the badge says what arrived)
  }

  /** The last levels issued (any level-space teacher, and box spaces whose parametric
   * generator builds levels), redrawn only when a newer one arrived. */
  renderRecentLevels(f) {
    const recent = f.recent_levels ?? [];
    $("recent-panel").hidden = recent.length === 0;
    const key = recent.map((lv) => lv.index).join(",");
    if (key === this.recentKey) return;
    this.recentKey = key;
    const params = (p) => Object.entries(p ?? {}).map(([k, v]) => `${k} ${fmt(v)}`).join(" · ");
    $("recent-body").replaceChildren(h("div", { class: "levels" }, recent.map((lv) =>
      h("figure", { class: "level-card", "data-testid": "recent-level" },
        levelImage(lv.level, { size: 100, title: `task ${lv.index}`, testid: "recent-level-image" }),
        h("figcaption", {}, `#${lv.index} · ${lv.mode}`, lv.agent_id ? ` · ${lv.agent_id}` : null,
          lv.params ? h("br") : null, params(lv.params))))));
  }

  renderCounters(f) {
    for (const [key, , testid] of COUNTERS) {
      const v = f.counters?.[key];
      const node = $(testid);
      node.textContent = fmt(v);
      node.dataset.value = String(v ?? 0);
    }
    const t = f.throughput ?? {};
    $("throughput-tasks").textContent = fmt(t.tasks_per_s ?? 0, 3);
    $("throughput-reports").textContent = fmt(t.reports_per_s ?? 0, 3);
    $("throughput-reports").dataset.value = String(t.reports_per_s ?? 0);
  }

  renderReturn(f) {
    const p = f.progress ?? {};
    const xs = p.reports ?? [];
    const series = [{ name: "mean return", x: xs, y: p.mean_return ?? [], color: PALETTE[0] }];
    // success rate only when some report said whether it succeeded
    if ((p.success_rate ?? []).some((v) => v !== null)) {
      series.push({ name: "success rate", x: xs, y: p.success_rate, color: PALETTE[4], axis: "right", dashed: true });
    }
    const bucket = p.bucket > 1 ? ` (1 point = ${p.bucket} reports)` : "";
    $("return-chart").replaceChildren(lineChart({
      title: "mean return by reports",
      x: { label: `reports${bucket}` },
      y: { label: "mean return" },
      y2: { label: "success rate", domain: [0, 1] },
      series,
      empty: "no reports yet",
    }));
  }

  renderSolveRate(f) {
    const evs = f.evaluations ?? [];
    // x = training env steps when every result says them, else time since the first result
    const steps = evs.length > 0 && evs.every((e) => e.env_steps.length && e.env_steps.every((s) => s !== null));
    const t0 = Math.min(...evs.flatMap((e) => e.t));
    const series = evs.map((e, i) => ({
      name: e.env,
      x: steps ? e.env_steps : e.t.map((t) => t - t0),
      y: e.solve_rate,
      color: PALETTE[i % PALETTE.length],
    }));
    const box = $("solve-rate-chart");
    box.replaceChildren(lineChart({
      title: "held-out solve rate",
      x: steps ? { label: "training env steps" } : { label: "time since first result", format: fmtDuration },
      y: { label: "solve rate", domain: [0, 1] },
      series,
      legend: true,
      empty: "no held-out evaluations yet",
    }));
    // the latest value per environment, as text (exact numbers; the chart shows shapes)
    if (evs.length) {
      box.append(h("div", { class: "latest" }, evs.map((e, i) =>
        h("span", { class: "chip", "data-testid": "solve-rate-latest", "data-env": e.env },
          h("i", { style: `background:${PALETTE[i % PALETTE.length]}` }),
          `${e.env}: ${fmt(e.solve_rate[e.solve_rate.length - 1])}`))));
    }
  }

  /** Download the history as JSON lines: fetched with the token, saved through a blob link. */
  async export() {
    const status = $("export-status");
    const name = this.rendered?.name ?? this.expId;
    status.textContent = "exporting…";
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const resp = await apiFetch(expPath(this.expId, "/export?format=jsonl"), {
          headers: { Accept: "application/x-ndjson, application/json" },
        });
        const blob = await resp.blob();
        const url = URL.createObjectURL(blob);
        const a = h("a", { href: url, download: `${name}.jsonl`, hidden: true });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
        status.textContent = `exported ${fmt(blob.size)} bytes`;
        return;
      } catch (e) {
        if (e instanceof Unauthorised) {
          await askForToken(attempt > 0);
          continue;
        }
        status.textContent = `export failed: ${e.message}`;
        return;
      }
    }
  }
}

// ----------------------------------------------------------------------- shared widgets
/** Fill a two-column table with ``obj``'s entries (objects shown as compact JSON). */
function renderKV(table, obj, prefix) {
  const rows = Object.entries(obj).map(([k, v]) =>
    h("tr", { "data-key": k },
      h("th", {}, k),
      h("td", { "data-testid": prefix ? `${prefix}-${k}` : null }, show(v))));
  table.replaceChildren(...rows);
}

function show(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return fmt(v, 4);
  if (typeof v === "object") {
    const s = JSON.stringify(v);
    return s.length > 160 ? `${s.slice(0, 157)}…` : s;
  }
  return String(v);
}

/**
 * The scalar facts of a teacher view, one level of nesting flattened
 * (``buffer.size``), for a summary table: lists and deeper objects are left to charts.
 */
function scalars(view, skip = []) {
  const out = {};
  for (const [k, v] of Object.entries(view ?? {})) {
    if (skip.includes(k)) continue;
    if (v === null || typeof v !== "object") out[k] = v;
    else if (!Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v)) {
        if (v2 === null || typeof v2 !== "object") out[`${k}.${k2}`] = v2;
      }
    }
  }
  return out;
}

function section(title, ...children) {
  return h("div", { class: "sub" }, h("h3", {}, title), ...children);
}

// ------------------------------------------------------------------------ teacher panels
/**
 * The panel for a frame's teacher kind: ``{kind, node, update(frame)}``. Static parts
 * (like the dimension selects) are made once, so that re-rendering never resets them.
 */
function makeTeacherPanel(frame, rerender) {
  const kind = frame.teacher_kind;
  const make = {
    alp_gmm: gmmPanel,
    covar_gmm: gmmPanel,
    riac: (f, r) => regionsPanel(f, r, "regions", "alp", "ALP"),
    lp_tree: (f, r) => regionsPanel(f, r, "leaves", "lp", "learning progress"),
    plr: levelBufferPanel,
    accel: levelBufferPanel,
    paired: pairedPanel,
    lp: (f, r) => taskTablePanel(f, r, "tasks", ["task", "success", "lp", "weight", "random_success"], "weight"),
    omni: (f, r) => taskTablePanel(f, r, "tasks",
      ["task", "success", "lp", "weight", "interesting", "judged_against", "similarity"], "weight"),
    sec: (f, r) => taskTablePanel(f, r, "arms", ["arm", "q", "probability", "episodes"], "probability"),
    poet: poetPanel,
  }[kind] ?? genericPanel;
  const panel = make(frame, rerender);
  panel.kind = kind;
  return panel;
}

/** Summary table + raw JSON (random and any teacher kind this page does not know). */
function genericPanel() {
  const table = h("table", { class: "kv", "data-testid": "teacher-summary" });
  const raw = h("pre", { class: "raw" });
  const node = h("div", {}, table, h("details", {}, h("summary", {}, "raw view"), raw));
  return {
    node,
    update(f) {
      renderKV(table, scalars(f.teacher));
      const s = JSON.stringify(f.teacher ?? {}, null, 1);
      raw.textContent = s.length > 20000 ? `${s.slice(0, 20000)}\n…` : s;
    },
  };
}

/**
 * Two selects choosing which task dimensions a 2-D picture shows (only when d > 2).
 * ``state`` holds the chosen indices {x, y}.
 */
function dimSelects(names, state, onChange) {
  const wrap = h("div", { class: "dim-selects" });
  if (names.length <= 2) return wrap;
  for (const axis of ["x", "y"]) {
    const sel = h("select", { "data-testid": `dim-${axis}`, id: `dim-${axis}`, "aria-label": `${axis} dimension` },
      names.map((n, i) => h("option", { value: i, selected: i === state[axis] }, n)));
    sel.addEventListener("change", () => {
      state[axis] = Number(sel.value);
      onChange();
    });
    wrap.append(h("label", {}, `${axis}: `, sel));
  }
  return wrap;
}

/** low/high of each named box dimension, from the frame's space. */
function bounds(space, names) {
  const byName = Object.fromEntries((space?.dims ?? []).map((d) => [d.name, d]));
  return names.map((n) => [byName[n]?.low ?? 0, byName[n]?.high ?? 1]);
}

/**
 * ALP-GMM / Covar-GMM: recent tasks coloured by learning progress (ALP; Covar-GMM rows
 * carry a reward instead), with the fitted components as 2-sigma ellipses. The GMM lives
 * in the unit cube (task dims first, then the extra coordinates); it is scaled to task
 * units with the space's low/high.
 */
function gmmPanel(frame, rerender) {
  const names = frame.teacher?.dims ?? (frame.space?.dims ?? []).map((d) => d.name);
  const state = { x: 0, y: Math.min(1, names.length - 1) };
  const status = h("p", { class: "muted", "data-testid": "gmm-status" });
  const chart = h("div", { class: "chart-box", "data-testid": "gmm-chart" });
  const components = h("table", { class: "kv small", "data-testid": "gmm-components" });
  const summary = h("table", { class: "kv", "data-testid": "teacher-summary" });
  const node = h("div", { class: "grid2" },
    section("Recent tasks and GMM components", dimSelects(names, state, rerender), chart, status),
    h("div", {}, section("Components", components), section("Summary", summary)));

  return {
    node,
    update(f) {
      const v = f.teacher ?? {};
      const lims = bounds(f.space, names);
      const recent = v.recent ?? {};
      const tasks = recent.tasks ?? [];
      // colour: ALP (alp_gmm), else the normalised reward (covar_gmm), else the raw return
      const [cKey, cLabel] = recent.alps ? ["alps", "ALP"] : recent.rewards ? ["rewards", "reward"] : ["returns", "return"];
      const cs = recent[cKey] ?? [];
      const gmm = v.gmm;
      const lps = gmm?.lp ?? [];
      const cExt = extent(cKey === "alps" ? [...cs, ...lps] : cs) ?? [0, 1];
      const cDomain = cKey === "returns" ? cExt : [Math.min(0, cExt[0]), Math.max(cKey === "alps" ? 0.05 : 1, cExt[1])];
      const dx = state.x;
      const oneD = names.length < 2;
      const dy = oneD ? null : state.y;
      const ellipses = [];
      if (gmm && !oneD) {
        const lpMax = Math.max(1e-12, ...lps);
        const [lx, hx] = lims[dx];
        const [ly, hy] = lims[dy];
        const rx = hx - lx;
        const ry = hy - ly;
        gmm.means.forEach((m, k) => {
          const C = gmm.covariances[k];
          ellipses.push({
            cx: lx + m[dx] * rx,
            cy: ly + m[dy] * ry,
            cov: [C[dx][dx] * rx * rx, C[dx][dy] * rx * ry, C[dy][dy] * ry * ry],
            weight: gmm.weights[k],
            // ALP-GMM's lp is a mean ALP, on the points' scale; Covar-GMM's is a covariance:
            // put it on the colour scale relative to the largest component's
            c: cKey === "alps" ? lps[k] : cDomain[0] + (lps[k] / lpMax) * (cDomain[1] - cDomain[0]),
            title: `component ${k}: weight ${fmt(gmm.weights[k])}, lp ${fmt(lps[k])}`,
          });
        });
      }
      chart.replaceChildren(scatterChart({
        title: "recent tasks",
        x: { label: names[dx] ?? "x", domain: lims[dx] ?? [0, 1] },
        // one task dimension: show it against the return instead
        y: oneD
          ? { label: "return", domain: niceDomain(...(extent(recent.returns ?? []) ?? [0, 1])) }
          : { label: names[dy], domain: lims[dy] },
        points: {
          x: tasks.map((t) => t[dx]),
          y: oneD ? (recent.returns ?? []) : tasks.map((t) => t[dy]),
          c: cs,
        },
        cDomain,
        cLabel: cKey === "alps" ? "ALP" : cLabel,
        ellipses,
        ellipseTestid: "gmm-ellipse",
        empty: "no episodes yet",
      }));
      const bs = v.bootstrap_done ? "done" : `${fmt(v.episodes)} / ${fmt(v.bootstrap)}`;
      status.textContent = `${fmt(v.episodes)} episodes · bootstrap ${bs} · ${fmt(v.fits)} fit(s)` +
        (gmm ? ` · k = ${gmm.k ?? gmm.weights.length}` : " · no mixture fitted yet") +
        (v.pending_fit ? ` · next fit due at episode ${v.pending_fit.due_at}` : "");
      components.replaceChildren(
        h("tr", {}, h("th", {}, "#"), h("th", {}, "weight"), h("th", {}, cKey === "alps" ? "mean ALP" : "LP"),
          h("th", {}, `mean (${names.join(", ")})`)),
        ...(gmm?.means ?? []).map((m, k) => h("tr", {},
          // a component's LP can be 1e-90: show that as 0
          h("td", {}, k), h("td", {}, fmt(gmm.weights[k])), h("td", {}, fmt(Math.abs(lps[k]) < 1e-9 ? 0 : lps[k])),
          h("td", {}, m.slice(0, names.length).map((u, i) => fmt(lims[i][0] + u * (lims[i][1] - lims[i][0]))).join(", ")))),
      );
      renderKV(summary, scalars(v, ["recent", "gmm"]));
    },
  };
}

/** RIAC regions / LP-tree leaves: rectangles in the two chosen dims, coloured by progress. */
function regionsPanel(frame, rerender, listKey, valueKey, valueLabel) {
  const names = frame.teacher?.dims ?? (frame.space?.dims ?? []).map((d) => d.name);
  const state = { x: 0, y: Math.min(1, names.length - 1) };
  const chart = h("div", { class: "chart-box", "data-testid": "regions-chart" });
  const summary = h("table", { class: "kv", "data-testid": "teacher-summary" });
  const node = h("div", { class: "grid2" },
    section(listKey === "regions" ? "Regions" : "Leaves", dimSelects(names, state, rerender), chart),
    section("Summary", summary));
  return {
    node,
    update(f) {
      const v = f.teacher ?? {};
      const lims = bounds(f.space, names);
      // RIAC keeps every region of its split tree; the leaves tile the space
      const all = v[listKey] ?? [];
      const items = all.some((r) => r.leaf === false) ? all.filter((r) => r.leaf !== false) : all;
      const values = items.map((r) => r[valueKey]);
      const ext = extent(values) ?? [0, 1];
      const dx = state.x;
      const dy = names.length > 1 ? state.y : null;
      chart.replaceChildren(scatterChart({
        title: listKey,
        x: { label: names[dx] ?? "x", domain: lims[dx] ?? [0, 1] },
        y: dy === null ? { label: "", domain: [0, 1] } : { label: names[dy], domain: lims[dy] },
        rects: items.map((r) => ({
          x0: r.low[dx], x1: r.high[dx],
          y0: dy === null ? 0 : r.low[dy], y1: dy === null ? 1 : r.high[dy],
          c: r[valueKey],
          title: `${valueLabel} ${fmt(r[valueKey])} · ${fmt(r.episodes)} episodes` +
            (r.mean_reward != null ? ` · mean reward ${fmt(r.mean_reward)}` : "") +
            (r.mean_return != null ? ` · mean return ${fmt(r.mean_return)}` : ""),
        })),
        rectTestid: "region-rect",
        cDomain: [Math.min(0, ext[0]), Math.max(ext[1], 1e-3)],
        cLabel: valueLabel,
        empty: "no regions yet",
      }));
      renderKV(summary, { ...scalars(v, [listKey]), [`${listKey} shown`]: items.length });
    },
  };
}

/** A row of top levels, each drawn from its ASCII with a caption. */
function levelGallery(levels, caption) {
  return h("div", { class: "levels", "data-testid": "top-levels" }, levels.map((lv, i) =>
    h("figure", { class: "level-card" },
      levelImage(lv.level, { size: 120, title: `level ${lv.level_id ?? i}` }),
      h("figcaption", {}, caption(lv)))));
}

/**
 * Discrete teachers (lp, omni, sec): one row per task (or arm) with its figures, the share of
 * the proposals it gets drawn as a bar, and the teacher's scalar summary. OMNI's rows say
 * interesting or boring (a boring row is dimmed) and, on hover, why: the model's answer, or
 * the task it was judged against; a task still waiting for its judgement says so.
 */
function taskTablePanel(frame, rerender, listKey, columns, shareKey) {
  const table = h("table", { class: "kv tasks", "data-testid": "task-table" });
  const summary = h("table", { class: "kv", "data-testid": "teacher-summary" });
  const node = h("div", { class: "grid2" },
    section(listKey === "arms" ? "Arms" : "Tasks", table), section("Summary", summary));
  return {
    node,
    update(f) {
      const rows = f.teacher?.[listKey] ?? [];
      const head = h("tr", {}, ...columns.map((c) => h("th", {}, c.replace("_", " "))), h("th", {}, ""));
      const why = (r) => r.answer ?? (r.judged_against
        ? `not interesting given ${r.judged_against} (similarity ${fmt(r.similarity)})`
        : (r.judged === false ? "waiting for the model's judgement" : ""));
      const attrs = (r) => ("interesting" in r
        ? { "data-task": r[columns[0]], "data-interesting": String(r.interesting),
          class: r.interesting ? "" : "boring", title: why(r) }
        : { "data-task": r[columns[0]] });
      const body = rows.map((r) => h("tr", attrs(r),
        ...columns.map((c) => h("td", {}, show(r[c]))),
        h("td", {}, h("span", { class: "share", style: `width:${Math.round(100 * (r[shareKey] ?? 0))}px` }))));
      table.replaceChildren(head, ...body);
      renderKV(summary, scalars(f.teacher, [listKey]));
    },
  };
}

/** PLR / ACCEL: the replay buffer's score histogram, replay rate, lineage and top levels. */
function levelBufferPanel() {
  const stats = h("div", { class: "cards small" });
  const hist = h("div", { class: "chart-box", "data-testid": "score-histogram" });
  const depth = h("div", { class: "chart-box", "data-testid": "depth-histogram" });
  // lineage only matters once levels are edited (ACCEL): hidden while every depth is 0
  const depthSection = section("Lineage depth", depth);
  const gallery = h("div", {});
  const summary = h("table", { class: "kv", "data-testid": "teacher-summary" });
  const node = h("div", {},
    stats,
    h("div", { class: "grid2" },
      h("div", {}, section("Buffer scores", hist), depthSection),
      section("Summary", summary)),
    section("Top levels", gallery));
  const card = (label, value, testid) => h("div", { class: "card" },
    h("div", { class: "card-label" }, label),
    h("div", { class: "card-value", "data-testid": testid }, value));
  const pct = (v) => (v === null || v === undefined ? "–" : `${fmt(100 * v, 3)}%`);
  return {
    node,
    update(f) {
      const v = f.teacher ?? {};
      const buf = v.buffer ?? {};
      const sc = v.scores ?? {};
      stats.replaceChildren(
        card("buffer", `${fmt(buf.size)} / ${fmt(buf.capacity)} (${pct(buf.fill)})`, "buffer-fill"),
        card("replay rate", pct(v.replay_rate), "replay-rate"),
        card("replay rate (recent)", pct(v.replay_rate_recent), "replay-rate-recent"),
        // with robust PLR / ACCEL only the steps on replays train the student
        card("env steps on replays", pct(v.replay_step_share), "replay-step-share"),
        card("regret (mean score)", fmt(v.regret), "regret"),
        card(`scores (${sc.function ?? "score"})`, `${fmt(sc.min)} / ${fmt(sc.mean)} / ${fmt(sc.max)}`, "score-range"),
        card("staleness mean / max", `${fmt(v.staleness?.mean)} / ${fmt(v.staleness?.max)}`, "staleness"),
      );
      const hg = sc.histogram ?? { edges: [], counts: [] };
      hist.replaceChildren(histogram({
        edges: hg.edges ?? [], counts: hg.counts ?? [],
        x: { label: sc.function ?? "score" }, y: { label: "levels" },
        empty: "buffer empty",
      }));
      const dc = v.lineage?.depth_counts ?? [];
      depthSection.hidden = dc.length < 2;
      if (!depthSection.hidden) depth.replaceChildren(histogram({
        edges: dc.length ? [...dc.keys(), dc.length].map((k) => k - 0.5) : [],
        counts: dc, color: PALETTE[6],
        x: { label: "depth (ancestors back to a generated level)", format: (d) => (Number.isInteger(d) ? String(d) : "") },
        y: { label: "levels" },
        empty: "no lineage yet",
      }));
      gallery.replaceChildren(levelGallery(v.top_levels ?? [], (lv) => [
        h("b", {}, `score ${fmt(lv.score)}`),
        h("br"), `max return ${fmt(lv.max_return)}`,
        h("br"), `replays ${fmt(lv.replays)} · stale ${fmt(lv.staleness)}`,
        h("br"), `id ${lv.level_id}` + (lv.parent != null ? ` ← ${lv.parent}` : "") +
          (lv.depth ? ` · depth ${lv.depth}, ${lv.edits} edits` : ""),
      ]));
      renderKV(summary, scalars(v, ["top_levels", "scores", "buffer", "staleness"]));
    },
  };
}

/** PAIRED: regret history, protagonist vs antagonist returns, the adversary's goal map, top levels. */
function pairedPanel() {
  const regret = h("div", { class: "chart-box", "data-testid": "regret-chart" });
  const returns = h("div", { class: "cards small", "data-testid": "paired-returns" });
  const goal = h("div", { class: "goal-map" });
  const gallery = h("div", {});
  const summary = h("table", { class: "kv", "data-testid": "teacher-summary" });
  const node = h("div", {},
    returns,
    h("div", { class: "grid2" },
      section("Regret (antagonist max − protagonist mean return)", regret),
      h("div", {}, section("Adversary's goal distribution", goal), section("Summary", summary))),
    section("Top levels by regret", gallery));
  const card = (label, value, testid) => h("div", { class: "card" },
    h("div", { class: "card-label" }, label),
    h("div", { class: "card-value", "data-testid": testid }, value));
  return {
    node,
    update(f) {
      const v = f.teacher ?? {};
      returns.replaceChildren(
        card("protagonist mean return", fmt(v.protagonist_mean_return), "protagonist-return"),
        card("antagonist max return", fmt(v.antagonist_max_return), "antagonist-return"),
        card("mean regret", fmt(v.mean_regret), "mean-regret"),
        card("levels built / completed", `${fmt(v.levels_built)} / ${fmt(v.levels_completed)}`, "levels-completed"),
        card("solvable", v.solvable_fraction == null ? "–" : `${fmt(100 * v.solvable_fraction, 3)}%`, "solvable"),
      );
      const hist = v.regret_history ?? [];
      regret.replaceChildren(lineChart({
        title: "regret history",
        x: { label: "levels completed" }, y: { label: "regret" },
        series: [{ name: "regret", x: hist.map((p) => p.levels), y: hist.map((p) => p.regret) }],
        empty: "no completed levels yet",
      }));
      const gp = v.goal_probabilities ?? [];
      const gr = extent(gp.flat());
      goal.replaceChildren(...(gp.length
        ? [heatmap(gp, { cell: 14, testid: "goal-heatmap", label: "goal probabilities" }),
          h("div", { class: "muted small" }, `p(goal) from ${fmt(gr[0])} (dark) to ${fmt(gr[1])} (yellow)`)]
        : ["–"]));
      gallery.replaceChildren(levelGallery(v.top_levels ?? [], (lv) => [
        h("b", {}, `regret ${fmt(lv.regret)}`), h("br"), `id ${lv.level_id}`,
      ]));
      renderKV(summary, scalars(v, ["top_levels", "regret_history", "goal_probabilities"]));
    },
  };
}

/** Most pair cards drawn (active and archived each): the rest are counted, not drawn. */
const POET_MAX_CARDS = 48;

/**
 * ``[[x, y], ...]`` of a counter that changes at the given x as a step line (it holds its
 * value until the next change), extended flat to ``until`` when that is later.
 */
function stepSeries(points, until) {
  const xs = [];
  const ys = [];
  points.forEach(([x, y], i) => {
    if (i > 0) {
      xs.push(x);
      ys.push(ys[ys.length - 1]);
    }
    xs.push(x);
    ys.push(y);
  });
  if (xs.length && Number.isFinite(until) && until > xs[xs.length - 1]) {
    xs.push(until);
    ys.push(ys[ys.length - 1]);
  }
  return { x: xs, y: ys };
}

/**
 * POET: the active environment-agent pairs (each environment's level drawn, with its agent,
 * score, age and lineage), ANNECS over the iterations, the recent transfers, the reproduction
 * counters, and the archived pairs. Any part of the view may be missing (an older or
 * partial view): that part shows a dash or an empty note.
 */
function poetPanel() {
  const stats = h("div", { class: "cards small", "data-testid": "poet-stats" });
  const children = h("div", { class: "cards small", "data-testid": "poet-children" });
  const annecs = h("div", { class: "chart-box", "data-testid": "annecs-chart" });
  const pairs = h("div", { "data-testid": "poet-pairs" });
  const pairsTitle = h("h3", {}, "Active pairs");
  const transfers = h("table", { class: "kv small poet-transfers", "data-testid": "poet-transfers" });
  const transfersTitle = h("h3", {}, "Transfers");
  const archived = h("div", { "data-testid": "poet-archived" });
  const archivedTitle = h("h3", {}, "Archived pairs");
  const archivedSection = h("div", { class: "sub" }, archivedTitle, archived);
  const summary = h("table", { class: "kv", "data-testid": "teacher-summary" });
  const node = h("div", { "data-testid": "poet-panel" },
    stats,
    h("div", { class: "sub" }, pairsTitle, pairs),
    h("div", { class: "grid2" },
      section("ANNECS (accumulated number of novel environments created and solved)", annecs),
      h("div", {}, section("Reproduction", children), h("div", { class: "sub" }, transfersTitle, transfers))),
    archivedSection,
    h("details", {}, h("summary", {}, "summary"), summary));
  const card = (label, value, testid, extra = {}) => h("div", { class: "card" },
    h("div", { class: "card-label" }, label),
    h("div", { class: "card-value", "data-testid": testid, ...extra }, value));
  const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
  const list = (v) => (Array.isArray(v) ? v : []);
  const agentOf = (v) => (v === null || v === undefined || v === "" ? "–" : String(v));
  const params = (p) => (p && typeof p === "object"
    ? Object.entries(p).map(([k, x]) => `${k} ${fmt(num(x) ?? x)}`).join(" · ") : "");

  /** One pair as a card: its level, then env / agent / score / age / lineage. */
  const pairCard = (p, testid) => {
    const env = p.env_id ?? "?";
    const agent = agentOf(p.agent_id);
    const adopted = num(p.agent_since) !== null && num(p.born) !== null && p.agent_since > p.born;
    const title = `env ${env} · ${agent}`;
    return h("figure", {
      class: "level-card poet-pair", "data-testid": testid,
      "data-env-id": env, "data-agent-id": p.agent_id ?? "", "data-score": num(p.score) ?? "",
    },
    typeof p.level === "string" && p.level
      ? levelImage(p.level, { size: 110, title, testid: `${testid}-level` })
      : h("div", { class: "muted no-level" }, "no level"),
    h("figcaption", {},
      h("b", {}, `env ${env}`), " · ", h("span", { "data-testid": "poet-pair-agent" }, agent),
      h("br"), "score ", h("span", { "data-testid": "poet-pair-score" }, fmt(num(p.score))),
      ` (${fmt(num(p.evaluations) ?? 0)} evals)`,
      h("br"), `age ${fmt(num(p.age))} it · born ${fmt(num(p.born))}`,
      h("br"), `parent ${p.parent === null || p.parent === undefined ? "–" : `env ${p.parent}`}`,
      p.init_from ? ` · from ${p.init_from}` : null,
      adopted ? h("br") : null, adopted ? `agent since it ${fmt(p.agent_since)}` : null,
      p.params ? h("br") : null, p.params ? params(p.params) : null));
  };

  /** A gallery of pair cards, at most POET_MAX_CARDS drawn. */
  const gallery = (rows, testid, empty) => {
    if (!rows.length) return h("p", { class: "muted" }, empty);
    const shown = rows.slice(0, POET_MAX_CARDS);
    return h("div", {},
      h("div", { class: "levels" }, shown.map((p) => pairCard(p ?? {}, testid))),
      rows.length > shown.length
        ? h("p", { class: "muted" }, `${rows.length - shown.length} more not drawn`) : null);
  };

  let pairsKey = null;
  let archivedKey = null;
  return {
    node,
    update(f) {
      const v = f.teacher ?? {};
      const ch = v.children ?? {};
      const checks = v.checks ?? {};
      const agents = v.agents ?? {};
      const active = list(v.pairs);
      const arch = list(v.archived);
      const trs = list(v.transfers);
      const candidates = list(agents.candidates);
      const mc = list(v.mc);
      stats.replaceChildren(
        card("iteration", fmt(num(v.iteration)), "poet-iteration"),
        card("ANNECS", fmt(num(v.annecs)), "poet-annecs"),
        card("active pairs", fmt(active.length), "poet-active", { "data-value": active.length }),
        card("archive size", fmt(num(v.archive_size)), "poet-archive-size"),
        card("archived", fmt(num(v.archived_count)), "poet-archived-count"),
        card("admitted", fmt(num(v.admitted)), "poet-admitted"),
        card("transfers", fmt(num(v.transfer_count)), "poet-transfer-count"),
        card("transfer check", checks.transfer ?? "–", "poet-check-transfer"),
        card("reproduction check", checks.reproduction ?? "–", "poet-check-reproduction"),
        // agents being fine-tuned on another pair's environment for a transfer
        card("transfer candidates", fmt(candidates.length), "poet-candidates",
          { title: candidates.join(", ") || null }),
        card("minimal criterion", mc.length === 2 ? `[${fmt(num(mc[0]))}, ${fmt(num(mc[1]))}]` : "–", "poet-mc"),
      );
      children.replaceChildren(
        card("children made", fmt(num(ch.made)), "poet-children-made"),
        card("duplicates", fmt(num(ch.duplicates)), "poet-children-duplicates"),
        card("MC passed", fmt(num(ch.mc_passed)), "poet-children-mc-passed"),
        card("MC failed", fmt(num(ch.mc_failed)), "poet-children-mc-failed"),
        card("not admitted", fmt(num(ch.not_admitted)), "poet-children-not-admitted"),
      );

      // ANNECS: a counter, drawn as steps up to the current iteration
      const hist = list(v.annecs_history).filter((pt) => Array.isArray(pt) && pt.length >= 2);
      const steps = stepSeries(hist, num(v.iteration));
      annecs.replaceChildren(lineChart({
        title: "ANNECS by iteration",
        x: { label: "iteration" },
        y: { label: "ANNECS", domain: niceDomain(0, Math.max(1, ...steps.y.filter(Number.isFinite)), 4) },
        series: [{ name: "ANNECS", x: steps.x, y: steps.y, color: PALETTE[4] }],
        empty: "no iteration yet",
      }));

      // the pairs: redrawn only when something about them changed
      pairsTitle.textContent = `Active pairs (${active.length}, oldest first)`;
      const pk = JSON.stringify(active);
      if (pk !== pairsKey) {
        pairsKey = pk;
        pairs.replaceChildren(gallery(active, "poet-pair", "no pairs yet"));
      }
      archivedSection.hidden = arch.length === 0;
      archivedTitle.textContent = `Archived pairs (${fmt(num(v.archived_count) ?? arch.length)}; ` +
        `the last ${arch.length}, newest first)`;
      const ak = JSON.stringify(arch);
      if (ak !== archivedKey) {
        archivedKey = ak;
        archived.replaceChildren(gallery(arch, "poet-archived-pair", "none archived"));
      }

      // transfers, newest first
      transfersTitle.textContent = `Transfers (${fmt(num(v.transfer_count) ?? trs.length)} in all` +
        `${trs.length ? `; the last ${trs.length}, newest first` : ""})`;
      transfers.replaceChildren(
        h("tr", {}, h("th", {}, "iteration"), h("th", {}, "env"), h("th", {}, "agent"),
          h("th", {}, "score vs incumbent")),
        ...(trs.length ? [...trs].reverse().map((t) => h("tr", { "data-testid": "poet-transfer" },
          h("td", {}, fmt(num(t?.iteration))),
          h("td", {}, `env ${t?.env_id ?? "?"}`),
          h("td", {}, `${agentOf(t?.from_agent)} → ${agentOf(t?.agent_id)}`),
          h("td", {}, `${fmt(num(t?.score))} vs ${fmt(num(t?.incumbent))}`)))
          : [h("tr", {}, h("td", { colspan: 4, class: "muted" }, "no transfer yet"))]),
      );
      renderKV(summary, scalars(v, ["pairs", "archived", "transfers", "annecs_history", "agents"]));
    },
  };
}

// --------------------------------------------------------------------------------- main
function main() {
  adoptTokenFromFragment();
  setupTokenForm();
  const exp = params.get("exp");
  if (exp) new LiveView(exp).start();
  else showList();
}

main();
