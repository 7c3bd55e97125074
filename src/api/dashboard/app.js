// The dashboard's entry point: builds the views, connects to /ws and routes each event
// to the view that shows it. Everything it knows it learns from the public REST API and
// the event stream, the same ones any other client uses.

import { api, connectivity, setApiKey, wsTarget } from './api.js';
import { setupExport } from './export.js';
import { KeysView } from './keys.js';
import { Live } from './live.js';
import { PrintersView } from './printers.js';
import { JobsView } from './jobs.js';
import { SettingsView } from './settings.js';
import { StatsView } from './stats.js';
import { showToast } from './toast.js';

const THEME_STORAGE = 'printfarmd.theme';

const printers = new PrintersView();
const jobs = new JobsView(printers);
const settings = new SettingsView();
const stats = new StatsView(printers);
const keys = new KeysView();
const live = new Live(wsTarget);

setupTheme();
setupBanner();
setupApiKeyDialog();
setupExport(document.getElementById('export-csv'), () => jobs.query());

live.addEventListener('open', () => resync());
live.addEventListener('printer_status', (e) => printers.update(e.detail));
live.addEventListener('settings_updated', (e) => settings.show(e.detail));
for (const type of ['job_created', 'job_updated', 'job_deleted', 'job_auto_created']) {
  live.addEventListener(type, (e) => {
    jobs.onEvent(type, e.detail);
    stats.onJobEvent();
  });
}
live.addEventListener('job_auto_created', (e) => announceAutoJob(e.detail));

resync();
live.start();

/** Reads everything shown, after a (re)connection: events sent while this page was not
 *  connected are lost, the API has the truth. */
async function resync() {
  // Printers first, so the job list shows printer names; the role meanwhile.
  const [role] = await Promise.all([showRole(), printers.load()]);
  await Promise.all([jobs.load(), settings.load(), stats.load(), role === 'admin' ? keys.load() : null]);
}

/** Asks the daemon what the key in use may do; the page hides what it may not
 *  (`data-needs` in style.css) and says the role in the header. */
async function showRole() {
  const badge = document.getElementById('role-status');
  try {
    const me = await api.whoami();
    document.documentElement.dataset.role = me.role ?? 'viewer';
    badge.hidden = !me.auth_enabled;
    badge.textContent = me.auth_enabled ? `Role: ${me.role}${me.key_name ? ` (${me.key_name})` : ''}` : '';
    return me.role;
  } catch {
    // Unreachable or no key yet: the banner or the key dialog says so.
    return null;
  }
}

/** The seed's notification for `job_auto_created`. */
function announceAutoJob(job) {
  if (!job) return;
  const message = `${job.job_name || job.filename} on ${printers.name(job.printer_id)}`;
  if (job.customer_info?.discovered_on_startup) {
    showToast('info', '⚡ Job Discovered', `${message} (on startup)`);
  } else {
    showToast('info', '⚡ Job Auto-Created', message);
  }
}

function setupTheme() {
  const select = document.getElementById('theme');
  let saved = 'auto';
  try {
    saved = localStorage.getItem(THEME_STORAGE) || 'auto';
  } catch {
    // No storage: follow the system.
  }
  const apply = (t) => {
    if (t === 'light' || t === 'dark') document.documentElement.dataset.theme = t;
    else delete document.documentElement.dataset.theme;
  };
  select.value = saved;
  apply(saved);
  select.addEventListener('change', () => {
    apply(select.value);
    try {
      localStorage.setItem(THEME_STORAGE, select.value);
    } catch {
      // Not kept across reloads then.
    }
  });
}

/** The "daemon unreachable" banner and the live indicator in the header. */
function setupBanner() {
  const banner = document.getElementById('offline-banner');
  const detail = document.getElementById('offline-detail');
  const indicator = document.getElementById('live-status');
  let countdown = null;
  document.getElementById('retry-now').addEventListener('click', () => live.retryNow());

  const showOffline = () => {
    banner.hidden = false;
    indicator.dataset.state = 'offline';
    indicator.textContent = 'Offline';
    clearInterval(countdown);
    const update = () => {
      const left = Math.ceil((live.nextRetryAt - Date.now()) / 1000);
      detail.textContent = live.state === 'connecting' || left <= 0
        ? 'Showing the last data received; reconnecting…'
        : `Showing the last data received; retrying in ${left} s.`;
    };
    update();
    countdown = setInterval(update, 1000);
  };
  const showOnline = () => {
    banner.hidden = true;
    clearInterval(countdown);
    indicator.dataset.state = 'open';
    indicator.textContent = 'Live';
  };

  live.addEventListener('state', (e) => {
    const { state } = e.detail;
    if (state === 'open') showOnline();
    else if (state === 'closed') showOffline();
    else if (banner.hidden) {
      indicator.dataset.state = 'connecting';
      indicator.textContent = 'Connecting…';
    }
  });
  // A failed REST call also means the daemon is out of reach, even while the socket
  // has not noticed yet.
  connectivity.addEventListener('unreachable', () => {
    if (banner.hidden) showOffline();
  });
  connectivity.addEventListener('reachable', () => {
    if (!banner.hidden && live.state === 'open') showOnline();
  });
}

function setupApiKeyDialog() {
  const d = document.getElementById('key-dialog');
  const input = document.getElementById('key-input');
  const err = document.getElementById('key-error');
  connectivity.addEventListener('auth-needed', (e) => {
    // Several requests are refused at once; the first opens the dialog, and a refused
    // key among them still gets its message.
    if (e.detail?.code === 'invalid_key' || e.detail?.code === 'too_many_failed_keys') {
      err.textContent = `That key was not accepted: ${e.detail.message}`;
    } else if (!d.open) err.textContent = '';
    err.hidden = !err.textContent;
    if (d.open) return;
    d.showModal();
    input.focus();
  });
  document.getElementById('key-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    setApiKey(input.value.trim());
    d.close();
    input.value = '';
    // One request tries the key: a wrong one costs one of the few wrong keys the daemon
    // takes from an address per minute, not one per view (its refusal reopens this dialog).
    const role = await showRole();
    if (!role) return;
    showToast('success', 'Key accepted', `This key has the ${role} role.`);
    live.restart();
    await resync();
  });
}

// For people exploring in the browser console; the page itself never reads this.
window.printfarmd = { api, live, keys, printers, stats };
