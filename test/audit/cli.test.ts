import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runAuditVerifyCommand } from '../../src/audit/cli.ts';
import { incidentStreamName } from '../../src/domain/streams.ts';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import { databaseLabel } from '../support/database.ts';
import { validIncident } from '../http/support.ts';
import { output } from '../support/output.ts';

describe(`its audit verify on ${databaseLabel}`, () => {
  let t: TestApp;
  let org: string;
  let ids: string[];

  beforeAll(async () => {
    t = await startTestApp();
    org = freshOrg('cli');
    const token = t.token({ orgs: { [org]: ['ORG_ADMIN'] } });
    ids = [];
    for (let i = 0; i < 4; i++) {
      const created = await t.request({
        method: 'POST',
        url: `/api/orgs/${org}/incidents`,
        payload: validIncident,
        token,
      });
      const { incidentId } = created.json<{ incidentId: string }>();
      for (const tag of ['db', 'api', 'edge']) {
        const tagged = await t.request({
          method: 'POST',
          url: `/api/orgs/${org}/incidents/${incidentId}/tags`,
          payload: { tag },
          token,
        });
        expect(tagged.statusCode).toBe(200);
      }
      ids.push(incidentId);
    }
  });
  afterAll(async () => {
    await t?.cleanup();
  });
  afterEach(() => {
    process.exitCode = undefined;
  });

  const verdicts = (stdout: string) =>
    stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { streamName: string; valid: boolean });

  it('verifies every stream of the org in one pass and agrees with the route', async () => {
    const { stdout, stderr } = await output(() => runAuditVerifyCommand(t.runtime, org, [], { json: true }));
    expect(process.exitCode).toBeUndefined();
    expect(stderr).toBe(
      '4 streams, 16 events (0 unchained), 0 read-model mismatches: every chain is intact\n',
    );
    const token = t.token({ orgs: { [org]: ['AUDITOR'] } });
    const fromRoute = await Promise.all(
      ids.map(async (id) =>
        (await t.request({ method: 'GET', url: `/api/orgs/${org}/incidents/${id}/verify`, token })).json(),
      ),
    );
    expect(verdicts(stdout)).toEqual(fromRoute);
  });

  it('exits 1 naming the first broken stream, and lists every broken one', async () => {
    const [first, second] = [incidentStreamName(org, ids[1]!), incidentStreamName(org, ids[3]!)];
    const db = t.database.database.db;
    await db.deleteFrom('its_events').where('stream_name', '=', first).where('version', '=', '2').execute();
    await db
      .updateTable('its_events')
      .set({ type: 'INCIDENT_TAG_REMOVED' })
      .where('stream_name', '=', second)
      .where('version', '=', '1')
      .execute();
    const { stdout, stderr } = await output(() => runAuditVerifyCommand(t.runtime, org, []));
    expect(process.exitCode).toBe(1);
    expect(stdout).toContain(
      `BROKEN    ${first} at version 2: version 2 is missing: the next event is version 3\n`,
    );
    expect(stdout).toContain(`BROKEN    ${second} at version 1: the stored hash does not match the event`);
    expect(stderr).toMatch(new RegExp(`2 broken; the first is ${first.replace('.', '\\.')} at version 2`));
  });

  it('checks only the named incidents, and exits 1 for one it does not know', async () => {
    const intact = await output(() => runAuditVerifyCommand(t.runtime, org, [ids[0]!, ids[2]!]));
    expect(process.exitCode).toBeUndefined();
    expect(intact.stderr).toMatch(/^2 streams, 8 events .*every chain is intact\n$/);
    process.exitCode = undefined;
    const unknown = await output(() => runAuditVerifyCommand(t.runtime, org, ['inc_unknown']));
    expect(process.exitCode).toBe(1);
    expect(unknown.stderr).toContain('incident inc_unknown not found');
  });

  it.skipIf(!process.env.DATABASE_URL)(
    'runs as `its audit verify` in a process of its own (needs a server: PGlite is one process’s)',
    async () => {
      const run = promisify(execFile);
      const env = { ...process.env, DATABASE_URL: t.database.url!, LOG_LEVEL: 'silent', NODE_ENV: 'test' };
      const failed = await run('node', ['bin/its.js', 'audit', 'verify', org], { env }).catch(
        (error: { code: number; stdout: string; stderr: string }) => error,
      );
      expect('code' in failed && failed.code).toBe(1);
      expect(failed.stdout).toContain(`BROKEN    ${incidentStreamName(org, ids[1]!)} at version 2`);
      const intact = await run('node', ['bin/its.js', 'audit', 'verify', org, ids[0]!], { env });
      expect(intact.stderr).toMatch(/^1 stream, 4 events .*every chain is intact\n$/);
    },
  );
});
