// The tailored dashboard: reads /dashboard/data and draws it with Chart.js (vendored).
// No framework, no build step; every text from the store goes in through textContent.
"use strict";

const KEY_STORAGE = "tailored.apiKey";
const PALETTE = ["#2b59c3", "#e07a1f", "#1a7f4b", "#b3261e", "#7b4bb7", "#0f8a9d", "#8a6d1f",
                 "#c2417e"];
const charts = {};

Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
Chart.defaults.color = "#4a5263";
Chart.defaults.animation = false;  // charts appear at once (and screenshots are complete)
Chart.defaults.maintainAspectRatio = false;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "style") node.setAttribute("style", value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const integer = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
const percent = (x, digits = 1) =>
  (x === null || x === undefined ? "–" : (100 * x).toFixed(digits) + "%");
const fixed = (x, digits = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));
const pValue = (p) => (p === null || p === undefined ? "–" : p < 0.001 ? "<0.001" : p.toFixed(3));

function label(iso, period) {
  const d = new Date(iso);
  const day = d.toISOString().slice(0, 10);
  if (period === "day" || period === "D") return day;
  return day.slice(5) + " " + d.toISOString().slice(11, 16);
}

function draw(id, config) {
  if (charts[id]) charts[id].destroy();
  const canvas = document.getElementById(id);
  charts[id] = new Chart(canvas, config);
  return charts[id];
}

function empty(id, text) {
  const canvas = document.getElementById(id);
  if (charts[id]) { charts[id].destroy(); delete charts[id]; }
  const box = canvas.parentElement;
  box.querySelectorAll(".empty").forEach((n) => n.remove());
  box.append(el("p", { class: "empty" }, text));
}

// ---- loading ---------------------------------------------------------------------------

async function load(fresh = false) {
  const status = document.getElementById("status");
  status.textContent = "loading…";
  const key = sessionStorage.getItem(KEY_STORAGE);
  const headers = key ? { Authorization: "Bearer " + key } : {};
  let response;
  try {
    response = await fetch("/dashboard/data" + (fresh ? "?fresh=true" : ""), { headers });
  } catch (error) {
    status.textContent = "cannot reach the service: " + error;
    return;
  }
  if (fresh && response.status === 403) {
    // The key is good but recomputing needs `admin`: show the shared copy instead.
    await load(false);
    status.textContent += " · refreshing needs an admin key";
    return;
  }
  if (response.status === 401 || response.status === 403) {
    const detail = (await response.json().catch(() => ({}))).detail || response.statusText;
    if (key) sessionStorage.removeItem(KEY_STORAGE);
    askForKey(key ? detail : "");
    status.textContent = "an API key is needed";
    return;
  }
  if (!response.ok) {
    status.textContent = `the service answered ${response.status}: ${await response.text()}`;
    return;
  }
  const data = await response.json();
  document.getElementById("key-form").hidden = true;
  document.getElementById("main").hidden = false;
  render(data);
  status.textContent = "updated " + new Date(data.generated_at).toLocaleString() +
    (key ? " · with an API key" : " · open access");
  document.body.dataset.state = "ready";
}

function askForKey(error) {
  document.getElementById("main").hidden = true;
  const form = document.getElementById("key-form");
  form.hidden = false;
  document.getElementById("key-error").textContent = error || "";
  document.getElementById("key").focus();
}

document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = document.getElementById("key").value.trim();
  if (value) sessionStorage.setItem(KEY_STORAGE, value);
  load();
});
document.getElementById("refresh").addEventListener("click", () => load(true));

// ---- rendering -------------------------------------------------------------------------

function render(data) {
  renderTiles(data);
  renderEvents(data.events_over_time);
  renderExperiments(data.experiments);
  renderCtr(data.drift.detectors.find((d) => d.name === "ctr"));
  renderInputDrift(data.drift.detectors.filter((d) => d.name !== "ctr"));
  renderDetectors(data.drift);
  renderModels(data.models, data.serving);
  renderTopItems(data.top_items);
  renderCoverage(data.coverage);
}

