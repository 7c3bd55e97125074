// The dashboard in a real browser: headless Chromium (Debian's, through playwright-core)
// against a real printfarmd.
//
//   node tests/browser/dashboard.mjs <base-url> [name-filter]
//
// Normally started by tests/dashboard.rs, which owns the daemon and a simulated printer
// farm the daemon watches: a scenario that needs the daemon stopped or started prints
// "@@control stop" / "@@control start", and one that makes a simulated printer print or
// end a print prints "@@control sim <printer> <action> [json]"; each waits for the answer
// on stdin. With PRINTFARMD_SCREENSHOTS=<dir> it also saves the screenshots
// used in the README (dashboard-light.png, dashboard-dark.png, dashboard-phone.png).
//
// Every scenario opens its own browser context (fresh storage) and fails on any console
// error or uncaught exception in the page, which includes Content-Security-Policy
// violations. Waits are generous failure timeouts, never pacing: each step waits for
// what the page should show.
//
// Scenarios use jobs whose names carry a unique token and filter the list by it, so they
// do not see each other's jobs in the one shared database.
//
// Everything goes through the real chain (simulated printer → driver → JobCreator → store
// → REST and /ws → page), except one event no page can be made to see live: the
// "⚡ Job Discovered … (on startup)" toast (see startupDiscoveryToast).

import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import {
  API_KEY, CHROMIUM, ONLY, PRINTERS, RECONNECT_WAIT, SHOTS, WAIT, CONTEXT, autoCreationOn, card, control, createJob, daemon, expectCard,
  expectRowCount, expectText, filters, live, normalise, open, openWithInjection, rest, row, rows, shot, sim, stdinLines, token, waitForJobs,
} from './harness.mjs';
import { exportCarriesTheKey, foreignPageCannotDriveTheDaemon, rolesShapeThePage } from './access.mjs';

// ---------------------------------------------------------------- which scenarios run

// Stages run one after the other; the lanes of a stage run side by side (each lane's
// scenarios in order), which keeps the run short on a small machine: much of a scenario
// is waiting for the daemon, a simulated printer or the page. Scenarios in different
// lanes must not disturb each other: those that change the settings, drive the
// simulated printers or restart the daemon are never beside one that depends on them.
const ALL_STAGES = [
  // Only with PRINTFARMD_SCREENSHOTS, and first, while the job list is still tidy.
  ...(SHOTS ? [[[['screenshots of a farm printing (simulated printers)', screenshots]]]] : []),
  [
    [
      ['the page loads cleanly with a card per configured printer', pageLoadsCleanly],
      ['a print started in the simulator shows up with the badge, a toast and a live card', autoCreatedJobFromSimulatedPrint],
      ['a printer that refuses its access code is marked on its card', authFailedCard],
      ['an unreachable printer is marked offline, and one that drops off comes back', offlineCard],
      ['jobs are listed newest first with the ⚡ Auto badge and tooltip', jobsWithBadge],
      ['the filters narrow the list through the API', filtersNarrowTheList],
    ],
    [
      ['paging walks through the API with limit and offset', pagingWithLimitAndOffset],
      ['a job edit persists', editPersists],
      ['delete asks first', deleteAsksFirst],
      ['job events from another client keep the list current', liveJobEvents],
      ['a startup discovery shows the "Job Discovered" toast (injected event)', startupDiscoveryToast],
      ['phone layout and keyboard use', phoneAndKeyboard],
    ],
  ],
  [[['a page on another origin can neither read /ws nor change anything', foreignPageCannotDriveTheDaemon]]],
  // It drives the X1-style printer, which the first stage also prints on.
  [[['pause, resume and cancel from a printer card (cancel asks first)', printerControlButtons]]],
  // These change the settings (auto-creation off for a moment), so nothing runs beside them.
  [[['the auto-creation toggle and the interval survive a reload', settingsSurviveReload]]],
  [[['settings_updated from another client shows at once', settingsFromAnotherClient]]],
  [[['after a reconnect the page re-reads what it missed', rereadsAfterReconnect]]],
  // Last: it stops and restarts the daemon.
  [[['the banner shows while the daemon is down; the page recovers and shows a print found on startup', bannerWhileDaemonDown]]],
];

const STAGES = API_KEY
  ? [[
    [['the page asks for the API key, refuses a wrong one and keeps the right one', apiKeyIsAskedFor]],
    [
      ['a viewer key sees no controls; an admin lists, makes and revokes keys', rolesShapeThePage],
      ['the export button downloads the filtered jobs with the key', exportCarriesTheKey],
    ],
  ]]
  : ALL_STAGES;

// ---------------------------------------------------------------- the scenarios

const { x1, p1, prusa, badCode, offline } = PRINTERS;
const SIMULATED = [x1, p1, prusa];

/** Waits until `id`'s card shows a print at `min` % or more. */
async function expectProgress(page, id, min, timeout = WAIT) {
  await page.waitForFunction(
    ([id, min]) => Number(document.querySelector(`#printer-cards > li[data-printer-id="${id}"] [role="progressbar"]`)?.getAttribute('aria-valuenow')) >= min,
    [id, min],
    { timeout },
  );
}

/** A print on a simulated printer from start to `end`, waiting for its job each way;
 *  for a history of real auto-created jobs. */
