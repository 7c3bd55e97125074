// The dashboard at farm scale: headless Chromium against a real printfarmd watching 500
// simulated printers of every kind (tests/dashboard.rs, the_dashboard_shows_a_farm_of_500_printers).
//
//   node tests/browser/farm.mjs <base-url>
//
// Checks the compact printer table (500 rows, sorting, filters, counts per state that add
// up, a print started in the simulator reaching its row over the WebSocket), the
// statistics chart (a bar per printer with jobs in the window) and the export button (a
// CSV of the filtered jobs with the right header). Prints the table's first paint and
// one full update cycle; nothing is timed against a limit. With PRINTFARMD_SCREENSHOTS
// set it saves docs/screenshots/{printer-table,statistics,printer-cards}.png (1280×800).

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, CONTEXT, SHOTS, WAIT, daemon, rest, sim, stdinLines, waitForJobs } from './harness.mjs';

const FARM = 500;
const SHOT_DIR = SHOTS ? join(SHOTS, 'screenshots') : '';
const VIEWPORT = { width: 1280, height: 800 };
const EXPORT_HEADER = 'id,printer_id,printer_type,job_name,filename,status,progress,start_time,end_time,'
  + 'estimated_duration,actual_duration,end_reason,notes,customer_info,created_at,updated_at';
/** The order the table sorts states in (format.js PRINTER_STATUS_ORDER). */
const STATE_ORDER = ['printing', 'preparing', 'paused', 'error', 'failed', 'finished', 'cancelled', 'idle', 'unknown', 'connecting', 'auth_failed', 'offline'];
const collator = new Intl.Collator('en-US', { numeric: true, sensitivity: 'base' });

const log = (...a) => console.log('[farm]', ...a);

async function main() {
  const printers = await waitForFarm();
  await makeHistory(printers);

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'],
  });
  const context = await browser.newContext({ ...CONTEXT, viewport: VIEWPORT, colorScheme: 'light', acceptDownloads: true });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && errors.push(`console: ${m.text()}`));
  try {
    await page.goto(`${daemon.base}/`);
    await page.locator('#live-status[data-state="open"]').waitFor({ timeout: WAIT });
    await page.locator('#printer-cards > li').nth(FARM - 1).waitFor({ timeout: WAIT });

    // The switch is remembered: after a reload the table comes first. That reload is
    // the first paint measured.
    await page.getByRole('button', { name: 'Table', exact: true }).click();
    await expectRows(page, FARM);
    assert.equal(await page.locator('#printer-cards > li').count(), 0, 'the cards are gone in the table view');
    const t0 = Date.now();
    await page.reload();
    await expectRows(page, FARM);
    const firstPaintWall = Date.now() - t0;
    const metrics0 = await tableMetrics(page);
    log(`first paint of the table (${FARM} printers): ${firstPaintWall} ms from reload to ${FARM} rows; `
      + `in the page ${Math.round(metrics0.firstRenderAt)} ms after navigation start, building the rows took ${metrics0.renderMs.toFixed(1)} ms`);
    assert.equal(await page.getByRole('button', { name: 'Table', exact: true }).getAttribute('aria-pressed'), 'true');

    await countsAddUp(page);
    await sorting(page, printers);
    await filtering(page, printers);
    await livePrint(page);
    await statistics(page);
    await exportCsv(page);
    await updateCycle(page);
    if (SHOT_DIR) {
      // A few seconds of printing, so the progress column has something to show.
      await new Promise((r) => setTimeout(r, 8000));
      await page.evaluate(() => document.getElementById('printers').scrollIntoView());
      await progressInOrder(page);
      await shot(page, 'printer-table.png');
      await page.getByRole('button', { name: 'Cards', exact: true }).click();
      await page.locator('#printer-cards > li').nth(FARM - 1).waitFor({ timeout: WAIT });
      await page.evaluate(() => document.getElementById('printers').scrollIntoView());
      await shot(page, 'printer-cards.png');
    }
    assert.deepEqual(errors, [], 'the page logged errors');
  } finally {
    await browser.close();
    stdinLines.close();
  }
}

// ---------------------------------------------------------------- the farm and its history