function renderTiles(data) {
  const ctr = data.drift.detectors.find((d) => d.name === "ctr");
  const active = data.models.find((m) => m.active);
  const running = data.experiments.filter((e) => e.experiment.status === "running").length;
  const tiles = [
    ["events", integer(data.totals.events), "tile-events"],
    ["users", integer(data.totals.users), "tile-users"],
    ["items", integer(data.totals.items), "tile-items"],
    ["serving", active ? `${active.name} v${active.version}` : "no model", "tile-serving"],
    ["online CTR", ctr && ctr.latest.ctr !== undefined ? percent(ctr.latest.ctr, 2) : "–",
     "tile-ctr"],
    ["experiments running", integer(running), "tile-experiments"],
    ["open alerts", integer(data.drift.unhandled), "tile-alerts"],
    ["erasures waiting for a retraining", integer(data.privacy.pending), "tile-erasures"],
  ];
  const box = document.getElementById("tiles");
  box.replaceChildren(...tiles.map(([name, value, id]) =>
    el("div", { class: "tile", id }, el("div", { class: "value" }, value),
       el("div", { class: "label" }, name))));
  if (data.drift.unhandled > 0) box.querySelector("#tile-alerts .value").classList.add("bad");
  if (data.privacy.pending > 0) {
    const due = new Date(data.privacy.retrain_due).toLocaleString();
    box.querySelector("#tile-erasures .label").textContent += ` (by ${due})`;
  }
}

function renderEvents(over) {
  const types = Object.keys(over.series);
  if (!types.length) return empty("events-chart", "no events yet");
  draw("events-chart", {
    type: "bar",
    data: {
      labels: over.at.map((at) => label(at, over.period)),
      datasets: types.map((type, i) => ({
        label: type, data: over.series[type], backgroundColor: PALETTE[i % PALETTE.length],
        stack: "events", borderWidth: 0,
      })),
    },
    options: {
      scales: { x: { stacked: true, ticks: { maxTicksLimit: 14 } },
                y: { stacked: true, title: { display: true, text: `events per ${over.period}` } } },
      plugins: { tooltip: { mode: "index", intersect: false } },
    },
  });
}

function renderExperiments(experiments) {
  const list = document.getElementById("experiment-list");
  list.replaceChildren();
  if (!experiments.length) {
    list.append(el("p", { class: "empty" },
      "no experiments yet: `tailored experiments create` starts an A/B test"));
    return;
  }
  experiments.forEach((report, index) => {
    const exp = report.experiment;
    const curveId = `experiment-curve-${index}`;
    const ctrId = `experiment-ctr-${index}`;
    const progress = report.sample_progress;
    const head = el("div", { class: "head" },
      el("span", { class: "name" }, exp.name),
      el("span", { class: "muted" }, `${exp.experiment_id} · ${exp.status}`),
      el("span", { class: "verdict" + (report.winner ? " won" : ""),
                   "data-experiment": exp.experiment_id }, report.verdict),
      progress === null ? el("span", { class: "muted" }, "no planned sample size") :
        el("span", { class: "muted" }, "sample ",
           el("span", { class: "progress" },
              el("div", { style: `width:${Math.min(100, 100 * progress).toFixed(0)}%` })),
           " " + percent(Math.min(progress, 1), 0) + " of plan"));
    const table = el("table", { class: "variants" },
      el("tr", {}, ...["variant", "version", "impressions", "clicks", "CTR",
                      `${Math.round(100 * report.confidence)}% interval`, "lift", "p",
                      "p (users)", "P(beat control)"].map((h) => el("th", {}, h))),
      ...report.variants.map((v) => el("tr", {},
        el("td", {}, v.variant + (v.is_control ? " (control)" : "")),
        el("td", {}, v.version === null ? "–" : "v" + v.version),
        el("td", {}, integer(v.impressions)), el("td", {}, integer(v.clicks)),
        el("td", {}, percent(v.ctr, 2)),
        el("td", {}, v.ci_low === null ? "–" : `${percent(v.ci_low, 2)} – ${percent(v.ci_high, 2)}`),
        el("td", {}, v.lift === null ? "–" : (v.lift >= 0 ? "+" : "") + percent(v.lift, 1)),
        el("td", {}, pValue(v.p_value)),
        el("td", { title: "delta-method z-test over users: the verdict's test" },
           pValue(v.user_p_value)),
        el("td", {}, v.prob_beat_control === null ? "–" : percent(v.prob_beat_control, 1)))));
    list.append(el("div", { class: "experiment" }, head,
      el("div", {}, el("div", { class: "chart" }, el("canvas", { id: curveId }))),
      el("div", {}, el("div", { class: "chart", style: "height:150px" }, el("canvas", { id: ctrId })),
         table)));
    drawExperiment(report, curveId, ctrId);
  });
}

