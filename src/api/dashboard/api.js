// The REST client: every call the dashboard makes goes through `request`, which adds the
// API key when one is set, bounds the wait, and turns the daemon's error shape
// (`{"status":"error","code","message"}`) into an ApiError with the daemon's message.
//
// Reachability is reported on `connectivity` so the banner can say when the daemon
// cannot be reached at all (as opposed to answering with an error).

const KEY_STORAGE = 'printfarmd.apiKey';
/** How long a request may take before it counts as a failure (a loaded daemon answers in
 *  milliseconds; seconds mean it is unreachable or stuck). */
const REQUEST_TIMEOUT_MS = 15000;

export const connectivity = new EventTarget();

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function apiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || '';
  } catch {
    return '';
  }
}

export function setApiKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // Private browsing without storage: the key lasts for this page only.
  }
  memoryKey = key;
}

let memoryKey = '';

function currentKey() {
  return apiKey() || memoryKey;
}

/** The headers every call carries: JSON wanted, and the API key when one is set. */
function baseHeaders() {
  const headers = { Accept: 'application/json' };
  const key = currentKey();
  if (key) headers['X-Api-Key'] = key;
  return headers;
}

/** A download (`GET`) as a Blob with the file name the daemon suggests. It goes through
 *  fetch, not a plain link, because a link cannot carry the `X-Api-Key` header and the
 *  daemon takes keys in URLs only on /ws; the whole file is held in the browser's memory
 *  until it is saved. Errors as in `request`. */
export async function download(path, query) {
  const url = new URL(`/api/v1${path}`, location.origin);
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== '' && v != null) url.searchParams.set(k, v);
  }
  const key = currentKey();
  let res;
  try {
    res = await fetch(url, { headers: baseHeaders(), cache: 'no-store' });
  } catch {
    connectivity.dispatchEvent(new Event('unreachable'));
    throw new ApiError(0, 'unreachable', 'The daemon could not be reached.');
  }
  connectivity.dispatchEvent(new Event('reachable'));
  if (!res.ok) {
    let data = null;
    try {
      data = await res.json();
    } catch {
      // Not JSON.
    }
    const err = new ApiError(res.status, data?.code ?? 'http_error', data?.message ?? `The daemon answered ${res.status}.`);
    if (res.status === 401 && key === currentKey()) {
      connectivity.dispatchEvent(new CustomEvent('auth-needed', { detail: err }));
    }
    throw err;
  }
  const disposition = res.headers.get('content-disposition') ?? '';
  const name = /filename="([^"\/]{1,200})"/.exec(disposition)?.[1] ?? 'printfarmd-jobs';
  // A download cut short by the daemon (its database failed mid-way) rejects here.
  const blob = await res.blob();
  return { blob, name };
}

/** One API call. `path` is under /api/v1; `query` an object of parameters (empty values
 *  are left out); `body` is sent as JSON. Resolves to the parsed JSON, or null for 204. */
export async function request(method, path, { query, body } = {}) {
  const url = new URL(`/api/v1${path}`, location.origin);
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== '' && v != null) url.searchParams.set(k, v);
  }
  const headers = baseHeaders();
  const key = currentKey();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  // The daemon refuses a write that has neither a JSON body nor a custom header (a page
  // on another site can send neither); bodiless writes (DELETE) carry this one.
  if (method !== 'GET') headers['X-Requested-With'] = 'printfarmd-dashboard';
  let res;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      cache: 'no-store',
    });
  } catch (e) {
    connectivity.dispatchEvent(new Event('unreachable'));
    throw new ApiError(0, 'unreachable', 'The daemon could not be reached.');
  }
  connectivity.dispatchEvent(new Event('reachable'));
  if (res.status === 204) return null;
  let data = null;
  try {
    data = await res.json();
  } catch {
    // Not JSON (a proxy's error page, say): fall through with no data.
  }
  if (!res.ok) {
    const err = new ApiError(
      res.status,
      data?.code ?? 'http_error',
      data?.message ?? `The daemon answered ${res.status}.`,
    );
    // A refusal of a key that has since been replaced (a request sent before the user
    // entered a new one) says nothing about the key in use now, so it asks for nothing.
    // 403 is a valid key without the role for this: asking for another key would not help.
    if (res.status === 401 && key === currentKey()) {
      connectivity.dispatchEvent(new CustomEvent('auth-needed', { detail: err }));
    }
    throw err;
  }
  return data;
}

/** Where and how to open /ws: the key goes as a subprotocol (`printfarmd.key.<key>`,
 *  beside `printfarmd.v1`, which the daemon names back) so it stays out of URLs and
 *  proxy logs; a key with characters a subprotocol cannot carry goes as `?api_key=`. */
export function wsTarget() {
  const url = new URL('/ws', location.origin);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const key = currentKey();
  if (!key) return { url: url.toString() };
  if (/^[A-Za-z0-9._~!#$%&'*+^`|-]+$/.test(key)) {
    return { url: url.toString(), protocols: ['printfarmd.v1', `printfarmd.key.${key}`] };
  }
  url.searchParams.set('api_key', key);
  return { url: url.toString() };
}

export const api = {
  listJobs: (query) => request('GET', '/jobs', { query }),
  getJob: (id) => request('GET', `/jobs/${encodeURIComponent(id)}`),
  updateJob: (id, patch) => request('PUT', `/jobs/${encodeURIComponent(id)}`, { body: patch }),
  deleteJob: (id) => request('DELETE', `/jobs/${encodeURIComponent(id)}`),
  listPrinters: () => request('GET', '/printers'),
  /** `action`: pause, resume or cancel. 202 once the printer took it. */
  controlPrinter: (id, action) => request('POST', `/printers/${encodeURIComponent(id)}/${action}`),
  getSettings: () => request('GET', '/settings'),
  updateSettings: (patch) => request('PUT', '/settings', { body: patch }),
  stats: (query) => request('GET', '/stats', { query }),
  whoami: () => request('GET', '/auth'),
  listKeys: () => request('GET', '/keys'),
  createKey: (fields) => request('POST', '/keys', { body: fields }),
  revokeKey: (id) => request('DELETE', `/keys/${encodeURIComponent(id)}`),
};
