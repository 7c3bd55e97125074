// Printer cards: one per printer from `GET /api/v1/printers`, kept live by
// `printer_status` events (whose data is the same printer object), with pause, resume
// and cancel buttons (`POST /api/v1/printers/{id}/…`; cancel asks first).
//
// The same printers can be shown as the compact table instead (printer-table.js; the
// Cards/Table switch, kept in localStorage). Either way `printer_status` events are drawn
// once per animation frame, the newest per printer, so a farm of hundreds of printers
// reporting every second costs a redraw of what changed per frame, not one per event.
//
// A daemon without the printers endpoint (404) simply has no printer section; the rest of
// the dashboard does not depend on it. Printers that cannot be reached or refused our
// credentials are marked in words, colour and border, not colour alone.

import { api } from './api.js';
import { CONNECTION_LABELS, el, formatDuration, formatTemp, formatWhen, STATE_LABELS, TYPE_LABELS } from './format.js';
import { PrinterTable } from './printer-table.js';
import { showToast } from './toast.js';

const VIEW_STORAGE = 'printfarmd.printerView';

const CONTROL_DONE = { pause: 'Pause sent', resume: 'Resume sent', cancel: 'Print cancelled' };

export class PrintersView extends EventTarget {
  constructor() {
    super();
    this.section = document.getElementById('printers');
    this.list = document.getElementById('printer-cards');
    this.empty = document.getElementById('printers-empty');
    this.count = document.getElementById('printer-count');
    /** id → printer, in the order the API lists them. */
    this.printers = new Map();
    /** false once the daemon answered 404: it has no printers endpoint. */
    this.available = true;
    this.list.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-control]');
      if (!b) return;
      const id = b.closest('li[data-printer-id]')?.dataset.printerId;
      if (!id) return;
      if (b.dataset.control === 'cancel') this.openCancel(id, b);
      else this.control(id, b.dataset.control, b);
    });
    this.bindCancelDialog();
    /** Cards whose printer changed since the last frame; drawn once per frame. */
    this.pendingCards = new Map();
    this.cardFrame = 0;
    this.table = new PrinterTable();
    this.view = readView();
    this.viewButtons = [...document.querySelectorAll('#printer-view-switch button[data-view]')];
    for (const b of this.viewButtons) b.addEventListener('click', () => this.setView(b.dataset.view));
    this.showView();
  }

  /** Cards or the compact table; remembered in this browser. */
  setView(view) {
    if (view === this.view || !['cards', 'table'].includes(view)) return;
    this.view = view;
    try {
      localStorage.setItem(VIEW_STORAGE, view);
    } catch {
      // Not kept across reloads then.
    }
    this.showView();
    this.renderAll();
  }

  showView() {
    for (const b of this.viewButtons) b.setAttribute('aria-pressed', String(b.dataset.view === this.view));
    this.section.dataset.view = this.view;
    this.list.hidden = this.view !== 'cards';
    if (this.view === 'cards') this.table.setActive(false);
    else {
      this.list.replaceChildren();
      this.pendingCards.clear();
    }
  }

  /** Sends pause/resume/cancel; the card follows through `printer_status`. */
  async control(id, action, button) {
    if (button) button.disabled = true;
    try {
      await api.controlPrinter(id, action);
      showToast('success', CONTROL_DONE[action], this.name(id));
      return true;
    } catch (ex) {
      showToast('error', `Could not ${action} ${this.name(id)}`, ex.message);
      return false;
    } finally {
      if (button) button.disabled = false;
    }
  }

  bindCancelDialog() {
    const d = document.getElementById('cancel-print-dialog');
    if (!d) return;
    document.getElementById('cancel-print-keep').addEventListener('click', () => d.close());
    document.getElementById('cancel-print-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const id = this.cancelling;
      if (!id) return;
      const confirm = document.getElementById('cancel-print-confirm');
      confirm.disabled = true;
      try {
        await api.controlPrinter(id, 'cancel');
        d.close();
        showToast('success', CONTROL_DONE.cancel, this.name(id));
      } catch (ex) {
        const err = document.getElementById('cancel-print-error');
        err.textContent = ex.message;
        err.hidden = false;
      } finally {
        confirm.disabled = false;
      }
    });
    d.addEventListener('close', () => {
      this.cancelling = null;
      this.returnFocus?.focus();
    });
  }

  openCancel(id, from) {
    const p = this.printers.get(id);
    this.cancelling = id;
    this.returnFocus = from;
    const what = p?.current_print?.job_name || p?.current_print?.filename || 'the current print';
    document.getElementById('cancel-print-text').textContent =
      `“${what}” on ${this.name(id)} will be stopped. The printer cannot resume a cancelled print.`;
    document.getElementById('cancel-print-error').hidden = true;
    document.getElementById('cancel-print-dialog').showModal();
    document.getElementById('cancel-print-keep').focus();
  }

  /** The printer's display name, or its id when it is not known here. */
  name(id) {
    return this.printers.get(id)?.name || id;
  }

  async load() {
    let body;
    try {
      body = await api.listPrinters();
    } catch (e) {
      if (e.status === 404) {
        this.available = false;
        this.section.hidden = true;
      }
      // Unreachable or another error: keep what is shown; the banner says why.
      return;
    }
    this.available = true;
    this.printers = new Map((body?.printers ?? []).map((p) => [p.id, p]));
    this.renderAll();
  }

  /** A `printer_status` event. The view draws it on the next frame, with any others
   *  that arrive before then (one per printer: the newest). */
  update(p) {
    if (!p?.id) return;
    const known = this.printers.has(p.id);
    this.printers.set(p.id, p);
    if (!known) this.count.textContent = `(${this.printers.size})`;
    if (this.view === 'table') {
      this.table.update(p);
      if (!known) this.dispatchEvent(new Event('change'));
      return;
    }
    if (!known) {
      this.renderAll();
      return;
    }
    this.pendingCards.set(p.id, p);
    if (!this.cardFrame) this.cardFrame = requestAnimationFrame(() => this.flushCards());
  }

  flushCards() {
    this.cardFrame = 0;
    for (const p of this.pendingCards.values()) {
      const old = this.list.querySelector(`li[data-printer-id="${CSS.escape(p.id)}"]`);
      if (old) old.replaceWith(card(p));
    }
    this.pendingCards.clear();
  }

  renderAll() {
    this.section.hidden = false;
    const all = [...this.printers.values()];
    this.pendingCards.clear();
    if (this.view === 'table') this.table.setActive(true, all);
    else this.list.replaceChildren(...all.map(card));
    this.empty.hidden = all.length > 0;
    this.count.textContent = all.length ? `(${all.length})` : '';
    this.dispatchEvent(new Event('change'));
  }
}