/** Waits until the daemon lists every simulated printer connected. */
async function waitForFarm() {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const body = (await rest('GET', '/printers')).body;
    const online = body.printers.filter((p) => p.connection === 'connected').length;
    if (body.printers.length === FARM && online === FARM) {
      const types = {};
      for (const p of body.printers) types[p.type] = (types[p.type] ?? 0) + 1;
      log(`${FARM} printers connected: ${JSON.stringify(types)}`);
      return body.printers;
    }
    if (Date.now() > deadline) throw new Error(`only ${online} of ${body.printers.length} printers connected`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Jobs for the statistics: a real failed and a real cancelled print (their reasons come
 *  from the simulated Bambu printers), and jobs entered with times on every 12th printer,
 *  with mixed outcomes over the last hours. */
async function makeHistory(printers) {
  await realPrint('bambu_1', 'heated_bed_test.3mf', 'fail');
  await realPrint('bambu_152', 'cable_chain.3mf', 'cancel');
  const now = Date.now();
  const picked = printers.filter((_, i) => i % 12 === 0);
  const work = [];
  picked.forEach((p, i) => {
    for (let k = 0; k < 1 + (i % 3); k++) {
      const status = (i + k) % 5 === 0 ? 'failed' : (i + k) % 7 === 0 ? 'cancelled' : 'completed';
      const end = now - (1 + k * 4) * 3600_000 - i * 60_000;
      const start = end - (1 + ((i * 7 + k) % 6)) * 1800_000;
      work.push([p.id, status, new Date(start).toISOString(), new Date(end).toISOString(), `farm_${p.id}_${k}`]);
    }
  });
  for (let i = 0; i < work.length; i += 10) {
    await Promise.all(work.slice(i, i + 10).map(async ([printer_id, status, start_time, end_time, job_name]) => {
      const made = await rest('POST', '/jobs', { printer_id, job_name, filename: `${job_name}.3mf`, status });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      const edited = await rest('PUT', `/jobs/${made.body.id}`, { start_time, end_time });
      assert.equal(edited.status, 200, JSON.stringify(edited.body));
    }));
  }
  log(`history: ${work.length} jobs entered on ${picked.length} printers, 2 real prints ended (failed, cancelled)`);
}

async function realPrint(id, file, end) {
  const stem = file.replace(/\.3mf$/, '');
  await sim(id, 'print', { file, duration_s: 600 });
  await waitForJobs(`q=${stem}`, (jobs) => jobs.some((j) => j.status === 'running'), 30_000);
  await sim(id, end);
  await waitForJobs(`q=${stem}`, (jobs) => jobs.length > 0 && jobs.every((j) => j.status !== 'running'), 30_000);
}

// ---------------------------------------------------------------- the table

const tableRows = (page) => page.locator('#printer-rows > tr');

async function expectRows(page, n) {
  await page.waitForFunction((n) => document.querySelectorAll('#printer-rows > tr').length === n, n, { timeout: 30_000 });
}

/** The rows shown (not filtered out), in order: id, name, state, type, progress. */
function visibleRows(page) {
  return page.evaluate(() => [...document.querySelectorAll('#printer-rows > tr:not([hidden])')].map((tr) => ({
    id: tr.dataset.printerId,
    name: tr.querySelector('th').textContent,
    state: tr.dataset.state,
    type: tr.children[1].textContent,
    file: tr.children[3].textContent,
    progress: tr.children[4].textContent,
  })));
}

function tableMetrics(page) {
  return page.evaluate(() => ({ ...window.printfarmd.printers.table.metrics }));
}

async function countsAddUp(page) {
  const counts = await page.evaluate(() => [...document.querySelectorAll('#state-counts button[data-state]')]
    .map((b) => [b.dataset.state, Number(b.dataset.count)]));
  const sum = counts.reduce((a, [, n]) => a + n, 0);
  assert.equal(sum, FARM, `the counts per state add up to ${FARM}: ${JSON.stringify(counts)}`);
  const rows = await visibleRows(page);
  for (const [state, n] of counts) {
    assert.equal(rows.filter((r) => r.state === state).length, n, `${state}: the count matches the rows`);
  }
  log(`counts per state: ${counts.map(([s, n]) => `${s} ${n}`).join(', ')}`);
}

async function sorting(page, printers) {
  const byName = printers.map((p) => p.name).sort(collator.compare);
  let rows = await visibleRows(page);
  assert.deepEqual(rows.map((r) => r.name), byName, 'sorted by name, ascending, at first');
  const nameHeader = page.locator('#printer-table th[data-sort="name"]');
  assert.equal(await nameHeader.getAttribute('aria-sort'), 'ascending');
  await nameHeader.getByRole('button').click();
  assert.equal(await nameHeader.getAttribute('aria-sort'), 'descending');
  rows = await visibleRows(page);
  assert.deepEqual(rows.map((r) => r.name), [...byName].reverse(), 'sorted by name, descending');
  // "Simulated X1 10" after "Simulated X1 9": numbers sort as numbers.
  const stateHeader = page.locator('#printer-table th[data-sort="state"]');
  await stateHeader.getByRole('button').click();
  assert.equal(await stateHeader.getAttribute('aria-sort'), 'ascending');
  assert.equal(await nameHeader.getAttribute('aria-sort'), null);
  rows = await visibleRows(page);
  const ranks = rows.map((r) => STATE_ORDER.indexOf(r.state));
  assert.ok(ranks.every((r, i) => r >= 0 && (i === 0 || ranks[i - 1] <= r)), `states in order: ${[...new Set(rows.map((r) => r.state))]}`);
  // Back to names, ascending, for what follows.
  await nameHeader.getByRole('button').click();
  assert.equal(await nameHeader.getAttribute('aria-sort'), 'ascending');
  log('sorting by name (both ways) and by state: rows in order');
}

async function filtering(page, printers) {
  const moonraker = printers.filter((p) => p.type === 'moonraker');
  await page.selectOption('#printer-filter-type', 'moonraker');
  let rows = await visibleRows(page);
  assert.deepEqual(rows.map((r) => r.id).sort(), moonraker.map((p) => p.id).sort(), 'the type filter shows exactly the Moonraker printers');
  assert.ok(rows.every((r) => r.type === 'Moonraker'));
  await page.selectOption('#printer-filter-type', '');

  const q = 'X1 1';
  await page.fill('#printer-filter-q', q);
  rows = await visibleRows(page);
  const expected = printers.filter((p) => p.name.toLowerCase().includes(q.toLowerCase()) || p.id.includes(q.toLowerCase()));
  assert.ok(expected.length > 1);
  assert.deepEqual(rows.map((r) => r.id).sort(), expected.map((p) => p.id).sort(), `the text filter "${q}"`);
  assert.match(await page.locator('#printer-table-info').textContent(), new RegExp(`Showing ${expected.length} of ${FARM}`));
  await page.fill('#printer-filter-q', '');

  // A count is a filter button; pressed again, it shows everyone.
  const idle = page.locator('#state-counts button[data-state="idle"]');
  const n = Number(await idle.getAttribute('data-count'));
  await idle.click();
  assert.equal(await page.locator('#state-counts button[data-state="idle"]').getAttribute('aria-pressed'), 'true');
  rows = await visibleRows(page);
  assert.equal(rows.length, n, 'the idle count as a filter');
  assert.ok(rows.every((r) => r.state === 'idle'));
  await page.locator('#state-counts button[data-state="idle"]').click();
  assert.equal((await visibleRows(page)).length, FARM);
  log(`filters: type (${moonraker.length} Moonraker), text "${q}" (${expected.length}), state idle (${n}): rows as expected`);
}

/** A print started in the simulator reaches its row through the daemon and /ws. */
async function livePrint(page) {
  // With only the idle printers shown, one that starts printing leaves the list, and
  // the count and the "Showing" line follow.
  const idle = page.locator('#state-counts button[data-state="idle"]');
  const idleBefore = Number(await idle.getAttribute('data-count'));
  await idle.click();
  const t0 = Date.now();
  await sim('bambu_77', 'print', { file: 'farm_gearbox_lid.3mf', duration_s: 900 });
  await page.waitForFunction(([n, farm]) => document.querySelector('#printer-rows > tr[data-printer-id="bambu_77"]').hidden
    && document.querySelector('#state-counts button[data-state="idle"]').dataset.count === String(n)
    && document.getElementById('printer-table-info').textContent === `Showing ${n} of ${farm} printers`,
  [idleBefore - 1, FARM], { timeout: 30_000 });
  log(`a print started on bambu_77 took it out of the idle filter after ${Date.now() - t0} ms`);
  await idle.click();
  for (const [id, file] of [['bambu_77', 'farm_gearbox_lid.3mf'], ['moon_3', 'farm_fan_duct.gcode']]) {
    const t0 = Date.now();
    if (id !== 'bambu_77') await sim(id, 'print', { file, duration_s: 900 });
    await page.waitForFunction(([id, file]) => {
      const tr = document.querySelector(`#printer-rows > tr[data-printer-id="${id}"]`);
      return tr?.dataset.state === 'printing' && tr.children[3].textContent.includes(file.replace(/\.(3mf|gcode)$/, ''));
    }, [id, file], { timeout: 30_000 });
    if (id !== 'bambu_77') log(`a print started on ${id} showed in its row after ${Date.now() - t0} ms`);
  }
  // Progress, descending: the printing ones first.
  const header = page.locator('#printer-table th[data-sort="progress"]');
  await header.getByRole('button').click();
  assert.equal(await header.getAttribute('aria-sort'), 'descending');
  // Progress moves on while the page watches; the rows are put back in order within a
  // second, so this waits for an ordered moment rather than reading once.
  await progressInOrder(page);
  const rows = await visibleRows(page);
  const withPct = rows.findIndex((r) => r.progress === '');
  for (const id of ['bambu_77', 'moon_3']) assert.ok(rows.slice(0, withPct).some((r) => r.id === id), `${id} has a progress, ahead of the idle printers`);
  await page.fill('#printer-filter-q', 'gearbox');
  assert.deepEqual((await visibleRows(page)).map((r) => r.id), ['bambu_77'], 'the text filter finds a printer by its file');
  await page.fill('#printer-filter-q', '');
}

/** Waits until the rows shown are in descending order of progress as shown (rounded),
 *  with the printers that have none after those that have one. */
async function progressInOrder(page) {
  await page.waitForFunction(() => {
    const pcts = [...document.querySelectorAll('#printer-rows > tr:not([hidden])')]
      .map((tr) => (tr.children[4].textContent === '' ? null : Number.parseInt(tr.children[4].textContent, 10)));
    const n = pcts.findIndex((v) => v == null);
    const printing = n === -1 ? pcts.length : n;
    return printing >= 2 && pcts.slice(printing).every((v) => v == null)
      && pcts.slice(0, printing).every((v, i) => i === 0 || pcts[i - 1] >= v);
  }, null, { timeout: WAIT, polling: 50 });
}

/** One full update cycle: every idle printer starts a print in the simulator at once
 *  (as when a shift starts), until every row shows it printing; what the page spent
 *  applying the events comes from its own counters. */
async function updateCycle(page) {
  const idle = (await rest('GET', '/printers')).body.printers.filter((p) => p.connection === 'connected' && p.state === 'idle');
  assert.ok(idle.length > FARM - 10, `idle printers: ${idle.length}`);
  const before = await tableMetrics(page);
  // Rows are updated in place: the same elements before and after, and no full render.
  await page.evaluate((ids) => {
    window.rowsBefore = ids.map((id) => document.querySelector(`#printer-rows > tr[data-printer-id="${id}"]`));
  }, idle.map((p) => p.id));
  const t0 = Date.now();
  await Promise.all(idle.map((p, i) => sim(p.id, 'print', { file: `shift_${i % 37}_part.gcode`, duration_s: 60 + (i % 40) * 45 })));
  const sent = Date.now() - t0;
  const ids = idle.map((p) => p.id);
  await page.waitForFunction((ids) => ids.every((id) => document.querySelector(`#printer-rows > tr[data-printer-id="${id}"]`)?.dataset.state === 'printing'),
    ids, { timeout: 60_000, polling: 100 });
  const wall = Date.now() - t0;
  const after = await tableMetrics(page);
  assert.equal(after.renders, before.renders, 'no full render of the table while the statuses came in');
  const same = await page.evaluate((ids) => ids.every((id, i) => document.querySelector(`#printer-rows > tr[data-printer-id="${id}"]`) === window.rowsBefore[i]), idle.map((p) => p.id));
  assert.ok(same, 'every row is the element it was, updated in place');
  const flushes = after.flushes - before.flushes;
  const events = after.events - before.events;
  const ms = after.flushMs - before.flushMs;
  log(`one full update cycle: ${idle.length} printers told to print (${sent} ms to tell the simulator), all ${idle.length} rows `
    + `showing "Printing" after ${wall} ms; meanwhile ${events} printer_status events applied in ${flushes} frames, `
    + `${ms.toFixed(1)} ms of table work in all (${(ms / Math.max(1, flushes)).toFixed(2)} ms a frame on average, `
    + `longest frame ${after.flushMsMax.toFixed(1)} ms)`);
  await countsAddUp(page);
}

// ---------------------------------------------------------------- statistics and export

async function statistics(page) {
  await page.selectOption('#stats-window', '24');
  const since = new Date(Date.now() - 24 * 3600_000).toISOString();
  const stats = (await rest('GET', `/stats?group_by=printer&since=${encodeURIComponent(since)}`)).body;
  const withJobs = stats.groups.filter((g) => g.jobs > 0).map((g) => g.key).sort();
  assert.ok(withJobs.length >= 40, `printers with jobs: ${withJobs.length}`);
  await page.waitForFunction((n) => document.querySelectorAll('#stats-chart rect.stats-bar').length === n, withJobs.length, { timeout: WAIT });
  const bars = await page.evaluate(() => [...document.querySelectorAll('#stats-chart rect.stats-bar')].map((r) => ({
    id: r.dataset.printerId, h: Number(r.getAttribute('height')), cls: r.getAttribute('class'),
  })));
  assert.deepEqual(bars.map((b) => b.id).sort(), withJobs, 'one bar per printer with jobs');
  assert.ok(bars.every((b) => b.h > 0));
  assert.ok(bars.some((b) => b.cls.includes('bad')) && bars.some((b) => b.cls.includes('ok')), 'success rates in colour');
  assert.equal(await page.locator('#stats-rows > tr').count(), withJobs.length);
  // The real failure's reason, decoded by the daemon, is counted.
  await page.locator('#failure-rows td.reason', { hasText: '0300_8009' }).first().waitFor({ timeout: WAIT });
  log(`statistics: ${bars.length} bars (printers with jobs in 24 h), failure reasons listed`);
  if (SHOT_DIR) {
    await page.evaluate(() => document.getElementById('stats').scrollIntoView());
    await shot(page, 'statistics.png');
  }
}

async function exportCsv(page) {
  await page.selectOption('#filter-status', 'failed');
  const expected = (await rest('GET', '/jobs?status=failed&limit=1')).body.total_count;
  assert.ok(expected > 0);
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: WAIT }), page.click('#export-csv')]);
  assert.match(download.suggestedFilename(), /^printfarmd-jobs-\d{8}T\d{6}Z\.csv$/);
  const records = parseCsv(readFileSync(await download.path(), 'utf8'));
  assert.equal(records[0].join(','), EXPORT_HEADER, 'the header row');
  const rows = records.slice(1);
  assert.equal(rows.length, expected, 'every failed job, none other');
  assert.ok(rows.every((r) => r.length === 16 && r[5] === 'failed'));
  log(`export: ${download.suggestedFilename()} with the header and ${rows.length} failed jobs`);
}

/** RFC 4180, enough for the check: quoted fields may hold commas, quotes and newlines. */
function parseCsv(text) {
  const out = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field); out.push(row); row = []; field = '';
    } else field += c;
  }
  if (field || row.length) { row.push(field); out.push(row); }
  return out;
}

async function shot(page, file) {
  mkdirSync(SHOT_DIR, { recursive: true });
  // The pictures are of the views, not of the "Job Auto-Created" notices over them.
  await page.evaluate(() => document.getElementById('toasts').replaceChildren());
  await page.mouse.move(0, 0);
  await page.screenshot({ path: join(SHOT_DIR, file) });
  log(`screenshot: ${join(SHOT_DIR, file)}`);
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