async function realPrint(id, file, end) {
  const stem = file.replace(/\.(gcode\.3mf|3mf|bgcode|gcode)$/, '');
  await sim(id, 'print', { file, duration_s: 600 });
  await waitForJobs(`q=${stem}`, (jobs) => jobs.some((j) => j.status === 'running'));
  await sim(id, end);
  await waitForJobs(`q=${stem}`, (jobs) => jobs.length > 0 && jobs.every((j) => j.status !== 'running'));
  if (id.startsWith('prusa')) await sim(id, 'dismiss');
}

async function screenshots(browser) {
  // A farm's day: a few prints that ended one way or another, all recorded by the
  // daemon from the simulated printers, and one job entered by hand.
  await autoCreationOn();
  await realPrint(prusa.id, 'benchy.bgcode', 'finish');
  await realPrint(p1.id, 'cable_clips_x20.3mf', 'cancel');
  await realPrint(x1.id, 'enclosure_hinge.gcode.3mf', 'finish');
  await realPrint(prusa.id, 'lamp_shade.bgcode', 'fail');
  await createJob({ job_name: 'order_1042_nameplates', printer_id: x1.id, status: 'completed', notes: 'picked up by the customer' });

  // Two printers well into a print; the third starts one while the pages watch, so its
  // toast is in the pictures.
  await sim(x1.id, 'print', { file: 'gear_housing.3mf', duration_s: 40 });
  await sim(p1.id, 'print', { file: 'phone_stand.gcode.3mf', duration_s: 60 });
  const pages = [];
  for (const opts of [{ colorScheme: 'light' }, { colorScheme: 'dark' }, { viewport: { width: 390, height: 844 }, isMobile: true, colorScheme: 'light' }]) {
    pages.push(await open(browser, opts));
  }
  for (const { page } of pages) {
    await expectProgress(page, x1.id, 25, 30_000);
    await expectProgress(page, p1.id, 15, 30_000);
  }
  await sim(prusa.id, 'print', { file: 'planetary_gearbox.bgcode', duration_s: 1800 });
  for (const { page } of pages) {
    await page.locator('.toast', { hasText: 'planetary_gearbox' }).filter({ hasText: `on ${prusa.name}` }).waitFor({ timeout: WAIT });
    await expectCard(page, prusa.id, 'state', 'printing');
    await expectCard(page, badCode.id, 'connection', 'auth_failed');
    await page.mouse.move(0, 0);
  }
  // Long names wrap; nothing needs a sideways scroll on a desktop.
  assert.ok(await pages[0].page.evaluate(() => {
    const w = document.querySelector('.table-wrap');
    return w.scrollWidth <= w.clientWidth + 1;
  }), 'the job table fits its panel');
  await shot(pages[0].page, 'dashboard-light.png', { fullPage: true });
  await shot(pages[1].page, 'dashboard-dark.png', { fullPage: true });
  await shot(pages[2].page, 'dashboard-phone.png');
  for (const p of pages) await p.close();
  for (const p of SIMULATED) await sim(p.id, 'finish');
  await sim(prusa.id, 'dismiss');
}

async function pageLoadsCleanly(browser) {
  const s = await open(browser);
  const { page } = s;
  assert.equal(await page.title(), 'printfarmd');
  assert.equal(await page.locator('#jobs').isVisible(), true);
  // The stylesheet applied (a CSP or type mistake would leave the page unstyled).
  assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector('.panel')).borderRadius), '10px');
  const printers = await rest('GET', '/printers');
  assert.equal(printers.status, 200);
  assert.equal(printers.body.total_count, Object.keys(PRINTERS).length);
  await page.waitForFunction((n) => document.querySelectorAll('#printer-cards > li').length === n, printers.body.total_count, { timeout: WAIT });
  // One card per printer, named, with its type; the simulated ones online with
  // temperatures.
  for (const p of Object.values(PRINTERS)) await expectText(card(page, p.id).locator('h3'), p.name);
  await expectText(card(page, x1.id).locator('.printer-card__meta'), 'Bambu Lab');
  await expectText(card(page, prusa.id).locator('.printer-card__meta'), 'PrusaLink');
  for (const p of SIMULATED) {
    await expectCard(page, p.id, 'connection', 'connected');
    await expectText(card(page, p.id).locator('.temps'), '°C');
  }
  // The printer filter offers them by name.
  await page.waitForFunction((name) => [...document.querySelectorAll('#job-filters option')].some((o) => o.textContent === name), x1.name, { timeout: WAIT });
  await page.locator('#settings').waitFor({ timeout: WAIT });
  await s.close();
}

