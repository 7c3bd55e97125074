// The compact printer table: one row per printer, for farms where a card per printer is
// a long scroll. Sortable by name, state, progress and time left (click a header;
// `aria-sort` says how it is sorted), filtered by state, type and a text (name, id or
// file), with the number of printers per state above it (each a filter button).
//
// Built for 500 printers and a `printer_status` event per printer every second or so:
// events are only collected (the newest per printer) and applied once per animation
// frame; a row's cells are written only when their text changes, rows move only when
// the order changed, and the counts are kept as the rows change, so an event costs a
// few property comparisons rather than a re-render. `metrics` counts what that costs
// (the browser test prints it).

import {
  el, formatDuration, PRINTER_STATUS_LABELS, PRINTER_STATUS_ORDER, printerStatusKey, TYPE_LABELS,
} from './format.js';

const SORT_STORAGE = 'printfarmd.printerSort';
const SORT_KEYS = ['name', 'state', 'progress', 'remaining'];
const SORT_ARIA = { 1: 'ascending', '-1': 'descending' };
/** Sorted by progress or time left, which change with every status of a printing
 *  printer, the rows are put back in order at most this often rather than every frame:
 *  cheaper, and a row can be read before it moves. */
const LIVE_RESORT_MS = 1000;

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
const RANK = new Map(PRINTER_STATUS_ORDER.map((k, i) => [k, i]));

/** The current print's progress (0–100) or null when nothing is printing. */
function progressOf(p) {
  const cp = p.current_print;
  if (!cp || p.connection !== 'connected') return null;
  const n = Number(cp.progress);
  return Number.isFinite(n) ? Math.min(100, Math.max(0, n)) : null;
}

function remainingOf(p) {
  const s = p.current_print?.remaining_s;
  return p.connection === 'connected' && Number.isFinite(s) && s >= 0 ? s : null;
}

function fileOf(p) {
  const cp = p.current_print;
  return (p.connection === 'connected' && (cp?.job_name || cp?.filename)) || '';
}

