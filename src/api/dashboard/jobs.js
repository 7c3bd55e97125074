// The job list: `GET /api/v1/jobs` newest first, filtered and paged by the API itself
// (`printer_id`, `status`, `auto_created`, `q`, `limit`, `offset`), with edit and delete.
//
// The filters live in the URL fragment, so a reload or a bookmarked wall display shows
// the same view. Live events keep the page current: progress of a job on screen is
// patched in place, anything that can change which jobs belong on the page (a new job,
// a status change, a deletion) re-reads the page, at most a few times a second.

import { api } from './api.js';
import { autoBadge, autoTooltip, el, formatDateTime, formatDuration, formatWhen, isAutoCreated, jobDuration, STATUS_LABELS } from './format.js';
import { showToast } from './toast.js';

/** Re-reads triggered by events are gathered for this long, so a burst of events costs
 *  one request. */
const RELOAD_DEBOUNCE_MS = 250;
/** How often the running jobs' durations tick on screen. */
const TICK_MS = 15000;
const PAGE_SIZES = ['10', '25', '50', '100'];

export class JobsView {
  constructor(printers) {
    this.printers = printers;
    this.rows = document.getElementById('job-rows');
    this.empty = document.getElementById('jobs-empty');
    this.error = document.getElementById('jobs-error');
    this.count = document.getElementById('job-count');
    this.pageInfo = document.getElementById('page-info');
    this.prev = document.getElementById('page-prev');
    this.next = document.getElementById('page-next');
    this.form = document.getElementById('job-filters');
    this.controls = {
      printer_id: document.getElementById('filter-printer'),
      status: document.getElementById('filter-status'),
      auto_created: document.getElementById('filter-auto'),
      q: document.getElementById('filter-q'),
      limit: document.getElementById('page-size'),
    };
    this.offset = 0;
    this.total = 0;
    /** The jobs on screen, by id. */
    this.jobs = new Map();
    /** Printer ids seen in jobs, for the printer filter when the daemon has no printer list. */
    this.seenPrinters = new Set();
    this.loadSeq = 0;
    this.reloadTimer = null;
    this.readFragment();
    this.bind();
    setInterval(() => this.tick(), TICK_MS);
  }