function drawExperiment(report, curveId, ctrId) {
  const variants = report.variants.map((v) => v.variant);
  const times = [...new Set(report.curve.map((p) => p.at))].sort();
  const datasets = [];
  variants.forEach((name, i) => {
    const color = PALETTE[i % PALETTE.length];
    const points = new Map(report.curve.filter((p) => p.variant === name).map((p) => [p.at, p]));
    const pick = (key) => times.map((t) => (points.has(t) ? points.get(t)[key] : null));
    datasets.push({ label: `${name} CI low`, data: pick("ci_low"), borderWidth: 0, pointRadius: 0,
                    fill: false, ci: true });
    datasets.push({ label: `${name} CI`, data: pick("ci_high"), borderWidth: 0, pointRadius: 0,
                    backgroundColor: color + "22", fill: "-1", ci: true });
    datasets.push({ label: name, data: pick("ctr"), borderColor: color, backgroundColor: color,
                    pointRadius: 2, borderWidth: 2, fill: false, spanGaps: true });
  });
  if (!times.length) {
    empty(curveId, "no impressions yet");
  } else {
    draw(curveId, {
      type: "line",
      data: { labels: times.map((t) => label(t, report.curve_period)), datasets },
      options: {
        scales: { y: { title: { display: true, text: "cumulative CTR" },
                       ticks: { callback: (v) => percent(v, 1) } } },
        plugins: {
          legend: { labels: { filter: (item, chart) => !chart.datasets[item.datasetIndex].ci } },
          tooltip: { filter: (item) => !item.dataset.ci,
                     callbacks: { label: (c) => `${c.dataset.label}: ${percent(c.parsed.y, 2)}` } },
          title: { display: true, text: `cumulative CTR per ${report.curve_period}, with its ` +
                   `${Math.round(100 * report.confidence)}% interval` },
        },
      },
    });
  }
  const rows = report.variants.filter((v) => v.ctr !== null);
  if (!rows.length) return empty(ctrId, "no CTR yet");
  draw(ctrId, {
    type: "bar",
    data: {
      labels: rows.map((v) => v.variant),
      datasets: [
        { type: "bar", label: "interval", data: rows.map((v) => [v.ci_low, v.ci_high]),
          backgroundColor: rows.map((v) => PALETTE[variants.indexOf(v.variant) % PALETTE.length] + "55"),
          borderWidth: 0, barPercentage: 0.5 },
        { type: "line", label: "CTR", data: rows.map((v) => v.ctr), showLine: false,
          pointStyle: "line", pointRadius: 14, pointBorderWidth: 3,
          borderColor: rows.map((v) => PALETTE[variants.indexOf(v.variant) % PALETTE.length]) },
      ],
    },
    options: {
      indexAxis: "y",
      scales: { x: { ticks: { callback: (v) => percent(v, 1) } } },
      plugins: { legend: { display: false },
                 tooltip: { callbacks: { label: (c) => Array.isArray(c.raw)
                   ? `interval ${percent(c.raw[0], 2)} – ${percent(c.raw[1], 2)}`
                   : `CTR ${percent(c.raw, 2)}` } } },
    },
  });
}