async function autoCreatedJobFromSimulatedPrint(browser) {
  // The whole chain for real: the simulated printers start printing, the daemon's drivers
  // see it (Bambu pushes over MQTT/TLS, PrusaLink is polled every second), the
  // JobCreator records a job and the page hears job_auto_created and printer_status.
  await autoCreationOn();
  const t = token('sim');
  const s = await open(browser, { hash: `q=${t}` });
  const { page } = s;
  await expectText(page.locator('#jobs-empty'), 'No jobs match');
  const prints = [
    { ...x1, file: `${t}-benchy.3mf`, job: `${t}-benchy`, end: 'finish', status: 'completed' },
    { ...p1, file: `${t}-clip.gcode.3mf`, job: `${t}-clip`, end: 'cancel', status: 'cancelled' },
    { ...prusa, file: `${t}-bracket.bgcode`, job: `${t}-bracket`, end: 'finish', status: 'completed' },
  ];
  for (const p of prints) await sim(p.id, 'print', { file: p.file, duration_s: 40 });

  for (const p of prints) {
    // The seed's toast: "<job name> on <printer name>". (The job name is what the printer
    // calls the print: PrusaLink's display name keeps the file's extension.)
    const toast = page.locator('.toast', { hasText: p.job }).filter({ hasText: `on ${p.name}` });
    await toast.waitFor({ timeout: WAIT });
    assert.equal(await toast.locator('.toast__title').innerText(), '⚡ Job Auto-Created');
    assert.match(await toast.locator('.toast__message').innerText(), new RegExp(`^${p.job}(\\.bgcode)? on ${p.name}$`));
    // The row, with the badge and the seed's tooltip.
    const r = row(page, p.job);
    await r.waitFor({ timeout: WAIT });
    await expectText(r.locator('td[data-label="Printer"]'), p.name);
    const badge = r.locator('.badge-auto');
    assert.equal(await badge.locator('.badge-auto__label').innerText(), '⚡ Auto');
    const tip = (await badge.getAttribute('title')).split('\n');
    assert.equal(tip[0], 'Automatically created');
    assert.match(tip[1], /^Discovered: /);
    // The card: printing, the file, a moving progress bar, time left, temperatures.
    await expectCard(page, p.id, 'state', 'printing');
    const c = card(page, p.id);
    await expectText(c.locator('.printer-card__file'), p.job);
    await expectText(c.locator('.printer-card__progress'), 'left');
    await expectText(c.locator('.temps'), 'Nozzle');
  }
  await expectRowCount(page, prints.length);
  await expectText(rows(page).locator('.pill'), 'Running');
  // printer_status keeps the bar moving (1 % every 0.4 s).
  for (const p of prints) {
    const now = Number(await card(page, p.id).locator('[role="progressbar"]').getAttribute('aria-valuenow'));
    await expectProgress(page, p.id, now + 2);
  }
  const stored = (await rest('GET', `/jobs?q=${t}`)).body.jobs;
  for (const j of stored) {
    assert.equal(j.customer_info.auto_created, true);
    assert.equal(j.customer_info.discovered_on_startup, false);
  }

  // The prints end: the rows follow, and the cards go back.
  for (const p of prints) await sim(p.id, p.end);
  for (const p of prints) {
    await row(page, p.job).and(page.locator(`[data-status="${p.status}"]`)).waitFor({ timeout: WAIT });
    await page.waitForFunction((id) => {
      const c = document.querySelector(`#printer-cards > li[data-printer-id="${id}"]`);
      return c && c.dataset.state !== 'printing' && !c.querySelector('[role="progressbar"]');
    }, p.id, { timeout: WAIT });
  }
  await expectText(row(page, `${t}-benchy`).locator('.pill'), 'Completed');
  await expectText(row(page, `${t}-clip`).locator('.pill'), 'Cancelled');
  await sim(prusa.id, 'dismiss');
  await s.close();
}

async function printerControlButtons(browser) {
  // The buttons go through POST /api/v1/printers/{id}/pause|resume|cancel to the
  // simulated printer over MQTT and back through printer_status.
  await autoCreationOn();
  const t = token('ctl');
  const s = await open(browser, { hash: `q=${t}` });
  const { page } = s;
  await sim(x1.id, 'print', { file: `${t}-lid.3mf`, duration_s: 600 });
  await expectProgress(page, x1.id, 1);
  const button = (label) => card(page, x1.id).getByRole('button', { name: `${label} the print on ${x1.name}` });
  await button('Pause').click();
  await expectCard(page, x1.id, 'state', 'paused');
  await page.locator('.toast', { hasText: 'Pause sent' }).waitFor({ timeout: WAIT });
  assert.equal(await button('Pause').count(), 0, 'no pause button while paused');
  await button('Resume').click();
  await expectCard(page, x1.id, 'state', 'printing');
  // Cancel asks first; keeping the print changes nothing.
  const dialog = page.locator('#cancel-print-dialog');
  await button('Cancel').click();
  await dialog.waitFor({ timeout: WAIT });
  await expectText(dialog, `${t}-lid`);
  await dialog.getByRole('button', { name: 'Keep printing' }).click();
  await dialog.waitFor({ state: 'hidden', timeout: WAIT });
  await expectCard(page, x1.id, 'state', 'printing');
  await button('Cancel').click();
  await dialog.getByRole('button', { name: 'Cancel print' }).click();
  await dialog.waitFor({ state: 'hidden', timeout: WAIT });
  await row(page, `${t}-lid`).and(page.locator('[data-status="cancelled"]')).waitFor({ timeout: WAIT });
  const [job] = (await rest('GET', `/jobs?q=${t}`)).body.jobs;
  assert.equal(job.end_reason, 'cancelled from printfarmd');
  await s.close();
}