  bind() {
    const changed = () => {
      this.offset = 0;
      this.load();
    };
    for (const name of ['printer_id', 'status', 'auto_created', 'limit']) {
      this.controls[name].addEventListener('change', changed);
    }
    let searchTimer = null;
    this.controls.q.addEventListener('input', () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(changed, 300);
    });
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      changed();
    });
    this.prev.addEventListener('click', () => this.page(-1));
    this.next.addEventListener('click', () => this.page(1));
    this.rows.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-action]');
      if (!b) return;
      const id = b.closest('tr')?.dataset.jobId;
      if (b.dataset.action === 'edit') this.openEdit(id, b);
      if (b.dataset.action === 'delete') this.openDelete(id, b);
    });
    this.printers.addEventListener('change', () => this.refreshPrinterOptions());
    this.bindEditDialog();
    this.bindDeleteDialog();
  }

  get limit() {
    return Number(this.controls.limit.value) || 25;
  }

  query() {
    const q = {};
    for (const name of ['printer_id', 'status', 'auto_created', 'q']) q[name] = this.controls[name].value.trim();
    q.limit = this.limit;
    q.offset = this.offset;
    return q;
  }

  readFragment() {
    const p = new URLSearchParams(location.hash.slice(1));
    for (const name of ['printer_id', 'status', 'auto_created', 'q']) {
      const v = p.get(name);
      if (v == null) continue;
      const c = this.controls[name];
      if (c.tagName === 'SELECT' && ![...c.options].some((o) => o.value === v)) c.append(el('option', { value: v }, v));
      c.value = v;
    }
    if (PAGE_SIZES.includes(p.get('limit'))) this.controls.limit.value = p.get('limit');
    this.offset = Math.max(0, Number(p.get('offset')) || 0);
  }

  writeFragment() {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(this.query())) {
      if (v !== '' && !(k === 'offset' && v === 0) && !(k === 'limit' && v === 25)) p.set(k, v);
    }
    const hash = p.toString();
    history.replaceState(null, '', hash ? `#${hash}` : location.pathname);
  }

  page(dir) {
    this.offset = Math.max(0, this.offset + dir * this.limit);
    this.load();
  }

  /** Re-reads the page soon; several calls in a burst make one request. */
  scheduleReload() {
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => this.load(), RELOAD_DEBOUNCE_MS);
  }

  async load() {
    clearTimeout(this.reloadTimer);
    const seq = ++this.loadSeq;
    this.writeFragment();
    let body;
    try {
      body = await api.listJobs(this.query());
    } catch (e) {
      if (seq !== this.loadSeq) return;
      if (e.status !== 0) this.showError(`Could not load jobs: ${e.message}`);
      return;
    }
    if (seq !== this.loadSeq) return;
    // Past the end (the last job of the last page was deleted): go back a page.
    if (body.jobs.length === 0 && body.total_count > 0 && this.offset > 0) {
      this.offset = Math.max(0, Math.floor((body.total_count - 1) / this.limit) * this.limit);
      return this.load();
    }
    this.showError('');
    this.total = body.total_count;
    this.jobs = new Map(body.jobs.map((j) => [j.id, j]));
    for (const j of body.jobs) this.seenPrinters.add(j.printer_id);
    this.render();
    this.refreshPrinterOptions();
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }

  render() {
    const focus = rememberFocus(this.rows);
    this.rows.replaceChildren(...[...this.jobs.values()].map((j) => this.row(j)));
    restoreFocus(this.rows, focus);
    const n = this.jobs.size;
    this.empty.hidden = n > 0;
    this.count.textContent = `(${this.total})`;
    this.pageInfo.textContent = n ? `${this.offset + 1}–${this.offset + n} of ${this.total}` : `0 of ${this.total}`;
    this.prev.disabled = this.offset === 0;
    this.next.disabled = this.offset + n >= this.total;
  }

  row(job) {
    const name = job.job_name || job.filename;
    const nameCell = el('td', { class: 'job-name', 'data-label': 'Job' }, el('span', { class: 'job-title' }, name));
    const badge = autoBadge(job);
    if (badge) nameCell.append(' ', badge);
    if (job.filename && job.filename !== name) nameCell.append(el('span', { class: 'job-file muted' }, job.filename));
    if (job.notes) nameCell.append(el('span', { class: 'job-notes muted' }, job.notes));

    const pct = Math.round(Number(job.progress) || 0);
    const progress = el('td', { 'data-label': 'Progress', class: 'num' });
    if (job.status !== 'pending') {
      const bar = el('div', { class: 'progress progress--small', 'aria-hidden': 'true' });
      const fill = el('div', { class: 'progress__fill' });
      fill.style.width = `${pct}%`;
      bar.append(fill);
      progress.append(el('span', {}, `${pct} %`), bar);
    }

    const started = el('td', { 'data-label': 'Started' });
    if (job.start_time) {
      started.append(el('time', { datetime: job.start_time, title: formatDateTime(job.start_time) }, formatWhen(job.start_time)));
    } else {
      started.append(el('span', { class: 'muted' }, 'Not started'));
    }

    return el(
      'tr',
      { dataset: { jobId: job.id, status: job.status, auto: isAutoCreated(job) ? 'true' : 'false' } },
      nameCell,
      el('td', { 'data-label': 'Printer' }, this.printers.name(job.printer_id)),
      el('td', { 'data-label': 'Status' }, el('span', { class: `pill status status-${job.status}` }, STATUS_LABELS[job.status] ?? job.status)),
      progress,
      started,
      el('td', { 'data-label': 'Duration', class: 'duration' }, formatDuration(jobDuration(job))),
      el(
        'td',
        { class: 'actions' },
        // data-needs: hidden (style.css) for a key whose role cannot do it.
        el('button', { type: 'button', class: 'button small', dataset: { action: 'edit', needs: 'operator' }, 'aria-label': `Edit ${name}` }, 'Edit'),
        el('button', { type: 'button', class: 'button small danger-outline', dataset: { action: 'delete', needs: 'operator' }, 'aria-label': `Delete ${name}` }, 'Delete'),
      ),
    );
  }

  tick() {
    for (const tr of this.rows.querySelectorAll('tr[data-status="running"], tr[data-status="paused"]')) {
      const job = this.jobs.get(tr.dataset.jobId);
      const cell = tr.querySelector('.duration');
      if (job && cell) cell.textContent = formatDuration(jobDuration(job));
    }
  }

  refreshPrinterOptions() {
    const select = this.controls.printer_id;
    const ids = new Set([...this.printers.printers.keys(), ...this.seenPrinters]);
    if (select.value) ids.add(select.value);
    const current = select.value;
    const options = [...ids].sort().map((id) => el('option', { value: id }, this.printers.name(id)));
    select.replaceChildren(el('option', { value: '' }, 'All printers'), ...options);
    select.value = current;
    // Printer names may have arrived after the rows were drawn.
    for (const tr of this.rows.children) {
      const job = this.jobs.get(tr.dataset.jobId);
      const cell = tr.querySelector('td[data-label="Printer"]');
      if (job && cell) cell.textContent = this.printers.name(job.printer_id);
    }
  }

  /** A job event from /ws: `job_created`, `job_auto_created`, `job_updated`, `job_deleted`. */
  onEvent(type, job) {
    // Progress and notes of a job on screen: patch the row. A change of status or name
    // can move it in or out of the filtered page: re-read.
    const shown = job?.id ? this.jobs.get(job.id) : null;
    if (type === 'job_updated' && shown && shown.status === job.status && shown.job_name === job.job_name) {
      this.jobs.set(job.id, job);
      const old = this.rows.querySelector(`tr[data-job-id="${CSS.escape(job.id)}"]`);
      if (old) {
        const focus = rememberFocus(this.rows);
        old.replaceWith(this.row(job));
        restoreFocus(this.rows, focus);
      }
      return;
    }
    this.scheduleReload();
  }

  /** Focus back where a dialog was opened from. If the list was re-read meanwhile (an
   *  event from another client), that button was replaced: focus its successor. */
  focusBack() {
    let target = this.returnFocus;
    const action = target?.dataset?.action;
    const id = target?.closest?.('tr')?.dataset.jobId;
    if (target && !target.isConnected && action && id) {
      target = this.rows.querySelector(`tr[data-job-id="${CSS.escape(id)}"] button[data-action="${action}"]`) ?? target;
    }
    target?.focus();
  }

  // ---- edit ----

  bindEditDialog() {
    const d = document.getElementById('edit-dialog');
    const form = document.getElementById('edit-form');
    document.getElementById('edit-cancel').addEventListener('click', () => d.close());
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const job = this.editing;
      if (!job) return;
      const name = document.getElementById('edit-name').value.trim();
      const notes = document.getElementById('edit-notes').value;
      const status = document.getElementById('edit-status').value;
      const patch = {};
      if (name !== job.job_name) patch.job_name = name;
      if ((notes || null) !== (job.notes || null)) patch.notes = notes || null;
      if (status !== job.status) patch.status = status;
      const err = document.getElementById('edit-error');
      if (Object.keys(patch).length === 0) {
        d.close();
        return;
      }
      const save = document.getElementById('edit-save');
      save.disabled = true;
      try {
        const updated = await api.updateJob(job.id, patch);
        d.close();
        showToast('success', 'Job saved', `${updated.job_name} on ${this.printers.name(updated.printer_id)}`);
        this.load();
      } catch (ex) {
        err.textContent = ex.message;
        err.hidden = false;
      } finally {
        save.disabled = false;
      }
    });
    d.addEventListener('close', () => {
      this.editing = null;
      this.focusBack();
    });
  }

  async openEdit(id, from) {
    let job = this.jobs.get(id);
    try {
      job = await api.getJob(id);
    } catch (e) {
      if (e.status === 404) {
        showToast('error', 'Job not found', 'It was deleted meanwhile.');
        this.load();
        return;
      }
    }
    if (!job) return;
    this.editing = job;
    this.returnFocus = from;
    document.getElementById('edit-name').value = job.job_name ?? '';
    document.getElementById('edit-notes').value = job.notes ?? '';
    document.getElementById('edit-status').value = job.status;
    const auto = document.getElementById('edit-auto');
    auto.hidden = !isAutoCreated(job);
    auto.textContent = isAutoCreated(job) ? `⚡ ${autoTooltip(job).replace('\n', '. ')}` : '';
    const err = document.getElementById('edit-error');
    err.hidden = true;
    document.getElementById('edit-title').textContent = `Edit job: ${job.filename}`;
    document.getElementById('edit-dialog').showModal();
    document.getElementById('edit-name').focus();
  }

  // ---- delete ----

  bindDeleteDialog() {
    const d = document.getElementById('delete-dialog');
    document.getElementById('delete-cancel').addEventListener('click', () => d.close());
    document.getElementById('delete-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const job = this.deleting;
      if (!job) return;
      const err = document.getElementById('delete-error');
      const confirm = document.getElementById('delete-confirm');
      confirm.disabled = true;
      try {
        await api.deleteJob(job.id);
        // Focus goes to the list heading: the row (and its button) is gone.
        this.returnFocus = document.getElementById('jobs-heading');
        d.close();
        showToast('success', 'Job deleted', `${job.job_name || job.filename} on ${this.printers.name(job.printer_id)}`);
        this.load();
      } catch (ex) {
        if (ex.status === 404) {
          d.close();
          this.load();
          return;
        }
        err.textContent = ex.message;
        err.hidden = false;
      } finally {
        confirm.disabled = false;
      }
    });
    d.addEventListener('close', () => {
      this.deleting = null;
      this.focusBack();
    });
  }

  openDelete(id, from) {
    const job = this.jobs.get(id);
    if (!job) return;
    this.deleting = job;
    this.returnFocus = from;
    document.getElementById('delete-text').textContent =
      `“${job.job_name || job.filename}” on ${this.printers.name(job.printer_id)} will be removed from the history. This cannot be undone.`;
    document.getElementById('delete-error').hidden = true;
    document.getElementById('delete-dialog').showModal();
    document.getElementById('delete-cancel').focus();
  }
}

/** Which row button had the focus, so a re-render can give it back. */
function rememberFocus(container) {
  const a = document.activeElement;
  if (!a || !container.contains(a)) return null;
  return { id: a.closest('tr')?.dataset.jobId, action: a.dataset.action };
}

function restoreFocus(container, f) {
  if (!f?.id) return;
  const tr = container.querySelector(`tr[data-job-id="${CSS.escape(f.id)}"]`);
  const target = tr?.querySelector(`[data-action="${f.action}"]`);
  if (target) target.focus();
}
