// Formatting shared by the views: times in the viewer's local time zone, durations,
// temperatures, and the seed's "⚡ Auto" badge and its tooltip. Pure functions, no DOM
// state, so a dashboard author can lift them as they are.

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' });

/** An RFC 3339 time from the API in the viewer's local time, or '' when absent. */
export function formatDateTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dateTime.format(d);
}

/** Only the time of day when `iso` is today, else date and time. */
export function formatWhen(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const now = new Date();
  return d.toDateString() === now.toDateString() ? timeOnly.format(d) : dateTime.format(d);
}

/** Seconds as "1 h 05 min", "12 min", "40 s". */
export function formatDuration(seconds) {
  if (seconds == null || !Number.isFinite(seconds) || seconds < 0) return '';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  return `${h} h ${String(m % 60).padStart(2, '0')} min`;
}

/** How long a job ran: its recorded duration when it ended, else time since it started. */
export function jobDuration(job, now = Date.now()) {
  if (job.actual_duration != null) return job.actual_duration;
  if (job.start_time && (job.status === 'running' || job.status === 'paused')) {
    return Math.max(0, (now - new Date(job.start_time).getTime()) / 1000);
  }
  return null;
}

/** "215 °C" or "215 / 220 °C"; '' when the printer reported nothing. */
export function formatTemp(current, target) {
  if (current == null) return '';
  const c = Math.round(current);
  return target ? `${c} / ${Math.round(target)} °C` : `${c} °C`;
}

/** The seed's test: `customer_info.auto_created === true`. */
export function isAutoCreated(job) {
  return job?.customer_info?.auto_created === true;
}

/** The seed's tooltip, word for word: lines joined with "\n". */
export function autoTooltip(job) {
  let text = 'Automatically created';
  if (job.customer_info?.discovered_on_startup) text += ' (discovered on startup)';
  if (job.customer_info?.discovery_time) {
    text += `\nDiscovered: ${formatDateTime(job.customer_info.discovery_time)}`;
  }
  return text;
}

/** The "⚡ Auto" badge element for an auto-created job, else null. The tooltip is
 *  the `title` for pointer users and hidden text for screen readers. */
export function autoBadge(job) {
  if (!isAutoCreated(job)) return null;
  const tip = autoTooltip(job);
  const badge = el('span', { class: 'badge-auto', title: tip });
  badge.append(
    el('span', { class: 'badge-auto__label', 'aria-hidden': 'true' }, '⚡ Auto'),
    el('span', { class: 'visually-hidden' }, tip.replace('\n', '. ')),
  );
  return badge;
}

/** Small element builder: attributes, then children (strings become text). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c == null) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

export const STATUS_LABELS = {
  pending: 'Pending',
  running: 'Running',
  paused: 'Paused',
  completed: 'Completed',
  failed: 'Failed',
  cancelled: 'Cancelled',
  unknown: 'Unknown',
};

// ---- printers

export const TYPE_LABELS = { bambu: 'Bambu Lab', prusalink: 'PrusaLink', octoprint: 'OctoPrint', moonraker: 'Moonraker' };

export const CONNECTION_LABELS = {
  connected: 'Online',
  connecting: 'Connecting…',
  disconnected: 'Offline',
  auth_failed: 'Authentication failed',
  error: 'Offline (error)',
};

export const STATE_LABELS = {
  idle: 'Idle',
  preparing: 'Preparing',
  printing: 'Printing',
  paused: 'Paused',
  finished: 'Finished',
  failed: 'Failed',
  cancelled: 'Cancelled',
  error: 'Error',
  unknown: 'Unknown',
};

/** What the printer table counts, filters and sorts by: the printer's own state while it
 *  is online, else why it is not (connecting, refused credentials, offline). Every
 *  printer has exactly one, so the counts add up to the number of printers. */
export function printerStatusKey(p) {
  const c = p?.connection ?? 'disconnected';
  if (c === 'connected') return STATE_LABELS[p.state] ? p.state : 'unknown';
  if (c === 'connecting' || c === 'auth_failed') return c;
  return 'offline';
}

/** The keys of `printerStatusKey` in the order the table sorts and counts them: busy
 *  first, then trouble, then done and idle, then the printers that cannot be seen. */
export const PRINTER_STATUS_ORDER = [
  'printing', 'preparing', 'paused', 'error', 'failed', 'finished', 'cancelled', 'idle', 'unknown',
  'connecting', 'auth_failed', 'offline',
];

export const PRINTER_STATUS_LABELS = {
  ...STATE_LABELS,
  connecting: 'Connecting',
  auth_failed: 'Authentication failed',
  offline: 'Offline',
};
