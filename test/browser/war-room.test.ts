import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signToken } from '../../src/http/tokens.ts';
import { freshOrg } from '../support/app.ts';
import { databaseLabel } from '../support/database.ts';
import {
  ARTIFACTS,
  SKIP_REASON,
  apiClient,
  chromiumAvailable,
  launchChromium,
  openTab,
  signInByPaste,
  startBrowserServer,
  tabTo,
  unnamedControls,
  type BrowserServer,
  type Chromium,
} from './support.ts';

if (!chromiumAvailable) console.warn(SKIP_REASON);

const incidentBody = (title: string, extra: Record<string, unknown> = {}) => ({
  projectId: 'payments',
  title,
  serviceName: 'checkout',
  severity: 'SEV2',
  environment: 'production',
  ...extra,
});

const timeline = (page: Page) => page.getByRole('list', { name: 'Timeline' });
const timelineEntry = (page: Page, text: string) =>
  timeline(page).getByRole('listitem').filter({ hasText: text });
const shows = (page: Page, testId: string, text: string) =>
  page
    .getByTestId(testId)
    .filter({ hasText: new RegExp(`^${text}$`) })
    .waitFor();
const incidentIdOf = (page: Page) => /incidents\/(inc_[A-Za-z0-9_-]+)/.exec(page.url())?.[1] ?? '';