async function authFailedCard(browser) {
  // A real refusal: this entry points at the simulator's broker with a serial of its own
  // and a wrong access code; the broker answers CONNACK 5 like a printer does.
  const s = await open(browser);
  const { page } = s;
  await expectCard(page, badCode.id, 'connection', 'auth_failed');
  const c = card(page, badCode.id);
  await expectText(c.locator('.pill.conn'), 'Authentication failed');
  await expectText(c.locator('.printer-card__problem'), 'refused the configured credentials');
  assert.notEqual((await c.locator('.printer-card__error').innerText()).trim(), '', 'the daemon says why');
  // Marked by more than colour, and no live data pretending otherwise.
  assert.equal(await c.locator('.temps, [role="progressbar"]').count(), 0);
  assert.equal((await rest('GET', `/printers/${badCode.id}`)).body.connection, 'auth_failed');
  // The real printer on the same broker is unaffected.
  await expectCard(page, p1.id, 'connection', 'connected');
  await s.close();
}

async function offlineCard(browser) {
  const s = await open(browser);
  const { page } = s;
  // Nobody listens where this one is configured.
  await expectCard(page, offline.id, 'connection', 'disconnected');
  const c = card(page, offline.id);
  await expectText(c.locator('.pill.conn'), 'Offline');
  await expectText(c.locator('.printer-card__problem'), 'cannot be reached');
  assert.equal(await c.locator('.temps').count(), 0);

  // A printer that drops off (the simulated PrusaLink reboots: unreachable for 2.5 s) is
  // marked at once by printer_status, and comes back on its own.
  await expectCard(page, prusa.id, 'connection', 'connected');
  await sim(prusa.id, 'reboot');
  await expectCard(page, prusa.id, 'connection', 'disconnected');
  await expectText(card(page, prusa.id).locator('.pill.conn'), 'Offline');
  await expectCard(page, prusa.id, 'connection', 'connected');
  await expectText(card(page, prusa.id).locator('.pill.conn'), 'Online');
  await s.close();
}

async function jobsWithBadge(browser) {
  const t = token('badge');
  const manual = await createJob({ job_name: `${t}-manual`, status: 'completed' });
  await createJob({ job_name: `${t}-auto`, printer_id: 'bambu_1', status: 'completed', customer_info: { auto_created: true, discovery_time: '2025-01-09T14:30:00Z', discovered_on_startup: false } });
  await createJob({ job_name: `${t}-startup`, status: 'failed', customer_info: { auto_created: true, discovery_time: '2025-01-09T14:30:00Z', printer_start_time: '2025-01-09T14:28:45Z', discovered_on_startup: true } });
  const s = await open(browser, { hash: `q=${t}` });
  const { page } = s;
  await expectRowCount(page, 3);
  const names = await page.locator('#job-rows .job-title').allInnerTexts();
  assert.deepEqual(names, [`${t}-startup`, `${t}-auto`, `${t}-manual`], 'newest first');

  assert.equal(await row(page, `${t}-manual`).locator('.badge-auto').count(), 0);
  const auto = row(page, `${t}-auto`).locator('.badge-auto');
  assert.equal(await auto.locator('.badge-auto__label').innerText(), '⚡ Auto');
  // 14:30 UTC is 9:30 in New York in January: the tooltip shows local time.
  const autoTip = (await auto.getAttribute('title')).split('\n');
  assert.deepEqual([autoTip[0], normalise(autoTip[1])], ['Automatically created', 'Discovered: Jan 9, 2025, 9:30:00 AM']);
  const startup = row(page, `${t}-startup`).locator('.badge-auto');
  const tip = await startup.getAttribute('title');
  assert.equal(tip.split('\n')[0], 'Automatically created (discovered on startup)');
  assert.equal(normalise(tip.split('\n')[1]), 'Discovered: Jan 9, 2025, 9:30:00 AM');
  // Screen readers get the tooltip as text.
  assert.match(normalise(await startup.locator('.visually-hidden').innerText()), /Automatically created \(discovered on startup\)\. Discovered:/);

  // Status and printer columns.
  await expectText(row(page, `${t}-startup`).locator('.pill'), 'Failed');
  // Printers are shown by name.
  await expectText(row(page, `${t}-auto`).locator('td[data-label="Printer"]'), x1.name);
  assert.equal(await row(page, `${t}-manual`).getAttribute('data-job-id'), manual.id);
  await s.close();
}

async function filtersNarrowTheList(browser) {
  const t = token('filter');
  await createJob({ job_name: `${t}-a`, printer_id: 'prusa_1', status: 'completed' });
  await createJob({ job_name: `${t}-b`, printer_id: 'prusa_1', status: 'failed' });
  await createJob({ job_name: `${t}-c`, printer_id: 'bambu_1', status: 'completed', customer_info: { auto_created: true, discovery_time: new Date().toISOString(), discovered_on_startup: false } });
  const s = await open(browser);
  const { page } = s;
  await filters(page).getByLabel('Search', { exact: true }).fill(t);
  await expectRowCount(page, 3);

  await filters(page).getByLabel('Printer', { exact: true }).selectOption('prusa_1');
  await expectRowCount(page, 2);
  await filters(page).getByLabel('Status', { exact: true }).selectOption('failed');
  await expectRowCount(page, 1);
  await expectText(rows(page), `${t}-b`);

  await filters(page).getByLabel('Printer', { exact: true }).selectOption('');
  await filters(page).getByLabel('Status', { exact: true }).selectOption('');
  await expectRowCount(page, 3);
  await filters(page).getByLabel('Created', { exact: true }).selectOption('true');
  await expectRowCount(page, 1);
  assert.equal(await rows(page).locator('.badge-auto').count(), 1);
  await filters(page).getByLabel('Created', { exact: true }).selectOption('false');
  await expectRowCount(page, 2);
  assert.equal(await rows(page).locator('.badge-auto').count(), 0);

  // The filters are in the URL: a reload shows the same view.
  assert.match(page.url(), /auto_created=false/);
  await page.reload();
  await live(page);
  await expectRowCount(page, 2);
  assert.equal(await filters(page).getByLabel('Created', { exact: true }).inputValue(), 'false');
  assert.equal(await filters(page).getByLabel('Search', { exact: true }).inputValue(), t);
  await s.close();
}

