// Helpers for dashboard.mjs: the daemon's address and control channel (daemon and
// simulated printers), a REST client standing in for "another client", opening the
// dashboard in a fresh browser context that records page errors, and the printers the
// test daemon watches.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** The daemon's base URL; a restart may move it, so it is read through this object. */
export const daemon = { base: process.argv[2] };
export const ONLY = process.argv[3] ?? '';
export const CHROMIUM = process.env.PRINTFARMD_CHROMIUM || '/usr/bin/chromium';
/** Where screenshots go: the directory PRINTFARMD_SCREENSHOTS names (`1`: docs). */
export const SHOTS = process.env.PRINTFARMD_SCREENSHOTS === '1' ? 'docs' : process.env.PRINTFARMD_SCREENSHOTS || '';
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

/** Asks tests/dashboard.rs to stop or start the daemon, or to drive a simulated printer;
 *  resolves with its answer. */
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

/** Makes simulated printer `id` do `action` (print, pause, resume, finish, fail, cancel,
 *  reboot, dismiss, …; the simulator's control API actions) with an optional JSON body. */
export async function sim(id, action, body) {
  const answer = await control(`sim ${id} ${action}${body === undefined ? '' : ` ${JSON.stringify(body)}`}`);
  assert.equal(answer, 'ok', `sim ${id} ${action}: ${answer}`);
}

/** The printers tests/dashboard.rs configures: a simulated farm (ids and names as the
 *  simulator gives them), a printer on the simulator's broker with a wrong access code,
 *  and one on a port nobody listens on. */
export const PRINTERS = {
  x1: { id: 'bambu_1', name: 'Simulated X1 1' },
  p1: { id: 'bambu_2', name: 'Simulated P1 2' },
  prusa: { id: 'prusa_1', name: 'Simulated MK4S 1' },
  badCode: { id: 'bambu_badcode', name: 'Bambu A1 (wrong code)' },
  offline: { id: 'prusa_offline', name: 'Prusa MK4 (unplugged)' },
};

/** Auto-creation on and polled printers looked at every second, as the daemon starts;
 *  scenarios that change the settings put them back, this makes sure. */
export async function autoCreationOn() {
  const r = await rest('PUT', '/settings', { job_creation_auto_create: true, monitoring_interval: 1 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

/** Polls `GET /api/v1/jobs?<query>` until `ok(jobs)` holds; resolves with the jobs. */
export async function waitForJobs(query, ok, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const jobs = (await rest('GET', `/jobs?${query}`)).body.jobs;
    if (ok(jobs)) return jobs;
    if (Date.now() > deadline) throw new Error(`jobs?${query} never matched: ${JSON.stringify(jobs)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Another client: plain REST from Node (with `key`, or the test's API key). Bodiless
 *  writes carry X-Requested-With, as the daemon requires. */
export async function rest(method, path, body, key = API_KEY) {
  const res = await fetch(`${daemon.base}/api/v1${path}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      ...(method !== 'GET' && body === undefined ? { 'X-Requested-With': 'printfarmd-tests' } : {}),
      ...(key ? { 'X-Api-Key': key } : {}),
    },
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

export const card = (page, id) => page.locator(`#printer-cards > li[data-printer-id="${id}"]`);

/** Waits until printer `id`'s card has `attr` (a data attribute, camelCase) `value`. */
export async function expectCard(page, id, attr, value, timeout = WAIT) {
  await page.waitForFunction(
    ([id, attr, value]) => document.querySelector(`#printer-cards > li[data-printer-id="${CSS.escape(id)}"]`)?.dataset[attr] === value,
    [id, attr, value],
    { timeout },
  );
}

/** The dashboard with its socket passed through a relay, plus `inject(type, data)` to
 *  deliver an event the daemon cannot be made to send while a page watches. */
export async function openWithInjection(browser, opts = {}) {
  const context = await browser.newContext({ ...CONTEXT, viewport: opts.viewport ?? { width: 1440, height: 900 }, colorScheme: opts.colorScheme ?? 'light' });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && errors.push(`console: ${m.text()}`));
  let toPage = null;
  let seq = 1_000_000;
  await page.routeWebSocket(/\/ws$/, (ws) => {
    ws.connectToServer();
    toPage = ws;
  });
  await page.goto(`${daemon.base}/${opts.hash ? `#${opts.hash}` : ''}`);
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