describe.skipIf(!chromiumAvailable)(`the war room in Chromium, on ${databaseLabel}`, () => {
  let server: BrowserServer;
  let chromium: Chromium;
  let call: ReturnType<typeof apiClient>;
  const token = (org: string, roles: string[], sub = 'lena', name = 'Lena Lead') =>
    server.token({ sub, name, orgs: { [org]: roles }, expiresIn: 3600 });
  /** An incident declared in `org` through the API: its id. */
  const declare = async (bearer: string, org: string, title: string, extra: Record<string, unknown> = {}) =>
    (
      await call<{ incidentId: string }>(
        bearer,
        'POST',
        `/api/orgs/${org}/incidents`,
        incidentBody(title, extra),
      )
    ).body.incidentId;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    server = await startBrowserServer();
    call = apiClient(server.origin);
    chromium = await launchChromium();
  });
  afterAll(async () => {
    await chromium?.close();
    await server?.cleanup();
  });

  it('signs in with a pasted token, shows who and the org, switches orgs, and forgets the token on sign-out', async () => {
    const [first, second] = [freshOrg('ui'), freshOrg('ui')].sort();
    const { page, problems } = await openTab(chromium.context);
    await page.goto(`${server.origin}/`);
    await page.getByRole('heading', { name: 'Sign in to ITS' }).waitFor();
    expect(await unnamedControls(page)).toEqual([]);

    // A token ITS did not sign is refused with the server's own reason.
    const forged = signToken(
      { sub: 'mallory', orgs: { [first!]: ['ORG_ADMIN'] } },
      'HS256',
      'not-the-secret',
    );
    await page.getByLabel('Token').fill(forged);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Not signed in: the token is invalid' }).waitFor();
    expect(await page.evaluate('sessionStorage.length')).toBe(0);

    const both = server.token({
      sub: 'lena',
      name: 'Lena Lead',
      orgs: { [first!]: ['SRE_LEAD'], [second!]: ['MEMBER'] },
      expiresIn: 3600,
    });
    await page.getByLabel('Token').fill(both);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Incidents' }).waitFor();
    expect(await page.getByTestId('who').textContent()).toBe('Lena Lead (lena)');
    expect(page.url()).toContain(`#/orgs/${first}/incidents`);
    expect(await page.getByLabel('Organization').inputValue()).toBe(first);
    await page.getByText('SRE_LEAD', { exact: true }).waitFor();
    expect(await page.evaluate(`sessionStorage.getItem('its.token')`)).toBe(both);

    await page.getByLabel('Organization').selectOption(second!);
    await page.waitForURL((url) => url.hash === `#/orgs/${second}/incidents`);
    await page.getByText('MEMBER', { exact: true }).waitFor();

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to ITS' }).waitFor();
    await page.getByText('You signed out.').waitFor();
    expect(await page.evaluate('sessionStorage.length')).toBe(0);
    await page.reload();
    await page.getByRole('heading', { name: 'Sign in to ITS' }).waitFor();
    expect(problems).toEqual([]);
  });

  it('runs an incident from declaration to resolution, live in the war room and in the list', async () => {
    const org = freshOrg('ui');
    const lead = token(org, ['SRE_LEAD']);
    const list = await openTab(chromium.context);
    await signInByPaste(list.page, server.origin, lead);
    await list.page.getByRole('heading', { level: 1, name: 'Incidents' }).waitFor();
    await list.page.getByText('Live', { exact: true }).waitFor();
    await list.page.evaluate(`window.notReloaded = true`);

    const { page, problems } = await openTab(chromium.context);
    await signInByPaste(page, server.origin, lead);
    await page
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'Declare incident' })
      .click();
    expect(await unnamedControls(page)).toEqual([]);
    await page.getByLabel('Title').fill('Checkout latency above SLO');
    await page.getByLabel('Service').fill('checkout');
    await page.getByLabel('Severity').selectOption('SEV2');
    await page.getByLabel('Environment').fill('production');
    await page.getByLabel('Project').fill('payments');
    await page.getByLabel('Description').fill('p99 of /pay above 2 s since 10:02');
    await page.getByLabel('Tags').fill('latency');
    await page.getByRole('button', { name: 'Declare incident' }).click();
    await page.getByRole('heading', { level: 1, name: 'Checkout latency above SLO' }).waitFor();
    const incidentId = incidentIdOf(page);
    expect(incidentId).not.toBe('');

    // The list tab shows the new incident without a reload; this tab finds it in its own list and opens it.
    const listRow = list.page.getByRole('row').filter({ hasText: 'Checkout latency above SLO' });
    await listRow.filter({ hasText: 'Open' }).waitFor();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Incidents' }).click();
    await page.getByRole('link', { name: 'Checkout latency above SLO' }).click();
    await page.getByRole('heading', { level: 1, name: 'Checkout latency above SLO' }).waitFor();
    await shows(page, 'status', 'Open');
    await page.getByText('Live', { exact: true }).waitFor();
    await page.evaluate(`window.notReloaded = true`);
    expect(await unnamedControls(page)).toEqual([]);

    // Keyboard only: Tab reaches the move, its focus ring shows, Enter makes it.
    const ring = await tabTo(page, 'Acknowledge');
    expect(ring).toEqual({ outlineStyle: 'solid', outlineWidth: '3px' });
    await page.keyboard.press('Enter');
    await shows(page, 'status', 'Investigating');
    await timelineEntry(page, 'Status OPEN → INVESTIGATING').waitFor();
    expect(await page.getByRole('button', { name: 'Acknowledge' }).count()).toBe(0);
    await page.getByRole('button', { name: 'Mitigate' }).waitFor();

    await page.getByLabel('Note', { exact: true }).fill('Rolled back 4.2.1');
    await page.getByRole('button', { name: 'Add note' }).click();
    await timelineEntry(page, 'Rolled back 4.2.1').filter({ hasText: 'by lena' }).waitFor();
    expect(await page.getByLabel('Note', { exact: true }).inputValue()).toBe('');

    // A signal posted by another tool appears in the open war room, and its labels show on demand.
    const posted = await call(lead, 'POST', `/api/orgs/${org}/incidents/${incidentId}/signals`, {
      signalType: 'ALERT',
      source: 'prometheus',
      summary: 'p99 above 2 s on /pay',
      data: {
        labels: { alertname: 'CheckoutLatency', service: 'checkout' },
        annotations: { runbook: 'rb/7' },
      },
    });
    expect(posted.status).toBe(200);
    await timelineEntry(page, 'p99 above 2 s on /pay').waitFor();
    const labels = page.getByRole('button', { name: 'Show labels of p99 above 2 s on /pay' });
    expect(await labels.getAttribute('aria-expanded')).toBe('false');
    await labels.click();
    await timelineEntry(page, 'p99 above 2 s on /pay').getByText('CheckoutLatency').waitFor();
    expect(
      await page
        .getByRole('button', { name: 'Hide labels of p99 above 2 s on /pay' })
        .getAttribute('aria-expanded'),
    ).toBe('true');
    await page.getByRole('region', { name: 'Primary signal' }).getByText('p99 above 2 s on /pay').waitFor();

    await page.getByLabel('New severity').selectOption('SEV1');
    await page.getByRole('button', { name: 'Change severity' }).click();
    await shows(page, 'severity', 'SEV1');
    await timelineEntry(page, 'Severity SEV2 → SEV1').waitFor();

    await page.getByLabel('New tag').fill('db');
    await page.getByRole('button', { name: 'Add tag' }).click();
    await page.getByRole('button', { name: 'Remove tag db' }).waitFor();
    await page.getByRole('button', { name: 'Remove tag latency' }).click();
    await page.getByRole('button', { name: 'Remove tag latency' }).waitFor({ state: 'detached' });

    // An error shows the API's detail, and changes nothing.
    await page.getByLabel('New tag').fill('Not A Tag');
    await page.getByRole('button', { name: 'Add tag' }).click();
    await page.getByRole('alert').filter({ hasText: 'must match' }).waitFor();

    await page.getByLabel('Ticket key').fill('OPS-12');
    await page.getByLabel('Ticket URL (optional)').fill('https://jira.example.com/browse/OPS-12');
    await page.getByRole('button', { name: 'Link ticket' }).click();
    const ticket = page.getByRole('list', { name: 'Tickets' }).getByRole('link', { name: 'JIRA OPS-12' });
    expect(await ticket.getAttribute('href')).toBe('https://jira.example.com/browse/OPS-12');

    await page.getByRole('button', { name: 'Resolve' }).click();
    await shows(page, 'status', 'Resolved');
    await page.getByRole('button', { name: 'Reopen' }).waitFor();
    expect(
      await page.getByRole('group', { name: 'Status moves' }).getByRole('button').allTextContents(),
    ).toEqual(['Reopen']);
    await page.getByRole('region', { name: 'Times' }).getByText('Lasted').waitFor();
    expect(await page.evaluate('window.notReloaded')).toBe(true);
    await page.screenshot({ path: path.join(ARTIFACTS, 'war-room.png'), fullPage: true });

    // The list followed every change in place, without a reload.
    await listRow
      .filter({ hasText: 'Resolved' })
      .filter({ hasText: 'SEV1' })
      .filter({ hasText: 'db' })
      .waitFor();
    expect(await list.page.evaluate('window.notReloaded')).toBe(true);
    expect(await unnamedControls(list.page)).toEqual([]);
    await list.page.screenshot({ path: path.join(ARTIFACTS, 'incident-list.png'), fullPage: true });
    expect([...problems, ...list.problems]).toEqual([]);
  });

  it('keeps the filters in the URL, so a view can be shared, and pages by cursor', async () => {
    const org = freshOrg('ui');
    const lead = token(org, ['SRE_LEAD']);
    for (let i = 1; i <= 22; i += 1)
      await call(
        lead,
        'POST',
        `/api/orgs/${org}/incidents`,
        incidentBody(`Search slow ${i}`, { serviceName: 'search', severity: 'SEV3' }),
        {
          prefer: 'respond-async',
        },
      );
    for (let i = 1; i <= 3; i += 1)
      await declare(lead, org, `Checkout down ${i}`, { severity: 'SEV1', tags: ['pay'] });

    const { page, problems } = await openTab(chromium.context);
    await signInByPaste(page, server.origin, lead);
    const rows = page.getByRole('table', { name: 'Incidents' }).locator('tbody tr');
    await rows.nth(19).waitFor();
    expect(await rows.count()).toBe(20);

    await page.getByRole('checkbox', { name: 'SEV1' }).check();
    await page.waitForURL(/severity=SEV1/);
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(3);
    await page.getByLabel('Title contains').fill('down 2');
    await page.getByLabel('Title contains').press('Enter');
    await page.waitForURL(/q=down\+2/);
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(1);
    await rows.filter({ hasText: 'Checkout down 2' }).waitFor();

    // Someone else opens the same address, signs in, and sees the same view.
    const shared = page.url().slice(server.origin.length);
    const other = await openTab(chromium.context);
    await signInByPaste(other.page, server.origin, lead, shared);
    await other.page.getByRole('row').filter({ hasText: 'Checkout down 2' }).waitFor();
    expect(await other.page.getByRole('checkbox', { name: 'SEV1' }).isChecked()).toBe(true);
    expect(await other.page.getByLabel('Title contains').inputValue()).toBe('down 2');
    expect(await other.page.locator('table.incidents tbody tr').count()).toBe(1);

    await page.getByRole('button', { name: 'Clear filters' }).click();
    await page.getByLabel('Service').fill('search');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.waitForURL(/serviceName=search/);
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(20);
    await page.getByRole('link', { name: 'Next page' }).click();
    await page.waitForURL(/cursor=/);
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(2);
    await rows.filter({ hasText: 'Search slow 1' }).waitFor(); // the oldest come last
    expect(await page.getByRole('link', { name: 'Next page' }).count()).toBe(0);
    await page.getByRole('link', { name: 'First page' }).click();
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(20);
    await rows.first().filter({ hasText: 'Search slow 22' }).waitFor();
    expect([...problems, ...other.problems]).toEqual([]);
  });

  it('shows a MEMBER no status or severity controls, and an AUDITOR no write controls but the raw events', async () => {
    const org = freshOrg('ui');
    const lead = token(org, ['SRE_LEAD']);
    const id = await declare(lead, org, 'Queue backlog');
    await call(lead, 'POST', `/api/orgs/${org}/incidents/${id}/signals`, {
      signalType: 'METRIC',
      source: 'grafana',
      summary: 'queue depth 12k',
      data: { depth: 12000 },
    });

    const member = await openTab(chromium.context);
    await signInByPaste(
      member.page,
      server.origin,
      token(org, ['MEMBER'], 'max', 'Max Member'),
      `/#/orgs/${org}/incidents/${id}`,
    );
    await member.page.getByRole('heading', { level: 1, name: 'Queue backlog' }).waitFor();
    await timelineEntry(member.page, 'queue depth 12k').waitFor();
    expect(await member.page.getByRole('group', { name: 'Status moves' }).count()).toBe(0);
    for (const name of ['Acknowledge', 'Mitigate', 'Resolve', 'Cancel incident', 'Change severity'])
      expect(await member.page.getByRole('button', { name }).count(), name).toBe(0);
    expect(await member.page.getByRole('link', { name: 'Raw events (audit)' }).count()).toBe(0);
    // What a MEMBER may do is there, and works.
    await member.page.getByLabel('Note', { exact: true }).fill('customer reports from EU');
    await member.page.getByRole('button', { name: 'Add note' }).click();
    await timelineEntry(member.page, 'customer reports from EU').filter({ hasText: 'by max' }).waitFor();

    const auditor = await openTab(chromium.context);
    await signInByPaste(
      auditor.page,
      server.origin,
      token(org, ['AUDITOR'], 'ada', 'Ada Auditor'),
      `/#/orgs/${org}/incidents/${id}`,
    );
    await auditor.page.getByRole('heading', { level: 1, name: 'Queue backlog' }).waitFor();
    await timelineEntry(auditor.page, 'customer reports from EU').waitFor();
    const buttons = await auditor.page.getByRole('button').allTextContents();
    expect(buttons.sort()).toEqual(['Show data', 'Sign out']);
    expect(await auditor.page.getByRole('textbox').count()).toBe(0);
    expect(await auditor.page.getByRole('combobox').count()).toBe(0);
    expect(await auditor.page.getByRole('link', { name: 'Declare incident' }).count()).toBe(0);

    await auditor.page.getByRole('link', { name: 'Raw events (audit)' }).click();
    await auditor.page.getByRole('heading', { level: 1, name: 'Raw events' }).waitFor();
    const events = auditor.page.getByRole('table', { name: `Events of incident ${id}` });
    const rows = events.locator('tbody tr');
    await rows.nth(2).waitFor();
    expect(await rows.count()).toBe(3);
    const first = rows.first();
    expect(await first.getByRole('rowheader').textContent()).toBe('0');
    await first.getByText('INCIDENT_CREATED').waitFor();
    await first.getByText(/"correlationId"/).waitFor();
    await first.getByText(/"actor"/).waitFor();
    await rows.nth(2).getByText('INCIDENT_NOTE_ADDED').waitFor();
    await rows.nth(2).getByText('"ref": "max"').waitFor();
    expect(await unnamedControls(auditor.page)).toEqual([]);
    await auditor.page.screenshot({ path: path.join(ARTIFACTS, 'audit.png'), fullPage: true });
    expect([...member.problems, ...auditor.problems]).toEqual([]);
  });

  it('reloads a war room whose write lost a race (412) and says so', async () => {
    const org = freshOrg('ui');
    const lead = token(org, ['SRE_LEAD']);
    const id = await declare(lead, org, 'Stale view');

    const { page, problems } = await openTab(chromium.context);
    // Without its live stream the page cannot learn of the other write, so its next write is stale.
    await page.route(
      (url) => url.pathname.endsWith('/stream'),
      (route) => route.abort(),
    );
    await signInByPaste(page, server.origin, lead, `/#/orgs/${org}/incidents/${id}`);
    await shows(page, 'status', 'Open');

    const elsewhere = await call(lead, 'POST', `/api/orgs/${org}/incidents/${id}/status`, {
      newStatus: 'INVESTIGATING',
    });
    expect(elsewhere.status).toBe(200);
    await page.getByRole('button', { name: 'Resolve' }).click();
    await page
      .getByRole('status')
      .filter({ hasText: 'This incident changed before your change reached it, so nothing was changed.' })
      .filter({ hasText: 'now version 1' })
      .waitFor();
    await shows(page, 'status', 'Investigating');
    const details = await call<{ incident: { status: string } }>(
      lead,
      'GET',
      `/api/orgs/${org}/incidents/${id}`,
    );
    expect(details.body.incident.status).toBe('INVESTIGATING');

    // Now the page acts on the current version.
    await page.getByRole('button', { name: 'Resolve' }).click();
    await shows(page, 'status', 'Resolved');
    expect(problems).toEqual([]);
  });

  it('charts and tabulates response times by service and by severity', async () => {
    const org = freshOrg('ui');
    const lead = token(org, ['SRE_LEAD']);
    const move = (id: string, newStatus: string) =>
      call(lead, 'POST', `/api/orgs/${org}/incidents/${id}/status`, { newStatus });
    const a = await declare(lead, org, 'Checkout down', { severity: 'SEV1' });
    const b = await declare(lead, org, 'Checkout slow', { severity: 'SEV2' });
    const c = await declare(lead, org, 'Search flaky', { serviceName: 'search', severity: 'SEV3' });
    await move(a, 'INVESTIGATING');
    await move(a, 'RESOLVED');
    await move(b, 'INVESTIGATING');
    await move(c, 'CANCELLED');

    const { page, problems } = await openTab(chromium.context);
    await signInByPaste(page, server.origin, lead);
    await page
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'Response times' })
      .click();
    await page.getByRole('heading', { level: 1, name: 'Response times' }).waitFor();
    const table = page.getByRole('table', { name: 'Response times by service' });
    const checkout = table
      .getByRole('row')
      .filter({ has: page.getByRole('rowheader', { name: 'checkout' }) });
    await checkout.waitFor();
    // incidents, acknowledged, resolved, cancelled
    expect((await checkout.getByRole('cell').allTextContents()).slice(0, 4)).toEqual(['2', '2', '1', '0']);
    const search = table.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'search' }) });
    expect((await search.getByRole('cell').allTextContents()).slice(0, 4)).toEqual(['0', '0', '0', '1']);
    await page.getByRole('img', { name: /Mean time to acknowledge and to resolve by service/ }).waitFor();

    await page.getByLabel('Group by').selectOption('severity');
    await page.getByRole('button', { name: 'Show response times' }).click();
    await page.waitForURL(/groupBy=severity/);
    const bySeverity = page.getByRole('table', { name: 'Response times by severity' });
    await bySeverity.waitFor();
    expect(await bySeverity.getByRole('rowheader').allTextContents()).toEqual(['SEV1', 'SEV2', 'SEV3']);
    await page.getByRole('img', { name: /by severity/ }).waitFor();
    expect(await unnamedControls(page)).toEqual([]);
    await page.screenshot({ path: path.join(ARTIFACTS, 'response-times.png'), fullPage: true });
    expect(problems).toEqual([]);
  });

  it('keeps the API docs working beside the stricter page', async () => {
    const { page, problems } = await openTab(chromium.context);
    await page.goto(`${server.origin}/docs/`);
    await page.getByText('ITS: Incident & Timeline Service').first().waitFor();
    await page.getByText('List incidents').first().waitFor();
    // swagger-ui's own inline styles are refused by helmet's policy as they were before the page existed.
    expect(problems.filter((problem) => !/inline style|style-src-elem inline/.test(problem))).toEqual([]);
  });
});
