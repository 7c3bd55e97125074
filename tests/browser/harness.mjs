// Helpers for dashboard.mjs: the daemon's address and control channel, a REST client
// standing in for "another client", opening the dashboard in a fresh browser context
// that records page errors, and the printer fixtures in the agreed shape.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** The daemon's base URL; a restart may move it, so it is read through this object. */
export const daemon = { base: process.argv[2] };
export const ONLY = process.argv[3] ?? '';
export const CHROMIUM = process.env.PRINTFARMD_CHROMIUM || '/usr/bin/chromium';
export const SHOTS = process.env.PRINTFARMD_SCREENSHOTS || '';
/** How long the page may take to show something it should show. */
export const WAIT = 10_000;
/** How long a reconnect after a daemon restart may take (the backoff may be at a few s). */
export const RECONNECT_WAIT = 40_000;
/** Every context runs in a fixed locale and time zone so local times are predictable. */
export const CONTEXT = { locale: 'en-US', timezoneId: 'America/New_York' };

if (!daemon.base) {
  console.error('usage: node dashboard.mjs <base-url> [name-filter]');
  process.exit(2);
}

/** With PRINTFARMD_API_KEY set, the daemon requires that key and only the key scenario runs. */
export const API_KEY = process.env.PRINTFARMD_API_KEY || '';

// ---------------------------------------------------------------- helpers

export const stdinLines = createInterface({ input: process.stdin });
const answers = [];
stdinLines.on('line', (l) => answers.shift()?.(l));

/** Asks tests/dashboard.rs to stop or start the daemon; resolves with its answer. */
export function control(cmd) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer to "@@control ${cmd}"; run this through cargo test --test dashboard`)), 60_000);
    answers.push((line) => {
      clearTimeout(t);
      resolve(line);
    });
    process.stdout.write(`@@control ${cmd}\n`);
  });
}

/** Another client: plain REST from Node. */
export async function rest(method, path, body) {
  const res = await fetch(`${daemon.base}/api/v1${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { 'Content-Type': 'application/json' }), ...(API_KEY ? { 'X-Api-Key': API_KEY } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

export async function createJob(fields) {
  const r = await rest('POST', '/jobs', { printer_id: 'prusa_1', filename: `${fields.job_name}.3mf`, ...fields });
  assert.equal(r.status, 201, `create job: ${JSON.stringify(r.body)}`);
  return r.body;
}

let tokenCounter = 0;
export function token(prefix) {
  tokenCounter += 1;
  return `${prefix}${tokenCounter}x${Date.now().toString(36)}`;
}

/** Opens the dashboard in a fresh context; `hash` sets the job filters. Resolves once
 *  the live connection is up. `allowNetworkErrors` is for scenarios that take the daemon
 *  away on purpose. */
export async function open(browser, { hash = '', viewport, colorScheme = 'light', isMobile = false, allowNetworkErrors = false } = {}) {
  const context = await browser.newContext({ ...CONTEXT, viewport: viewport ?? { width: 1440, height: 900 }, colorScheme, isMobile, hasTouch: isMobile });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const url = m.location()?.url ?? '';
    // A daemon without printer endpoints answers 404 there, by design.
    if (url.endsWith('/api/v1/printers') && m.text().includes('404')) return;
    if (allowNetworkErrors && /ERR_CONNECTION_REFUSED|WebSocket connection|Failed to load resource|net::/.test(m.text())) return;
    errors.push(`console: ${m.text()} (${url})`);
  });
  await page.goto(`${daemon.base}/${hash ? `#${hash}` : ''}`);
  await live(page);
  return {
    page,
    context,
    async close() {
      await context.close();
      assert.deepEqual(errors, [], 'the page logged errors');
    },
  };
}

export async function live(page, timeout = WAIT) {
  await page.locator('#live-status[data-state="open"]').waitFor({ timeout });
}

export const rows = (page) => page.locator('#job-rows tr');
export const filters = (page) => page.locator('#job-filters');
export const row = (page, name) => page.locator('#job-rows tr', { has: page.locator('.job-title', { hasText: name }) });