async function pagingWithLimitAndOffset(browser) {
  const t = token('page');
  for (let i = 1; i <= 12; i++) await createJob({ job_name: `${t}-${String(i).padStart(2, '0')}`, status: 'completed' });
  const s = await open(browser, { hash: `q=${t}` });
  const { page } = s;
  await filters(page).getByLabel('Per page', { exact: true }).selectOption('10');
  await expectRowCount(page, 10);
  await expectText(page.locator('#page-info'), '1–10 of 12');
  assert.equal(await page.locator('#job-rows .job-title').first().innerText(), `${t}-12`);
  assert.equal(await page.locator('#page-prev').isDisabled(), true);

  await page.getByRole('button', { name: 'Older' }).click();
  await expectRowCount(page, 2);
  await expectText(page.locator('#page-info'), '11–12 of 12');
  assert.deepEqual(await page.locator('#job-rows .job-title').allInnerTexts(), [`${t}-02`, `${t}-01`]);
  assert.equal(await page.locator('#page-next').isDisabled(), true);
  assert.match(page.url(), /offset=10/);

  await page.getByRole('button', { name: 'Newer' }).click();
  await expectRowCount(page, 10);
  await expectText(page.locator('#page-info'), '1–10 of 12');
  await s.close();
}

async function editPersists(browser) {
  const t = token('edit');
  const job = await createJob({
    job_name: `${t}-before`,
    status: 'completed',
    customer_info: { auto_created: true, discovery_time: '2025-01-09T14:30:00Z', discovered_on_startup: false, customer: 'ACME' },
  });
  const s = await open(browser, { hash: `q=${t}` });
  const { page } = s;
  await expectRowCount(page, 1);
  await page.getByRole('button', { name: `Edit ${t}-before` }).click();
  const dialog = page.locator('#edit-dialog');
  await dialog.waitFor({ timeout: WAIT });
  await expectText(dialog, 'Automatically created');
  assert.equal(await page.getByLabel('Name', { exact: true }).inputValue(), `${t}-before`);
  await page.getByLabel('Name', { exact: true }).fill(`${t}-after`);
  await page.getByLabel('Notes', { exact: true }).fill('reprinted in PETG');
  await dialog.getByLabel('Status').selectOption('failed');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await dialog.waitFor({ state: 'hidden', timeout: WAIT });
  await expectText(page.locator('.toast'), 'Job saved');
  await expectText(rows(page).locator('.job-title'), `${t}-after`);

  await page.reload();
  await live(page);
  await expectText(rows(page).locator('.job-title'), `${t}-after`);
  await expectText(rows(page).locator('.pill'), 'Failed');
  await expectText(rows(page).locator('.job-notes'), 'reprinted in PETG');
  assert.equal(await rows(page).locator('.badge-auto').count(), 1, 'an edit keeps the auto-created badge');

  const stored = (await rest('GET', `/jobs/${job.id}`)).body;
  assert.equal(stored.job_name, `${t}-after`);
  assert.equal(stored.notes, 'reprinted in PETG');
  assert.equal(stored.status, 'failed');
  assert.equal(stored.customer_info.auto_created, true);
  assert.equal(stored.customer_info.customer, 'ACME');
  await s.close();
}

async function deleteAsksFirst(browser) {
  const t = token('del');
  const job = await createJob({ job_name: `${t}-doomed`, status: 'completed' });
  await createJob({ job_name: `${t}-kept`, status: 'completed' });
  const s = await open(browser, { hash: `q=${t}` });
  const { page } = s;
  await expectRowCount(page, 2);
  const dialog = page.locator('#delete-dialog');

  await page.getByRole('button', { name: `Delete ${t}-doomed` }).click();
  await dialog.waitFor({ timeout: WAIT });
  await expectText(dialog, `${t}-doomed`);
  await dialog.getByRole('button', { name: 'Keep it' }).click();
  await dialog.waitFor({ state: 'hidden', timeout: WAIT });
  assert.equal((await rest('GET', `/jobs/${job.id}`)).status, 200, 'cancelling keeps the job');
  await expectRowCount(page, 2);

  await page.getByRole('button', { name: `Delete ${t}-doomed` }).click();
  await dialog.getByRole('button', { name: 'Delete', exact: true }).click();
  await dialog.waitFor({ state: 'hidden', timeout: WAIT });
  await expectRowCount(page, 1);
  await expectText(rows(page), `${t}-kept`);
  await expectText(page.locator('.toast'), 'Job deleted');
  assert.equal((await rest('GET', `/jobs/${job.id}`)).status, 404);
  await s.close();
}

