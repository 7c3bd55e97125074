// Access control in a real browser (issue 15), scenarios run by dashboard.mjs: what a
// viewer's and an admin's key show on the dashboard (with [auth] on), and what a page on
// another site or under a DNS-rebinding name can do to a daemon without keys (nothing).

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { API_KEY, CONTEXT, PRINTERS, WAIT, createJob, daemon, expectRowCount, expectText, live, rest, token } from './harness.mjs';

const { offline } = PRINTERS;

export async function rolesShapeThePage(browser) {
  const t = token('roles');
  await createJob({ job_name: `${t}-job`, printer_id: offline.id, status: 'completed' });
  const made = await rest('POST', '/keys', { name: `${t}-wall`, role: 'viewer' });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const viewerKey = made.body.key;
  const withKey = async (key) => {
    const context = await browser.newContext(CONTEXT);
    await context.addInitScript((k) => localStorage.setItem('printfarmd.apiKey', k), key);
    const page = await context.newPage();
    await page.goto(`${daemon.base}/#q=${t}`);
    await live(page);
    await expectRowCount(page, 1);
    return { context, page };
  };

  // A viewer: the role is shown, and no edit, delete, settings or keys controls.
  const v = await withKey(viewerKey);
  await expectText(v.page.locator('#role-status'), `Role: viewer (${t}-wall)`);
  assert.equal(await v.page.locator('#job-rows button[data-action="edit"]').isVisible(), false);
  assert.equal(await v.page.locator('#job-rows button[data-action="delete"]').isVisible(), false);
  assert.equal(await v.page.locator('#settings').isVisible(), false);
  assert.equal(await v.page.locator('#keys').isVisible(), false);
  // What the page hides the daemon refuses anyway, without asking for another key.
  const refused = await v.page.evaluate(() => window.printfarmd.api.updateSettings({ monitoring_interval: 9 }).then(() => 'saved', (e) => e.code));
  assert.equal(refused, 'forbidden');
  assert.equal(await v.page.locator('#key-dialog').isVisible(), false);
  await v.context.close();

  // An admin: the keys page lists the viewer's key, makes one and revokes one.
  const a = await withKey(API_KEY);
  await expectText(a.page.locator('#role-status'), 'Role: admin');
  assert.equal(await a.page.locator('#job-rows button[data-action="edit"]').isVisible(), true);
  const keys = a.page.locator('#keys');
  await expectText(keys.locator('#key-rows tr'), `${t}-wall`);
  await keys.getByLabel('Key name').fill(`${t}-floor`);
  await keys.getByLabel('Key role').selectOption('operator');
  await keys.getByRole('button', { name: 'Make key' }).click();
  await a.page.waitForFunction(() => /^pfd_[0-9a-f]{16}_[0-9a-f]{64}$/.test(document.getElementById('key-made-value').value), null, { timeout: WAIT });
  const floorKey = await a.page.locator('#key-made-value').inputValue();
  await expectText(keys.locator('#key-rows tr', { hasText: `${t}-floor` }), 'Operator');
  assert.equal((await rest('GET', '/auth', undefined, floorKey)).body.role, 'operator');
  await keys.getByRole('button', { name: `Revoke ${t}-wall` }).click();
  await keys.locator('#key-rows tr[data-status="revoked"]', { hasText: `${t}-wall` }).waitFor({ timeout: WAIT });
  assert.equal((await rest('GET', '/jobs', undefined, viewerKey)).status, 401);
  assert.equal(await keys.locator('#key-rows').textContent().then((x) => x.includes(floorKey)), false, 'the list never shows a key');
  await a.context.close();
}

/** With [auth] off (the default), a page on another site (a second HTTP server, reached
 *  as evil.test) tries what a malicious page would: read the live stream and the jobs,
 *  reset a pinned certificate and create a job with requests that need no preflight, and
 *  change the settings. And a DNS-rebinding page (rebind.test resolving to the daemon)
 *  gets nothing at all. */