/** Sets a text node's text only when it differs: most events change nothing visible. */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export class PrinterTable {
  constructor() {
    this.view = document.getElementById('printer-table-view');
    this.body = document.getElementById('printer-rows');
    this.head = document.querySelector('#printer-table thead');
    this.countsBox = document.getElementById('state-counts');
    this.info = document.getElementById('printer-table-info');
    this.controls = {
      state: document.getElementById('printer-filter-state'),
      type: document.getElementById('printer-filter-type'),
      q: document.getElementById('printer-filter-q'),
    };
    /** id → { p, tr, cells, key, visible } */
    this.rows = new Map();
    /** Printers whose newest status is not on screen yet. */
    this.pending = new Map();
    this.frame = 0;
    this.counts = new Map();
    this.countsShown = '';
    this.typesShown = '';
    this.filter = { state: '', type: '', q: '' };
    this.sort = readSort();
    this.active = false;
    this.reorderTimer = null;
    this.lastReorder = 0;
    this.metrics = { renders: 0, renderMs: 0, firstRenderAt: null, events: 0, flushes: 0, flushMs: 0, flushMsMax: 0 };
    this.bind();
    this.showSort();
  }

  bind() {
    this.head.addEventListener('click', (e) => {
      const th = e.target.closest('th[data-sort]');
      if (!th) return;
      const key = th.dataset.sort;
      this.sort = { key, dir: this.sort.key === key ? -this.sort.dir : (key === 'name' || key === 'state' ? 1 : -1) };
      try {
        localStorage.setItem(SORT_STORAGE, JSON.stringify(this.sort));
      } catch {
        // Kept for this page only.
      }
      this.showSort();
      this.reorder();
    });
    this.countsBox.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-state]');
      if (!b) return;
      const state = this.filter.state === b.dataset.state ? '' : b.dataset.state;
      this.controls.state.value = state;
      this.setFilter();
    });
    for (const c of [this.controls.state, this.controls.type]) c.addEventListener('change', () => this.setFilter());
    this.controls.q.addEventListener('input', () => this.setFilter());
    this.controls.q.form?.addEventListener('submit', (e) => e.preventDefault());
    this.controls.state.append(...PRINTER_STATUS_ORDER.map((k) => el('option', { value: k }, PRINTER_STATUS_LABELS[k])));
  }

  /** Shows or hides the table; a hidden table keeps no rows (the cards are shown). */
  setActive(on, printers) {
    this.active = on;
    this.view.hidden = !on;
    if (on) this.renderAll(printers);
    else {
      cancelAnimationFrame(this.frame);
      this.frame = 0;
      clearTimeout(this.reorderTimer);
      this.reorderTimer = null;
      this.pending.clear();
      this.rows.clear();
      this.body.replaceChildren();
    }
  }

  /** Builds every row from scratch: on load, after a reconnection, on switching here. */
  renderAll(printers) {
    if (!this.active) return;
    const t0 = performance.now();
    this.pending.clear();
    this.rows.clear();
    this.counts.clear();
    for (const p of printers) this.rows.set(p.id, this.makeRow(p));
    this.refreshTypes();
    this.applyFilter(false);
    this.reorder(true);
    this.showCounts();
    const m = this.metrics;
    m.renders += 1;
    m.renderMs = performance.now() - t0;
    if (m.firstRenderAt == null && this.rows.size) m.firstRenderAt = performance.now();
  }

  /** A `printer_status` event: kept until the next frame, which applies all of them. */
  update(p) {
    if (!this.active) return;
    this.metrics.events += 1;
    this.pending.set(p.id, p);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    const t0 = performance.now();
    const m = this.metrics;
    m.flushes += 1;
    let moved = false;
    let newType = false;
    let shownChanged = false;
    const key = this.sort.key;
    for (const p of this.pending.values()) {
      const r = this.rows.get(p.id);
      if (!r) {
        this.rows.set(p.id, this.makeRow(p));
        moved = true;
        newType = true;
        continue;
      }
      const before = sortValue(r, key);
      if (p.type !== r.p.type) newType = true;
      this.paint(r, p);
      if (sortValue(r, key) !== before) moved = true;
      if (this.showIfMatches(r)) shownChanged = true;
    }
    this.pending.clear();
    if (newType) this.refreshTypes();
    if (moved) {
      if (key === 'progress' || key === 'remaining') this.scheduleReorder();
      else this.reorder();
    }
    if (shownChanged) this.showInfo();
    this.showCounts();
    const ms = performance.now() - t0;
    m.flushMs += ms;
    m.flushMsMax = Math.max(m.flushMsMax, ms);
  }

  makeRow(p) {
    const cells = {
      name: el('span', { class: 'printer-row__name' }),
      type: el('td', { 'data-label': 'Type' }),
      state: el('span', { class: 'pill state' }),
      file: el('td', { class: 'printer-row__file', 'data-label': 'File' }),
      pct: el('span', {}),
      fill: el('div', { class: 'progress__fill' }),
      bar: null,
      left: el('td', { class: 'num', 'data-label': 'Time left' }),
    };
    cells.bar = el('div', { class: 'progress progress--small', 'aria-hidden': 'true' }, cells.fill);
    const tr = el(
      'tr',
      { dataset: { printerId: p.id } },
      el('th', { scope: 'row', 'data-label': 'Printer' }, cells.name),
      cells.type,
      el('td', { 'data-label': 'State' }, cells.state),
      cells.file,
      el('td', { class: 'num', 'data-label': 'Progress' }, cells.pct, cells.bar),
      cells.left,
    );
    const r = { p, tr, cells, key: null, visible: true, progress: null, remaining: null };
    this.paint(r, p);
    this.showIfMatches(r);
    return r;
  }

  /** Writes `p` into row `r`, touching only what changed, and keeps the counts. */
  paint(r, p) {
    r.p = p;
    const c = r.cells;
    const key = printerStatusKey(p);
    if (key !== r.key) {
      if (r.key) this.counts.set(r.key, (this.counts.get(r.key) ?? 1) - 1);
      this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
      r.key = key;
      r.tr.dataset.state = key;
      c.state.className = `pill state state-${key}`;
      c.state.textContent = PRINTER_STATUS_LABELS[key] ?? key;
    }
    setText(c.name, p.name || p.id);
    setText(c.type, TYPE_LABELS[p.type] ?? p.type ?? '');
    const file = fileOf(p);
    setText(c.file, file);
    if (c.file.title !== (p.current_print?.filename ?? '')) c.file.title = p.current_print?.filename ?? '';
    const pct = progressOf(p);
    r.progress = pct;
    setText(c.pct, pct == null ? '' : `${Math.round(pct)} %`);
    c.bar.hidden = pct == null;
    const width = `${pct ?? 0}%`;
    if (c.fill.style.width !== width) c.fill.style.width = width;
    r.remaining = remainingOf(p);
    setText(c.left, r.remaining == null ? '' : formatDuration(r.remaining));
  }

  setFilter() {
    this.filter = {
      state: this.controls.state.value,
      type: this.controls.type.value,
      q: this.controls.q.value.trim().toLowerCase(),
    };
    this.applyFilter(true);
    this.showCounts(true);
  }

  matches(r) {
    const f = this.filter;
    if (f.state && r.key !== f.state) return false;
    if (f.type && r.p.type !== f.type) return false;
    if (!f.q) return true;
    const p = r.p;
    return [p.name, p.id, p.current_print?.filename, p.current_print?.job_name]
      .some((s) => typeof s === 'string' && s.toLowerCase().includes(f.q));
  }

  /** Hides or shows row `r` by the filters; true when that changed. */
  showIfMatches(r) {
    const v = this.matches(r);
    if (v === r.visible) return false;
    r.visible = v;
    r.tr.hidden = !v;
    return true;
  }

  applyFilter(announce) {
    for (const r of this.rows.values()) this.showIfMatches(r);
    if (announce) this.showInfo();
  }

  showInfo() {
    let shown = 0;
    for (const r of this.rows.values()) if (r.visible) shown += 1;
    setText(this.info, shown === this.rows.size ? `${shown} printers` : `Showing ${shown} of ${this.rows.size} printers`);
  }

  scheduleReorder() {
    if (this.reorderTimer) return;
    const wait = Math.max(0, this.lastReorder + LIVE_RESORT_MS - performance.now());
    this.reorderTimer = setTimeout(() => this.reorder(), wait);
  }

  /** Puts the rows in the sort order; moves DOM nodes only when the order changed. */
  reorder(force = false) {
    clearTimeout(this.reorderTimer);
    this.reorderTimer = null;
    this.lastReorder = performance.now();
    if (!this.active) return;
    const { key, dir } = this.sort;
    const sorted = [...this.rows.values()].sort((a, b) => order(a, b, key, dir));
    const current = this.body.children;
    let same = !force && current.length === sorted.length;
    for (let i = 0; same && i < sorted.length; i++) same = current[i] === sorted[i].tr;
    if (!same) this.body.replaceChildren(...sorted.map((r) => r.tr));
    this.showInfo();
  }

  showSort() {
    for (const th of this.head.querySelectorAll('th[data-sort]')) {
      if (th.dataset.sort === this.sort.key) th.setAttribute('aria-sort', SORT_ARIA[this.sort.dir]);
      else th.removeAttribute('aria-sort');
    }
  }

  /** The per-state buttons above the table, in `PRINTER_STATUS_ORDER`, one per state
   *  that has printers. Updated in place, so a button keeps the keyboard focus while
   *  its count changes; nothing is touched when no count changed. */
  showCounts(force = false) {
    const parts = PRINTER_STATUS_ORDER.filter((k) => this.counts.get(k) > 0).map((k) => [k, this.counts.get(k)]);
    const sig = `${this.filter.state}|${parts.join(';')}`;
    if (!force && sig === this.countsShown) return;
    this.countsShown = sig;
    const existing = new Map([...this.countsBox.children].map((b) => [b.dataset.state, b]));
    let at = this.countsBox.firstElementChild;
    for (const [k, n] of parts) {
      let b = existing.get(k);
      existing.delete(k);
      if (!b) {
        b = el(
          'button',
          { type: 'button', class: `state-count pill state-${k}`, dataset: { state: k }, title: `Show only printers that are ${PRINTER_STATUS_LABELS[k].toLowerCase()}` },
          `${PRINTER_STATUS_LABELS[k] ?? k} `,
          el('span', { class: 'state-count__n' }),
        );
      }
      if (b.dataset.count !== String(n)) {
        b.dataset.count = String(n);
        b.lastElementChild.textContent = String(n);
      }
      b.setAttribute('aria-pressed', this.filter.state === k ? 'true' : 'false');
      if (b !== at) this.countsBox.insertBefore(b, at);
      else at = at.nextElementSibling;
    }
    for (const b of existing.values()) b.remove();
  }

  /** The type filter lists the types the farm has. */
  refreshTypes() {
    const types = [...new Set([...this.rows.values()].map((r) => r.p.type).filter(Boolean))].sort();
    const sig = types.join(',');
    if (sig === this.typesShown) return;
    this.typesShown = sig;
    const keep = this.controls.type.value;
    this.controls.type.replaceChildren(
      el('option', { value: '' }, 'Any type'),
      ...types.map((t) => el('option', { value: t }, TYPE_LABELS[t] ?? t)),
    );
    this.controls.type.value = types.includes(keep) ? keep : '';
  }
}

function sortValue(r, key) {
  if (key === 'state') return r.key;
  if (key === 'progress') return r.progress;
  if (key === 'remaining') return r.remaining;
  return r.p.name || r.p.id;
}

/** The order of two rows sorted by `key` in direction `dir` (1 or -1); printers without
 *  a value (nothing printing) come after those with one either way; ties by name. */
function order(a, b, key, dir) {
  const byName = collator.compare(a.p.name || a.p.id, b.p.name || b.p.id) || (a.p.id < b.p.id ? -1 : 1);
  if (key === 'name') return byName * dir;
  if (key === 'state') return ((RANK.get(a.key) ?? 99) - (RANK.get(b.key) ?? 99)) * dir || byName;
  const va = sortValue(a, key);
  const vb = sortValue(b, key);
  if (va == null || vb == null) return va == null && vb == null ? byName : va == null ? 1 : -1;
  return (va - vb) * dir || byName;
}

function readSort() {
  try {
    const s = JSON.parse(localStorage.getItem(SORT_STORAGE) || 'null');
    if (SORT_KEYS.includes(s?.key) && (s.dir === 1 || s.dir === -1)) return s;
  } catch {
    // Nothing kept, or not readable: the default.
  }
  return { key: 'name', dir: 1 };
}