async function settingsSurviveReload(browser) {
  const before = (await rest('GET', '/settings')).body;
  const s = await open(browser);
  const { page } = s;
  const toggle = page.getByRole('switch', { name: 'Create a job automatically when a print starts' });
  await page.waitForFunction(() => !document.getElementById('auto-create').disabled, null, { timeout: WAIT });
  assert.equal(await toggle.isChecked(), before.job_creation_auto_create);

  // With the keyboard: focus and Space.
  await toggle.focus();
  await page.keyboard.press('Space');
  await expectText(page.locator('#settings-status'), 'Saved');
  assert.equal((await rest('GET', '/settings')).body.job_creation_auto_create, !before.job_creation_auto_create);

  const interval = page.getByLabel('Monitoring interval (seconds)');
  await interval.fill('17');
  await page.getByRole('button', { name: 'Save interval' }).click();
  await expectText(page.locator('#settings-status'), 'every 17 s');
  assert.equal((await rest('GET', '/settings')).body.monitoring_interval, 17);

  // A refused value says why and changes nothing.
  await interval.fill('0');
  await page.getByRole('button', { name: 'Save interval' }).click();
  assert.equal(await interval.evaluate((e) => e.validity.valid), false);

  await page.reload();
  await live(page);
  await page.waitForFunction(() => !document.getElementById('auto-create').disabled, null, { timeout: WAIT });
  assert.equal(await toggle.isChecked(), !before.job_creation_auto_create);
  assert.equal(await interval.inputValue(), '17');

  // Back as it was, through the page.
  await toggle.click();
  await expectText(page.locator('#settings-status'), 'Saved');
  assert.equal((await rest('GET', '/settings')).body.job_creation_auto_create, before.job_creation_auto_create);
  await s.close();
  await rest('PUT', '/settings', { monitoring_interval: before.monitoring_interval });
}

async function settingsFromAnotherClient(browser) {
  const before = (await rest('GET', '/settings')).body;
  const s = await open(browser);
  const { page } = s;
  await page.waitForFunction(() => !document.getElementById('auto-create').disabled, null, { timeout: WAIT });
  const r = await rest('PUT', '/settings', { job_creation_auto_create: !before.job_creation_auto_create, monitoring_interval: 42 });
  assert.equal(r.status, 200);
  await page.waitForFunction(
    (want) => document.getElementById('auto-create').checked === want && document.getElementById('monitoring-interval').value === '42',
    !before.job_creation_auto_create,
    { timeout: WAIT },
  );
  await rest('PUT', '/settings', { job_creation_auto_create: before.job_creation_auto_create, monitoring_interval: before.monitoring_interval });
  await page.waitForFunction((want) => document.getElementById('auto-create').checked === want, before.job_creation_auto_create, { timeout: WAIT });
  await s.close();
}

async function liveJobEvents(browser) {
  const t = token('live');
  const s = await open(browser, { hash: `q=${t}` });
  const { page } = s;
  await expectText(page.locator('#jobs-empty'), 'No jobs match');
  const job = await createJob({ job_name: `${t}-new`, status: 'completed' });
  await expectRowCount(page, 1);
  await rest('PUT', `/jobs/${job.id}`, { notes: 'changed elsewhere' });
  await expectText(rows(page).locator('.job-notes'), 'changed elsewhere');
  await rest('PUT', `/jobs/${job.id}`, { status: 'failed' });
  await expectText(rows(page).locator('.pill'), 'Failed');
  await rest('DELETE', `/jobs/${job.id}`);
  await expectRowCount(page, 0);
  await s.close();
}

async function startupDiscoveryToast(browser) {
  // The one fixture left. A job is "discovered on startup" when the daemon's first look at
  // a printer finds it mid-print, which happens as the daemon starts, before any page can
  // have reconnected to it; events are not replayed, so a real page never sees this toast
  // live (after reconnecting it re-reads the list: bannerWhileDaemonDown checks the row and
  // tooltip of a real startup discovery). So the job is real and its event is delivered
  // over the real socket by the test.
  const t = token('found');
  const s = await openWithInjection(browser, { hash: `q=${t}` });
  const { page } = s;
  await expectText(page.locator('#jobs-empty'), 'No jobs match');
  const found = await createJob({ job_name: `${t}-found`, printer_id: prusa.id, status: 'completed', customer_info: { auto_created: true, discovery_time: new Date().toISOString(), discovered_on_startup: true } });
  s.inject('job_auto_created', found);
  const discovered = page.locator('.toast', { hasText: '⚡ Job Discovered' });
  await discovered.waitFor({ timeout: WAIT });
  assert.equal(await discovered.locator('.toast__message').innerText(), `${t}-found on ${prusa.name} (on startup)`);
  await expectRowCount(page, 1);
  // Toasts can be dismissed.
  await discovered.getByRole('button', { name: 'Dismiss notification' }).click();
  await discovered.waitFor({ state: 'detached', timeout: WAIT });
  await s.close();
}