function renderCtr(ctr) {
  const note = document.getElementById("ctr-note");
  if (!ctr || !ctr.series.at.length) {
    note.textContent = "";
    return empty("ctr-chart", "no impressions yet: send impression events with " +
                              "context.recommendation_id");
  }
  const period = ctr.series.at.length > 1 &&
    new Date(ctr.series.at[1]) - new Date(ctr.series.at[0]) >= 86400000 ? "day" : "hour";
  const labels = ctr.series.at.map((t) => label(t, period));
  note.textContent = `(${integer(ctr.observations)} impressions, ADWIN estimate ` +
    `${percent(ctr.estimate, 2)})`;
  const drifts = ctr.drifts.map((d) => label(d.at, period));
  draw("ctr-chart", {
    type: "line",
    data: {
      labels,
      datasets: [
        { label: "CTR", data: ctr.series.value, borderColor: PALETTE[0], pointRadius: 2,
          borderWidth: 2 },
        { label: "drift detected", data: labels.map((l, i) => (drifts.includes(l) ? ctr.series.value[i] : null)),
          showLine: false, pointRadius: 7, pointStyle: "triangle", borderColor: "#b3261e",
          backgroundColor: "#b3261e" },
      ],
    },
    options: { scales: { y: { ticks: { callback: (v) => percent(v, 1) } } } },
  });
}

function renderInputDrift(detectors) {
  const withData = detectors.filter((d) => d.series.at.length);
  if (!withData.length) return empty("drift-chart", "not enough events yet");
  const times = [...new Set(withData.flatMap((d) => d.series.at))].sort();
  const span = new Date(times[times.length - 1]) - new Date(times[0]);
  const labels = times.map((t) => label(t, span > 3 * 86400000 ? "day" : "hour"));
  const datasets = [];
  withData.forEach((d, i) => {
    const values = new Map(d.series.at.map((t, j) => [t, d.series.value[j]]));
    datasets.push({ label: d.name.replace("_", " "), data: times.map((t) => values.get(t) ?? null),
                    borderColor: PALETTE[(i + 1) % PALETTE.length], pointRadius: 0,
                    borderWidth: 1.5, spanGaps: true });
    const marks = new Set(d.drifts.filter((p) => p.direction === "up").map((p) => p.at));
    if (marks.size) {
      datasets.push({ label: `${d.name.replace("_", " ")}: drift`, showLine: false,
                      data: times.map((t) => (marks.has(t) ? values.get(t) : null)),
                      pointRadius: 7, pointStyle: "triangle", borderColor: "#b3261e",
                      backgroundColor: "#b3261e" });
    }
  });
  draw("drift-chart", {
    type: "line", data: { labels, datasets },
    options: { scales: { x: { ticks: { maxTicksLimit: 8 } },
                         y: { min: 0, title: { display: true, text: "JS distance" } } } },
  });
}

function renderDetectors(drift) {
  const box = document.getElementById("detectors");
  box.replaceChildren(...drift.detectors.map((d) => {
    const cls = d.status === "alert" ? "bad" : d.status === "ok" ? "good" : "muted";
    const last = d.drifts.length ? d.drifts[d.drifts.length - 1] : null;
    const value = d.name === "ctr" ? percent(d.estimate, 2) : fixed(d.estimate);
    return el("div", { class: "detector", id: `detector-${d.name}` },
      el("div", {}, el("span", { class: "state " + cls }, d.status), " ",
         el("strong", {}, d.name.replace("_", " "))),
      el("div", { class: "small muted" }, d.description),
      el("div", { class: "small" }, `${integer(d.observations)} observations · estimate ${value}` +
         (d.latest.psi !== undefined ? ` · last window PSI ${fixed(d.latest.psi, 2)}` : "")),
      el("div", { class: "small" }, last ? `last change ${label(last.at, "hour")}: ` +
         `${d.name === "ctr" ? percent(last.before, 2) : fixed(last.before)} → ` +
         `${d.name === "ctr" ? percent(last.after, 2) : fixed(last.after)}` : "no change detected"));
  }));
  const alerts = document.getElementById("alerts");
  alerts.replaceChildren(...(drift.alerts.length ? drift.alerts.map((a) =>
    el("li", { class: a.handled_at ? "muted" : "bad" },
       `${label(a.detected_at, "hour")} · ${a.detector}: ${a.message}`,
       a.handled_at ? ` (handled: ${a.handled_by})` : " (open)")) :
    [el("li", { class: "empty" }, "no alerts")]));
}