export async function foreignPageCannotDriveTheDaemon(browser) {
  const t = token('csrf');
  const D = daemon.base;
  const script = `
    window.results = {};
    (async () => {
      await new Promise((done) => {
        const ws = new WebSocket(${JSON.stringify(D.replace('http://', 'ws://'))} + '/ws');
        ws.onopen = () => { results.wsOpened = true; };
        ws.onmessage = () => { results.wsMessage = true; };
        ws.onclose = () => done();
        setTimeout(done, 5000);
      });
      results.read = await fetch(${JSON.stringify(D)} + '/api/v1/jobs').then((r) => r.json()).then(() => true, () => false);
      await fetch(${JSON.stringify(D)} + '/api/v1/printers/bambu_1/certificate/reset', { method: 'POST', mode: 'no-cors' }).catch(() => {});
      await fetch(${JSON.stringify(D)} + '/api/v1/jobs', { method: 'POST', mode: 'no-cors', headers: { 'Content-Type': 'text/plain' },
        body: JSON.stringify({ printer_id: 'prusa_1', job_name: ${JSON.stringify(t)}, filename: 'x.3mf' }) }).catch(() => {});
      results.put = await fetch(${JSON.stringify(D)} + '/api/v1/settings', { method: 'PUT', headers: { 'Content-Type': 'application/json' },
        body: '{"monitoring_interval": 777}' }).then(() => true, () => false);
      results.done = true;
    })();`;
  const server = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(`<!doctype html><title>a page on another site</title><script>${script}</script>`);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const context = await browser.newContext(CONTEXT);
  const page = await context.newPage();
  const answers = [];
  page.on('response', (r) => {
    if (r.url().startsWith(D)) answers.push(`${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`);
  });
  await page.goto(`http://evil.test:${server.address().port}/`);
  await page.waitForFunction(() => window.results?.done, null, { timeout: WAIT * 2 });
  const results = await page.evaluate(() => window.results);
  assert.deepEqual(results, { read: false, put: false, done: true }, 'the stream never opened and nothing was readable');
  // The daemon itself refused the writes a browser sends without asking first.
  assert.ok(answers.includes('POST /api/v1/printers/bambu_1/certificate/reset 403'), answers.join('\n'));
  assert.ok(answers.includes('POST /api/v1/jobs 415'), answers.join('\n'));
  assert.ok(!answers.some((a) => a.startsWith('PUT ')), `the PUT was never sent: ${answers.join('\n')}`);
  assert.equal((await rest('GET', `/jobs?q=${t}`)).body.total_count, 0);
  assert.notEqual((await rest('GET', '/settings')).body.monitoring_interval, 777);

  // DNS rebinding: a name the attacker controls, pointed at the daemon.
  const rebound = await page.goto(`http://rebind.test:${new URL(D).port}/`);
  assert.equal(rebound.status(), 421);
  assert.equal(await page.evaluate(() => fetch('/api/v1/jobs').then((r) => r.status)), 421);
  await context.close();
  server.close();
}

/** The export button works with [auth] on: the download carries the page's key (a
 *  plain link could not), while the same URL without a key is still refused. */
export async function exportCarriesTheKey(browser) {
  const t = token('export');
  await createJob({ job_name: `${t}-a,"quoted"`, printer_id: offline.id, status: 'completed' });
  await createJob({ job_name: `${t}-b`, printer_id: offline.id, status: 'failed' });
  const context = await browser.newContext({ ...CONTEXT, acceptDownloads: true });
  await context.addInitScript((k) => localStorage.setItem('printfarmd.apiKey', k), API_KEY);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(`${daemon.base}/#q=${t}`);
  await live(page);
  await expectRowCount(page, 2);
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: WAIT }), page.click('#export-csv')]);
  const text = await new Promise((resolve, reject) => {
    download.createReadStream().then((s) => {
      let out = '';
      s.on('data', (c) => { out += c; });
      s.on('end', () => resolve(out));
      s.on('error', reject);
    }, reject);
  });
  const lines = text.trimEnd().split(/\r?\n/);
  assert.match(lines[0], /^id,printer_id,printer_type,job_name,filename,status,/);
  assert.equal(lines.length, 3, `the header and the two jobs of this filter: ${text}`);
  assert.ok(lines.some((l) => l.includes(`"${t}-a,""quoted"""`)), 'RFC 4180 quoting survives the download');
  const anonymous = await rest('GET', `/jobs/export?format=csv&q=${t}`, undefined, '');
  assert.equal(anonymous.status, 401, 'the export still needs a key');
  await context.close();
  assert.deepEqual(errors, [], 'the page logged errors');
}