async function rereadsAfterReconnect(browser) {
  // The page's socket goes through a relay that can drop messages and close the page's
  // side, so events can be lost deterministically.
  const t = token('missed');
  const context = await browser.newContext(CONTEXT);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  let drop = () => false;
  let dropped = null;
  let pageSide = null;
  let connections = 0;
  await page.routeWebSocket(/\/ws$/, (ws) => {
    connections += 1;
    pageSide = ws;
    const server = ws.connectToServer();
    server.onMessage((m) => {
      if (drop(String(m))) dropped?.();
      else ws.send(m);
    });
  });
  await page.goto(`${daemon.base}/#q=${t}`);
  await live(page);
  await page.waitForFunction(() => !document.getElementById('auto-create').disabled, null, { timeout: WAIT });
  const interval = await page.getByLabel('Monitoring interval (seconds)').inputValue();

  // Lose the events of a new job and of a settings change.
  const lost = new Promise((resolve) => {
    let n = 0;
    dropped = () => ++n === 2 && resolve();
  });
  drop = (m) => m.includes(`${t}-missed`) || m.includes('"settings_updated"');
  await createJob({ job_name: `${t}-missed`, status: 'completed' });
  const newInterval = String(Number(interval) === 23 ? 24 : 23);
  await rest('PUT', '/settings', { monitoring_interval: Number(newInterval) });
  await lost;
  // Nothing else tells the page (it does not poll), so it still shows the old state.
  assert.equal(await rows(page).count(), 0);
  assert.equal(await page.getByLabel('Monitoring interval (seconds)').inputValue(), interval);

  // The connection drops; the page reconnects on its own and re-reads.
  drop = () => false;
  await pageSide.close({ code: 1012, reason: 'test relay restart' });
  await page.waitForFunction(() => document.querySelectorAll('#job-rows tr').length === 1, null, { timeout: WAIT });
  await page.waitForFunction((v) => document.getElementById('monitoring-interval').value === v, newInterval, { timeout: WAIT });
  await live(page);
  assert.ok(connections >= 2, 'the page opened a new connection');
  await context.close();
  assert.deepEqual(errors, []);
  await rest('PUT', '/settings', { monitoring_interval: Number(interval) });
}

async function phoneAndKeyboard(browser) {
  const t = token('phone');
  await createJob({ job_name: `${t}-a-rather-long-job-name-that-must-wrap-on-a-phone`, status: 'completed' });
  const s = await open(browser, { hash: `q=${t}`, viewport: { width: 360, height: 740 }, isMobile: true, colorScheme: 'dark' });
  const { page } = s;
  await expectRowCount(page, 1);
  // No sideways scrolling on a phone; rows become cards with their labels.
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'the page fits the phone width');
  assert.equal(await page.locator('#job-table thead').isVisible(), false);
  assert.equal(await rows(page).locator('td[data-label="Status"]').evaluate((td) => getComputedStyle(td, '::before').content), '"Status"');

  // Every control has a name a screen reader can announce.
  for (const label of ['Printer', 'Status', 'Created', 'Search', 'Per page']) {
    assert.equal(await filters(page).getByLabel(label, { exact: true }).count(), 1, `filter labelled ${label}`);
  }
  for (const label of ['Theme', 'Monitoring interval (seconds)', 'Create a job automatically when a print starts']) {
    assert.equal(await page.getByLabel(label, { exact: true }).count(), 1, `control labelled ${label}`);
  }
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea')].filter((c) => !c.labels?.length && !c.getAttribute('aria-label')).map((c) => c.id),
  );
  assert.deepEqual(unlabelled, [], 'every control has a label');
  const unnamed = await page.evaluate(() =>
    [...document.querySelectorAll('button')].filter((b) => !(b.getAttribute('aria-label') || b.textContent.trim())).length,
  );
  assert.equal(unnamed, 0, 'every button has a name');

  // Keyboard: the skip link, then the row's Edit button, the dialog, Escape, focus back.
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.className), 'skip-link');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.activeElement?.id === 'jobs-heading', null, { timeout: WAIT });
  const edit = page.getByRole('button', { name: /^Edit / });
  for (let i = 0; i < 30 && !(await edit.evaluate((b) => b === document.activeElement)); i++) await page.keyboard.press('Tab');
  assert.equal(await edit.evaluate((b) => b === document.activeElement), true, 'Edit is reachable with Tab');
  await page.keyboard.press('Enter');
  await page.locator('#edit-dialog').waitFor({ timeout: WAIT });
  assert.equal(await page.evaluate(() => document.activeElement.id), 'edit-name');
  await page.keyboard.press('Escape');
  await page.locator('#edit-dialog').waitFor({ state: 'hidden', timeout: WAIT });
  assert.equal(await edit.evaluate((b) => b === document.activeElement), true, 'focus returns to Edit');

  // The theme picker switches without a reload.
  await page.getByLabel('Theme').selectOption('light');
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'light');
  await s.close();
}

