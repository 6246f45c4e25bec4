import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { incidentStreamName } from '../../src/domain/streams.ts';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import { databaseLabel } from '../support/database.ts';
import { TAMPER_CASES, incidentOfFiveEvents } from './tamper-cases.ts';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');

/** The README's standalone script, exactly as printed: the fenced block that starts with its name. */
async function readmeScript(): Promise<string> {
  const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
  const block = /```js\n(\/\/ verify-chain\.mjs[\s\S]*?)```/.exec(readme);
  if (!block) throw new Error('README.md has no verify-chain.mjs block');
  return block[1]!;
}

describe(`the README's offline verification script on ${databaseLabel}`, () => {
  let t: TestApp;
  let org: string;
  let token: string;
  let folder: string;

  beforeAll(async () => {
    t = await startTestApp();
    org = freshOrg('readme');
    token = t.token({ orgs: { [org]: ['AUDITOR', 'ORG_ADMIN'] } });
    // An auditor's folder: the script and one JCS package, nothing of ITS.
    folder = await mkdtemp(path.join(tmpdir(), 'its-audit-'));
    await writeFile(path.join(folder, 'verify-chain.mjs'), await readmeScript());
    await mkdir(path.join(folder, 'node_modules'));
    await symlink(
      path.join(ROOT, 'node_modules/canonicalize'),
      path.join(folder, 'node_modules/canonicalize'),
    );
  });
  afterAll(async () => {
    await t?.cleanup();
    if (folder) await rm(folder, { recursive: true, force: true });
  });

  /** Saves the stream as the README says: every page of GET …/events, one body per line. */
  async function exportStream(incidentId: string): Promise<string> {
    const lines: string[] = [];
    for (let from: number | null = 0; from !== null;) {
      const response = await t.request({
        method: 'GET',
        url: `/api/orgs/${org}/incidents/${incidentId}/events?fromVersion=${from}&limit=2`,
        token,
      });
      expect(response.statusCode).toBe(200);
      lines.push(response.body);
      from = response.json<{ nextFromVersion: number | null }>().nextFromVersion;
    }
    const file = path.join(folder, `${incidentId}.jsonl`);
    await writeFile(file, `${lines.join('\n')}\n`);
    return file;
  }

  async function script(file: string, expectedHead: number | null) {
    const args = ['verify-chain.mjs', file, ...(expectedHead === null ? [] : [String(expectedHead)])];
    const outcome = await run('node', args, { cwd: folder }).then(
      (done) => ({ ...done, code: 0 }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(outcome.stderr).toBe('');
    return { code: outcome.code, verdict: JSON.parse(outcome.stdout) as Record<string, unknown> };
  }

  const cases = [{ name: 'nothing changed', inPostgres: async () => {} }, ...TAMPER_CASES];
  for (const tamper of cases) {
    it(`agrees with the route on an exported stream: ${tamper.name}`, async () => {
      const incidentId = await incidentOfFiveEvents(t, org, token);
      await tamper.inPostgres(t.database.database.db, incidentStreamName(org, incidentId));
      const route = await t.request({
        method: 'GET',
        url: `/api/orgs/${org}/incidents/${incidentId}/verify`,
        token,
      });
      const {
        streamName: _name,
        readModel,
        reason,
        ...expected
      } = route.json<{
        streamName: string;
        readModel: { version: number };
        reason: string | null;
        valid: boolean;
      }>();
      // The head an auditor noted before (here the read model's): it catches a deleted tail.
      const { code, verdict } = await script(await exportStream(incidentId), readModel.version);
      expect(verdict).toEqual({ ...expected, reason: reason === null ? null : expect.any(String) });
      expect(code).toBe(expected.valid ? 0 : 1);
      if (tamper.name !== 'nothing changed') expect(expected.valid).toBe(false);
    });
  }
});
