import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseLabel, openTestDatabase, type TestDatabase } from '../support/database.ts';
import { SKIP_REASON, chromiumAvailable, launchChromium, openTab, type Chromium } from './support.ts';

if (!chromiumAvailable) console.warn(SKIP_REASON);

const ROOT = path.resolve(import.meta.dirname, '../..');

/** What `npm start` runs, with no JWT_SECRET, on a port of its own; resolves with the link it prints. */
function startServe(env: Record<string, string>): {
  child: ChildProcess;
  link: Promise<string>;
  output: () => string;
} {
  const child = spawn(process.execPath, ['bin/its.js', 'serve'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const link = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no war-room link printed:\n${output}`)), 90_000);
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /The war room:\s+(http\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout!.on('data', read);
    child.stderr!.on('data', read);
    child.on('exit', (code) => reject(new Error(`its serve exited (${code}):\n${output}`)));
  });
  return { child, link, output: () => output };
}

describe.skipIf(!chromiumAvailable)(`the development link npm start prints, on ${databaseLabel}`, () => {
  let dataDir: string;
  let database: TestDatabase | undefined;
  let serve: ReturnType<typeof startServe>;
  let chromium: Chromium;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'its-dev-link-'));
    database = process.env.DATABASE_URL ? await openTestDatabase({ migrate: false }) : undefined;
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(process.env))
      if (value !== undefined && !/^(JWT_|DATABASE_URL|EVENTSTORE_URL|CURSOR_SECRET|PORT|HOST)/.test(name))
        env[name] = value;
    serve = startServe({
      ...env,
      NODE_ENV: 'development',
      HOST: '127.0.0.1',
      PORT: '0',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'info',
      ...(database?.url ? { DATABASE_URL: database.url } : {}),
    });
    chromium = await launchChromium();
  });
  afterAll(async () => {
    await chromium?.close();
    if (serve?.child.exitCode === null) {
      const exited = new Promise((resolve) => serve.child.once('exit', resolve));
      serve.child.kill('SIGTERM');
      await exited;
    }
    await database?.cleanup();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('signs the browser in from the URL fragment, which never reaches the server', async () => {
    const link = await serve.link;
    expect(link).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/#token=[\w-]+\.[\w-]+\.[\w-]+$/);
    const token = link.split('#token=')[1]!;

    const { page, problems } = await openTab(chromium.context);
    await page.goto(link);
    await page.getByRole('heading', { level: 1, name: 'Incidents' }).waitFor();
    expect(await page.getByTestId('who').textContent()).toBe('Developer (developer)');
    await page.getByText('ORG_ADMIN', { exact: true }).waitFor();
    expect(page.url()).not.toContain('token');
    expect(new URL(page.url()).hash).toBe('#/orgs/acme/incidents');
    expect(await page.evaluate(`sessionStorage.getItem('its.token')`)).toBe(token);
    // The server logged the page's requests, and never the token.
    expect(serve.output()).toContain('/api/orgs/acme/incidents');
    expect(serve.output().split(link)[1]).not.toContain(token);
    expect(problems).toEqual([]);
  });
});