async function bannerWhileDaemonDown(browser) {
  const t = token('down');
  await autoCreationOn();
  const s = await open(browser, { hash: `q=${t}`, allowNetworkErrors: true });
  const { page } = s;
  const banner = page.locator('#offline-banner');
  assert.equal(await banner.isVisible(), false);

  assert.equal(await control('stop'), 'stopped');
  await banner.waitFor({ state: 'visible', timeout: WAIT });
  await expectText(banner, 'The daemon is unreachable');
  await expectText(page.locator('#live-status'), 'Offline');
  // A print starts while the daemon is away. (On PrusaLink, which prints at once: a Bambu
  // printer that ended a print before shows that print's FINISH for a moment, and a
  // daemon that looks then rightly sees this print start live.)
  await sim(prusa.id, 'print', { file: `${t}-overnight.bgcode`, duration_s: 120 });

  const started = await control('start');
  assert.match(started, /^started /);
  daemon.base = started.slice('started '.length);
  await banner.waitFor({ state: 'hidden', timeout: RECONNECT_WAIT });
  await live(page);
  // The restarted daemon finds it and records it as discovered on startup; the page
  // re-reads after reconnecting and shows it so.
  const found = row(page, `${t}-overnight`);
  await found.waitFor({ timeout: WAIT });
  const tip = await found.locator('.badge-auto').getAttribute('title');
  assert.equal(tip.split('\n')[0], 'Automatically created (discovered on startup)');
  await expectCard(page, prusa.id, 'state', 'printing');
  // The new connection carries events again.
  await createJob({ job_name: `${t}-after`, status: 'completed' });
  await expectRowCount(page, 2);
  await sim(prusa.id, 'finish');
  await row(page, `${t}-overnight`).and(page.locator('[data-status="completed"]')).waitFor({ timeout: WAIT });
  await sim(prusa.id, 'dismiss');
  await s.close();
}

async function apiKeyIsAskedFor(browser) {
  const t = token('key');
  // This daemon has only the offline printer.
  await createJob({ job_name: `${t}-secret`, printer_id: offline.id, status: 'completed' });
  const context = await browser.newContext(CONTEXT);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    // Refused requests (401/403) are logged by the browser itself.
    if (m.type() === 'error' && !/401|403|WebSocket connection|Failed to load resource/.test(m.text())) errors.push(m.text());
  });
  // The race a slow network makes: a request sent without a key is answered only after
  // a wrong key has been entered. Its refusal must not hide the wrong key's. Here the
  // page's first /settings request is held until the wrong key's first request has been
  // sent, and answered before that one goes on, so the order is certain.
  let releaseStale;
  const stale = new Promise((resolve) => { releaseStale = resolve; });
  let staleRequest = null;
  await page.route('**/api/v1/**', async (route) => {
    const request = route.request();
    const key = request.headers()['x-api-key'];
    if (!key && !staleRequest && new URL(request.url()).pathname === '/api/v1/settings') {
      staleRequest = request;
      await stale;
    } else if (key === 'not-the-key' && staleRequest) {
      releaseStale();
      await (await staleRequest.response())?.finished();
      await page.evaluate(() => new Promise((r) => setTimeout(r, 100)));
    }
    await route.continue();
  });
  await page.goto(`${daemon.base}/#q=${t}`);
  const dialog = page.locator('#key-dialog');
  await dialog.waitFor({ timeout: WAIT });
  assert.equal(await rows(page).count(), 0);

  await page.getByLabel('API key', { exact: true }).fill('not-the-key');
  await page.keyboard.press('Enter');
  await expectText(dialog, 'That key was not accepted');
  assert.ok(staleRequest, 'the keyless /settings request was held');
  await page.unrouteAll({ behavior: 'wait' });

  await page.getByLabel('API key', { exact: true }).fill(API_KEY);
  await dialog.getByRole('button', { name: 'Use key' }).click();
  await dialog.waitFor({ state: 'hidden', timeout: WAIT });
  await live(page);
  // The prompt says what the key may do.
  await expectText(page.locator('#toasts'), 'This key has the admin role');
  await expectText(page.locator('#role-status'), 'Role: admin');
  await expectRowCount(page, 1);
  await page.waitForFunction(() => !document.getElementById('auto-create').disabled, null, { timeout: WAIT });

  // The key is kept in this browser: a reload needs no prompt.
  await page.reload();
  await live(page);
  await expectRowCount(page, 1);
  assert.equal(await dialog.isVisible(), false);
  await context.close();
  assert.deepEqual(errors, []);
}

// ---------------------------------------------------------------- runner

// The flags keep Chromium from reaching out to the internet (it has nothing to fetch, and
// a closed network refuses it noisily).
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // evil.test and rebind.test resolve to this machine: the pages of another site and of a
  // DNS-rebinding attacker (foreignPageCannotDriveTheDaemon).
  args: ['--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run',
    '--host-resolver-rules=MAP evil.test 127.0.0.1, MAP rebind.test 127.0.0.1'],
});
let passed = 0;
let failed = 0;
const started = Date.now();
async function runLane(lane) {
  for (const [name, fn] of lane) {
    if (ONLY && !name.includes(ONLY) && fn.name !== ONLY) continue;
    const t0 = Date.now();
    try {
      await fn(browser);
      passed += 1;
      console.log(`ok - ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed += 1;
      console.log(`FAIL - ${name}\n${e.stack ?? e}`);
    }
  }
}
for (const lanes of STAGES) await Promise.all(lanes.map(runLane));
await browser.close();
stdinLines.close();
console.log(`browser: ${passed} passed, ${failed} failed (${((Date.now() - started) / 1000).toFixed(1)} s)`);
process.exit(failed ? 1 : 0);
