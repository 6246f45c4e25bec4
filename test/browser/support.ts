import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startTestApp, type StartTestAppOptions, type TestApp } from '../support/app.ts';

/** Debian's Chromium; the browser tests never download one. */
export const CHROMIUM_PATH = '/usr/bin/chromium';
export const chromiumAvailable = existsSync(CHROMIUM_PATH);
export const SKIP_REASON = `browser tests skipped: ${CHROMIUM_PATH} is absent (apt-get install chromium)`;

/** Where screenshots go (git-ignored). */
export const ARTIFACTS = path.resolve(import.meta.dirname, '../artifacts');

export interface BrowserServer extends TestApp {
  /** `http://127.0.0.1:<port>` of a real socket. */
  origin: string;
}

/** The whole of ITS listening on 127.0.0.1 on a free port, over a scratch database. */
export async function startBrowserServer(options: StartTestAppOptions = {}): Promise<BrowserServer> {
  const test = await startTestApp(options);
  try {
    await test.app.listen({ host: '127.0.0.1', port: 0 });
  } catch (error) {
    await test.cleanup();
    throw error;
  }
  const { port } = test.app.server.address() as AddressInfo;
  return { ...test, origin: `http://127.0.0.1:${port}` };
}

export interface Chromium {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Headless Chromium with a fresh profile that talks to nothing but the pages it is sent to. */
export async function launchChromium(): Promise<Chromium> {
  const userDataDir = await mkdtemp(path.join(tmpdir(), 'its-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-dev-shm-usage',
    ],
    viewport: { width: 1360, height: 900 },
    colorScheme: 'dark',
    reducedMotion: 'reduce',
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A new tab that records what the page reports as broken (uncaught errors, CSP violations, console
 * errors), so a test can assert that none happened.
 */
export async function openTab(context: BrowserContext): Promise<{ page: Page; problems: string[] }> {
  const page = await context.newPage();
  const problems: string[] = [];
  // Injected by the browser, not the page, so the page's CSP does not apply to it.
  await page.addInitScript(
    `document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));`,
  );
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    // Chromium logs every 4xx answer; the tests provoke some on purpose and check what the page shows.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource'))
      problems.push(`console: ${message.text()}`);
  });
  return { page, problems };
}

/** Signs in a tab by pasting a token, the way a person would (at `path`, default `/`). */
export async function signInByPaste(page: Page, origin: string, token: string, path = '/'): Promise<void> {
  await page.goto(`${origin}${path}`);
  await page.getByLabel('Token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

/** A client of the API over the real socket, as another tool or person would call it. */
export function apiClient(origin: string) {
  return async function call<T = Record<string, unknown>>(
    token: string,
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: T }> {
    const response = await fetch(`${origin}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
  };
}

/**
 * The controls on the page that have no accessible name (a label, aria-label(ledby), or text),
 * described by tag and outerHTML start; the tests expect none.
 */
export async function unnamedControls(page: Page): Promise<string[]> {
  return (await page.evaluate(`[...document.querySelectorAll('a[href], button, input, select, textarea, [role="img"]')]
    .filter((element) => !element.closest('[hidden]'))
    .filter((element) => {
      const named = (element.getAttribute('aria-label') ?? '').trim() || element.getAttribute('aria-labelledby');
      if (named) return false;
      if (element.matches('input, select, textarea')) return !(element.labels && element.labels.length > 0);
      return element.textContent.trim() === '';
    })
    .map((element) => element.outerHTML.slice(0, 120))`)) as string[];
}

/** Presses Tab until `name` has the focus (at most `limit` times); returns how the focus is drawn. */
export async function tabTo(
  page: Page,
  name: string,
  limit = 60,
): Promise<{ outlineStyle: string; outlineWidth: string }> {
  for (let step = 0; step < limit; step += 1) {
    await page.keyboard.press('Tab');
    const focused = (await page.evaluate(`document.activeElement?.textContent?.trim() ?? ''`)) as string;
    if (focused === name)
      return (await page.evaluate(
        `(() => { const style = getComputedStyle(document.activeElement); return { outlineStyle: style.outlineStyle, outlineWidth: style.outlineWidth }; })()`,
      )) as { outlineStyle: string; outlineWidth: string };
  }
  throw new Error(`${name} was not reached with ${limit} presses of Tab`);
}