export async function expectRowCount(page, n) {
  await page.waitForFunction((n) => document.querySelectorAll('#job-rows tr').length === n, n, { timeout: WAIT });
}

export async function expectText(locator, text) {
  await locator.filter({ hasText: text }).first().waitFor({ timeout: WAIT });
}

export function normalise(s) {
  return s.replace(/\s/g, ' ');
}

export async function shot(page, file, opts = {}) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, file), ...opts });
  console.log(`screenshot: ${join(SHOTS, file)}`);
}

/** The agreed printer shape (GET /api/v1/printers, printer_status data), as fixtures:
 *  one printing, one whose credentials were refused, one unreachable. Until the printers
 *  endpoint lands this is the only way to see cards; afterwards it still covers states a
 *  test cannot easily provoke. Also injects a `printer_status` over the real socket. */
export const FIXTURE_PRINTERS = [
  {
    id: 'bambu_1', name: 'Bambu X1C', type: 'bambu', host: '192.168.1.50', port: 8883, managed_by: 'config',
    connection: 'connected', state: 'printing', last_seen: new Date().toISOString(), last_error: null,
    current_print: { filename: 'gear_housing.3mf', job_name: 'gear_housing', progress: 42, remaining_s: 3900, elapsed_s: 2700, layer: 118, total_layers: 281, job_id: null },
    temperatures: { nozzle: 219.6, nozzle_target: 220, bed: 64.8, bed_target: 65, chamber: 38 },
    updated_at: new Date().toISOString(),
  },
  {
    id: 'prusa_1', name: 'Prusa Core One', type: 'prusalink', host: '192.168.1.60', port: 80, managed_by: 'config',
    connection: 'connected', state: 'idle', last_seen: new Date().toISOString(), last_error: null, current_print: null,
    temperatures: { nozzle: 24, nozzle_target: 0, bed: 23.5, bed_target: 0, chamber: null },
    updated_at: new Date().toISOString(),
  },
  {
    id: 'prusa_2', name: 'Prusa MK4 #2', type: 'prusalink', host: '192.168.1.61', port: 80, managed_by: 'api',
    connection: 'auth_failed', state: 'unknown', last_seen: null, last_error: 'HTTP 401: the printer refused the username or password',
    current_print: null, temperatures: { nozzle: null, nozzle_target: null, bed: null, bed_target: null, chamber: null },
    updated_at: new Date().toISOString(),
  },
  {
    id: 'bambu_2', name: 'Bambu P1S', type: 'bambu', host: '192.168.1.52', port: 8883, managed_by: 'config',
    connection: 'disconnected', state: 'unknown', last_seen: new Date(Date.now() - 3600_000).toISOString(), last_error: 'connection refused',
    current_print: null, temperatures: { nozzle: null, nozzle_target: null, bed: null, bed_target: null, chamber: null },
    updated_at: new Date().toISOString(),
  },
];

/** The dashboard with the printers endpoint answered from FIXTURE_PRINTERS and the real
 *  socket passed through, plus `inject(type, data)` to deliver an event to the page. */
export async function openWithFixturePrinters(browser, opts) {
  const context = await browser.newContext({ ...CONTEXT, viewport: opts.viewport ?? { width: 1440, height: 900 }, colorScheme: opts.colorScheme, isMobile: !!opts.isMobile, hasTouch: !!opts.isMobile });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && errors.push(`console: ${m.text()}`));
  await page.route('**/api/v1/printers', (route) =>
    route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ printers: FIXTURE_PRINTERS, total_count: FIXTURE_PRINTERS.length }) }),
  );
  let toPage = null;
  let seq = 1_000_000;
  await page.routeWebSocket(/\/ws$/, (ws) => {
    ws.connectToServer();
    toPage = ws;
  });
  await page.goto(`${daemon.base}/`);
  await live(page);
  return {
    page,
    inject(type, data) {
      seq += 1;
      toPage.send(JSON.stringify({ type, data, timestamp: new Date().toISOString(), seq }));
    },
    async close() {
      await context.close();
      assert.deepEqual(errors, [], 'the page logged errors');
    },
  };
}
