// The statistics panel: `GET /api/v1/stats?group_by=printer` over the last 24 hours, 7
// days or 30 days. Utilisation and success rate per printer as a bar chart drawn in
// plain inline SVG (nothing loaded from elsewhere; the page's Content-Security-Policy
// stays as strict as it is) and as a table, the farm's totals in a line, and failed and
// cancelled jobs counted by the reason the printer gave (`end_reasons` of the totals).
//
// It is read when the page (re)connects, when the window changes, and after job
// events, at most once every few seconds however many events arrive.

import { api } from './api.js';
import { el } from './format.js';

const WINDOW_STORAGE = 'printfarmd.statsWindow';
const WINDOWS = ['24', '168', '720'];
/** Job events re-read the figures at most this often. */
const REFRESH_MIN_MS = 15000;
const SVG = 'http://www.w3.org/2000/svg';
/** The chart's coordinate box; the SVG scales it to the panel's width. */
const W = 1000;
const H = 340;
const PAD = { left: 80, right: 8, top: 10, bottom: 120 };
/** Printer names under the bars only while there is room for them. */
const MAX_LABELLED_BARS = 60;
/** Widest a bar (with its gap) may be. */
const MAX_BAR_STEP = 60;

const pct = (v) => (v == null ? '–' : `${Math.round(v * 100)} %`);

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v != null) e.setAttribute(k, String(v));
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}

/** ok, warn, bad, or none (no completed, failed or cancelled job yet). */
export function successClass(rate) {
  if (rate == null) return 'none';
  return rate >= 0.9 ? 'ok' : rate >= 0.7 ? 'warn' : 'bad';
}

export class StatsView {
  constructor(printers) {
    this.printers = printers;
    this.section = document.getElementById('stats');
    this.select = document.getElementById('stats-window');
    this.chart = document.getElementById('stats-chart');
    this.summary = document.getElementById('stats-summary');
    this.rows = document.getElementById('stats-rows');
    this.failures = document.getElementById('failure-rows');
    this.failuresEmpty = document.getElementById('failures-empty');
    this.error = document.getElementById('stats-error');
    this.seq = 0;
    this.lastLoad = 0;
    this.timer = null;
    try {
      const w = localStorage.getItem(WINDOW_STORAGE);
      if (WINDOWS.includes(w)) this.select.value = w;
    } catch {
      // The default window.
    }
    this.select.addEventListener('change', () => {
      try {
        localStorage.setItem(WINDOW_STORAGE, this.select.value);
      } catch {
        // Kept for this page only.
      }
      this.load();
    });
    // Names may arrive after the figures.
    printers.addEventListener('change', () => this.data && this.render(this.data));
  }

  /** A job changed: the figures are read again soon, not once per event. */
  onJobEvent() {
    if (this.timer) return;
    const wait = Math.max(0, this.lastLoad + REFRESH_MIN_MS - Date.now());
    this.timer = setTimeout(() => this.load(), wait);
  }

  async load() {
    clearTimeout(this.timer);
    this.timer = null;
    this.lastLoad = Date.now();
    const seq = ++this.seq;
    const hours = Number(this.select.value) || 168;
    const since = new Date(Date.now() - hours * 3600_000).toISOString();
    let data;
    try {
      data = await api.stats({ group_by: 'printer', since });
    } catch (e) {
      if (seq !== this.seq) return;
      if (e.status === 404) {
        this.section.hidden = true;
        return;
      }
      if (e.status !== 0) this.showError(`Could not load the statistics: ${e.message}`);
      return;
    }
    if (seq !== this.seq) return;
    this.showError('');
    this.data = data;
    this.render(data);
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }

  render(data) {
    const groups = (data.groups ?? []).filter((g) => g.jobs > 0)
      .sort((a, b) => (b.utilisation ?? 0) - (a.utilisation ?? 0) || b.jobs - a.jobs || (a.key < b.key ? -1 : 1));
    const t = data.totals ?? {};
    this.section.dataset.printers = String(groups.length);
    this.summary.textContent = t.jobs
      ? `${t.jobs} jobs on ${groups.length} printers: ${t.by_status?.completed ?? 0} completed, ${t.by_status?.failed ?? 0} failed, `
        + `${t.by_status?.cancelled ?? 0} cancelled; success rate ${pct(t.success_rate)}, `
        + `${(t.print_hours ?? 0).toFixed(1)} print hours, utilisation ${pct(t.utilisation)}.`
      : 'No jobs in this window.';
    this.drawChart(groups);
    this.rows.replaceChildren(...groups.map((g) => el(
      'tr',
      { dataset: { printerId: g.key } },
      el('th', { scope: 'row', 'data-label': 'Printer' }, this.printers.name(g.key)),
      el('td', { class: 'num', 'data-label': 'Jobs' }, String(g.jobs)),
      el('td', { class: 'num', 'data-label': 'Completed / failed / cancelled' },
        `${g.by_status?.completed ?? 0} / ${g.by_status?.failed ?? 0} / ${g.by_status?.cancelled ?? 0}`),
      el('td', { class: 'num', 'data-label': 'Success' }, pct(g.success_rate)),
      el('td', { class: 'num', 'data-label': 'Print hours' }, (g.print_hours ?? 0).toFixed(1)),
      el('td', { class: 'num', 'data-label': 'Utilisation' }, pct(g.utilisation)),
    )));
    const reasons = t.end_reasons ?? [];
    this.failures.replaceChildren(...reasons.map((r) => el(
      'tr',
      {},
      el('td', { class: 'reason', 'data-label': 'Reason' }, r.reason),
      el('td', { class: 'num', 'data-label': 'Jobs' }, String(r.count)),
    )));
    this.failuresEmpty.hidden = reasons.length > 0;
  }

  /** One bar per printer with jobs: height = utilisation, colour = success rate. */
  drawChart(groups) {
    const c = this.chart;
    const plotW = W - PAD.left - PAD.right;
    const plotH = H - PAD.top - PAD.bottom;
    const parts = [];
    for (const v of [0, 0.25, 0.5, 0.75, 1]) {
      const y = PAD.top + plotH * (1 - v);
      parts.push(
        svg('line', { class: 'grid', x1: PAD.left, x2: W - PAD.right, y1: y, y2: y }),
        svg('text', { class: 'axis', x: PAD.left - 6, y: y + 4, 'text-anchor': 'end' }, `${v * 100}%`),
      );
    }
    const n = groups.length;
    // A few printers get bars of a readable width, not the whole chart each.
    const step = n ? Math.min(plotW / n, MAX_BAR_STEP) : 0;
    const gap = Math.min(6, step * 0.2);
    groups.forEach((g, i) => {
      const u = Math.min(1, Math.max(0, g.utilisation ?? 0));
      // A printer with jobs but no print time yet still gets a sliver, so it is seen.
      const h = Math.max(1, plotH * u);
      const x = PAD.left + i * step + gap / 2;
      const name = this.printers.name(g.key);
      parts.push(svg(
        'rect',
        {
          class: `stats-bar ${successClass(g.success_rate)}`,
          'data-printer-id': g.key,
          x: x.toFixed(2),
          y: (PAD.top + plotH - h).toFixed(2),
          width: Math.max(0.5, step - gap).toFixed(2),
          height: h.toFixed(2),
        },
        svg('title', {}, `${name}: utilisation ${pct(g.utilisation)}, success ${pct(g.success_rate)}, ${g.jobs} jobs`),
      ));
      if (n <= MAX_LABELLED_BARS) {
        const label = name.length > 18 ? `${name.slice(0, 17)}…` : name;
        const lx = x + (step - gap) / 2;
        const ly = PAD.top + plotH + 10;
        parts.push(svg('text', { class: 'axis label', x: lx.toFixed(2), y: ly, 'text-anchor': 'end', transform: `rotate(-60 ${lx.toFixed(2)} ${ly})` }, label));
      }
    });
    if (!n) parts.push(svg('text', { class: 'axis', x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'No jobs in this window'));
    c.setAttribute('viewBox', `0 0 ${W} ${H}`);
    c.replaceChildren(...parts);
    c.setAttribute('aria-label', n
      ? `Utilisation of ${n} printers, from ${pct(groups[0].utilisation)} down to ${pct(groups[n - 1].utilisation)}`
      : 'No jobs in this window');
  }
}
