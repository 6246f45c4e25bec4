import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/app.ts';
import { expectProblem, startWithIncident } from './support.ts';

describe('If-Match per RFC 9110', () => {
  let t: TestApp, org: string, token: string, incident: string;
  beforeAll(async () => {
    ({ t, org, token, incident } = await startWithIncident());
  });
  afterAll(() => t?.cleanup());

  let title = 0;
  const patch = (ifMatch: string, id = incident) =>
    t.request({
      method: 'PATCH',
      url: `/api/orgs/${org}/incidents/${id}`,
      token,
      headers: { 'if-match': ifMatch },
      payload: { title: `Title ${++title}` },
    });
  const version = async () =>
    (await t.request({ method: 'GET', url: `/api/orgs/${org}/incidents/${incident}`, token })).json<{
      incident: { version: number };
    }>().incident.version;

  it('matches any existing incident with *, and answers 404 for one that does not exist', async () => {
    const before = await version();
    expect((await patch('*')).statusCode).toBe(200);
    expect(await version()).toBe(before + 1);
    expectProblem(await patch('*', 'inc_00000000000000000000000000000000'), 404, 'NOT_FOUND');
  });

  it('matches a list when any member is the current version', async () => {
    const current = await version();
    const response = await patch(`"${current + 5}", "${current}" , "${current + 9}"`);
    expect(response.statusCode).toBe(200);
    expectProblem(await patch(`"${current + 5}", "${current + 9}"`), 412, 'VERSION_CONFLICT');
  });

  it('never matches a weak tag, nor a well-formed tag this API did not issue: 412', async () => {
    const current = await version();
    expectProblem(await patch(`W/"${current}"`), 412, 'VERSION_CONFLICT');
    expectProblem(await patch(`"abc"`), 412, 'VERSION_CONFLICT');
    expect(await version()).toBe(current);
  });

  it('refuses a malformed value with 400', async () => {
    for (const value of ['yesterday', '"3', '3"', '"1",', 'W/3', '"a"b"']) {
      const problem = expectProblem(await patch(value), 400, 'VALIDATION_FAILED');
      expect(
        problem.errors?.map((error) => error.path),
        value,
      ).toContain('if-match');
    }
  });
});