function renderModels(models, serving) {
  const note = document.getElementById("models-note");
  if (!models.length) {
    note.textContent = "";
    return empty("models-chart", "no trained model yet: `tailored train`");
  }
  const metricNames = ["ndcg@10", "recall@10", "map@10"].filter((m) =>
    models.some((v) => v.metrics[m] !== undefined));
  note.textContent = serving ? `(serving v${serving})` : "";
  draw("models-chart", {
    type: "bar",
    data: {
      labels: models.map((v) => `v${v.version} ${v.name}${v.active ? " ★" : ""}`),
      datasets: metricNames.map((m, i) => ({
        label: m, data: models.map((v) => v.metrics[m] ?? null),
        backgroundColor: models.map((v) => PALETTE[i] + (v.active ? "" : "99")),
      })),
    },
    options: { plugins: { title: { display: true,
                                   text: "offline metrics when registered, each on the temporal " +
                                         "split of its day (★ active)" } } },
  });
  const retrains = models.filter((v) => v.retrain).slice(-5).reverse();
  document.getElementById("retrains").replaceChildren(...retrains.map((v) =>
    el("li", { class: v.retrain.promoted ? "good" : "warn" },
       `v${v.version} retrained (${v.retrain.reason})` +
       (v.retrain.incumbent === null ? "" : `, compared with v${v.retrain.incumbent} on one split`) +
       `: ${v.retrain.decision}`)));
}

function renderTopItems(items) {
  if (!items.length) return empty("items-chart", "no events yet");
  draw("items-chart", {
    type: "bar",
    data: {
      labels: items.map((i) => (i.title ? `${i.title} (${i.item_id})` : i.item_id)),
      datasets: [{ label: "events", data: items.map((i) => i.events), backgroundColor: PALETTE[2] }],
    },
    options: { indexAxis: "y", plugins: { legend: { display: false } },
               scales: { y: { ticks: { autoSkip: false, font: { size: 11 } } } } },
  });
}

function renderCoverage(coverage) {
  if (!coverage.catalog) return empty("coverage-chart", "no catalog yet");
  draw("coverage-chart", {
    type: "bar",
    data: {
      labels: ["recommended", "interacted with"],
      datasets: [
        { label: "share of the catalog",
          data: [coverage.recommended_share ?? 0, coverage.interacted_share ?? 0],
          backgroundColor: [PALETTE[0], PALETTE[2]] },
      ],
    },
    options: {
      indexAxis: "y",
      scales: { x: { min: 0, max: 1, ticks: { callback: (v) => percent(v, 0) } } },
      plugins: {
        legend: { display: false },
        title: { display: true, text: `${integer(coverage.recommended)} of ` +
                 `${integer(coverage.catalog)} items recommended in ${integer(coverage.answers)} answers; ` +
                 `${integer(coverage.interacted)} interacted with` },
      },
    },
  });
  const tail = coverage.long_tail;
  if (!tail.item_share.length) return empty("tail-chart", "no events yet");
  draw("tail-chart", {
    type: "line",
    data: {
      labels: tail.item_share.map((s) => percent(s, 0)),
      datasets: [
        { label: "interactions", data: tail.interaction_share, borderColor: PALETTE[4],
          backgroundColor: PALETTE[4] + "22", fill: "origin", pointRadius: 0 },
        { label: "all items equal", data: tail.item_share, borderColor: "#999",
          borderDash: [4, 4], pointRadius: 0 },
      ],
    },
    options: { scales: { x: { title: { display: true, text: "most popular share of items" } },
                         y: { min: 0, max: 1, ticks: { callback: (v) => percent(v, 0) } } } },
  });
}

load();