function readView() {
  try {
    return localStorage.getItem(VIEW_STORAGE) === 'table' ? 'table' : 'cards';
  } catch {
    return 'cards';
  }
}

function card(p) {
  const connection = p.connection ?? 'disconnected';
  const online = connection === 'connected';
  const state = online ? (p.state ?? 'unknown') : 'unknown';
  const headingId = `printer-${p.id}-name`;
  const item = el('li', {
    class: `printer-card conn-${connection} state-${state}`,
    'aria-labelledby': headingId,
    dataset: { printerId: p.id, connection, state },
  });

  const header = el(
    'div',
    { class: 'printer-card__head' },
    el('h3', { id: headingId, class: 'printer-card__name' }, p.name || p.id),
    el('span', { class: `pill conn conn-${connection}` }, CONNECTION_LABELS[connection] ?? connection),
  );
  const meta = el('p', { class: 'printer-card__meta muted' }, TYPE_LABELS[p.type] ?? p.type ?? '', p.host ? ` · ${p.host}` : '');
  item.append(header, meta);

  if (!online) {
    const why = connection === 'auth_failed'
      ? 'The printer refused the configured credentials; check the access code or password.'
      : connection === 'connecting'
        ? 'Connecting to the printer…'
        : 'The printer cannot be reached.';
    item.append(el('p', { class: 'printer-card__problem', role: connection === 'connecting' ? null : 'note' }, why));
    if (p.last_error) item.append(el('p', { class: 'printer-card__error muted' }, p.last_error));
    if (p.last_seen) item.append(el('p', { class: 'muted' }, `Last seen ${formatWhen(p.last_seen)}`));
  } else {
    item.append(el('p', { class: 'printer-card__state' }, el('span', { class: `pill state state-${state}` }, STATE_LABELS[state] ?? state)));
  }

  const cp = p.current_print;
  if (online && cp && (cp.filename || cp.job_name)) {
    const pct = clampPct(cp.progress);
    const bar = el('div', {
      class: 'progress',
      role: 'progressbar',
      'aria-valuemin': 0,
      'aria-valuemax': 100,
      'aria-valuenow': Math.round(pct),
      'aria-label': `Progress of ${cp.job_name || cp.filename}`,
    });
    const fill = el('div', { class: 'progress__fill' });
    fill.style.width = `${pct}%`;
    bar.append(fill);
    const details = [];
    details.push(`${Math.round(pct)} %`);
    if (cp.remaining_s != null) details.push(`${formatDuration(cp.remaining_s)} left`);
    if (cp.layer != null && cp.total_layers) details.push(`layer ${cp.layer} / ${cp.total_layers}`);
    item.append(
      el('p', { class: 'printer-card__file', title: cp.filename || '' }, cp.job_name || cp.filename),
      bar,
      el('p', { class: 'printer-card__progress muted' }, details.join(' · ')),
    );
  }

  if (online) {
    const buttons = [];
    const name = p.name || p.id;
    if (state === 'printing') buttons.push(['pause', 'Pause', 'button small']);
    if (state === 'paused') buttons.push(['resume', 'Resume', 'button small']);
    if (['preparing', 'printing', 'paused'].includes(state)) buttons.push(['cancel', 'Cancel…', 'button small danger-outline']);
    if (buttons.length) {
      item.append(el('div', { class: 'printer-card__controls', dataset: { needs: 'operator' } }, ...buttons.map(([action, label, cls]) =>
        el('button', { type: 'button', class: cls, dataset: { control: action }, 'aria-label': `${label.replace('…', '')} the print on ${name}` }, label))));
    }
  }

  const t = p.temperatures;
  if (online && t) {
    const temps = el('dl', { class: 'temps' });
    for (const [label, cur, target] of [
      ['Nozzle', t.nozzle, t.nozzle_target],
      ['Bed', t.bed, t.bed_target],
      ['Chamber', t.chamber, null],
    ]) {
      const text = formatTemp(cur, target);
      if (text) temps.append(el('div', {}, el('dt', {}, label), el('dd', {}, text)));
    }
    if (temps.children.length) item.append(temps);
  }
  return item;
}

function clampPct(v) {
  const n = Number(v);
  return Number.isFinite(n) ? Math.min(100, Math.max(0, n)) : 0;
}
