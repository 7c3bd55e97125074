// The "Export CSV" button of the job list: `GET /api/v1/jobs/export?format=csv` with the
// list's filters (printer, status, how created, search text; no paging: every matching
// job), saved as the file name the daemon gives. It is fetched with the API key like
// every other call (see `download` in api.js), then handed to the browser as a file.

import { download } from './api.js';
import { showToast } from './toast.js';

/** Wires `button` to export what `filters()` (the job list's query) selects. */
export function setupExport(button, filters) {
  button.addEventListener('click', async () => {
    const query = { ...filters(), format: 'csv' };
    delete query.limit;
    delete query.offset;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      const { blob, name } = await download('/jobs/export', query);
      const url = URL.createObjectURL(blob);
      const a = document.createElement('a');
      a.href = url;
      a.download = name;
      a.hidden = true;
      document.body.append(a);
      a.click();
      a.remove();
      // The browser has taken the file once the click is handled; the URL can go.
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (e) {
      showToast('error', 'Export failed', e?.message || String(e));
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  });
}
