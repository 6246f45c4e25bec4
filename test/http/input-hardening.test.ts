import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/app.ts';
import { startWithIncident } from './support.ts';

const linksIncident = {
  projectId: 'p',
  title: 'links',
  serviceName: 's',
  severity: 'SEV3',
  environment: 'prod',
};

describe('inputs that would be stored and later bite', () => {
  let t: TestApp, org: string, token: string, incident: string;
  beforeAll(async () => {
    ({ t, org, token, incident } = await startWithIncident(linksIncident));
  });
  afterAll(() => t?.cleanup());

  it('refuses ticket links that are not http(s), so no javascript: URL is ever served back', async () => {
    for (const url of ['javascript:alert(1)', 'file:///etc/passwd', 'data:text/html,<script>1</script>']) {
      const response = await t.request({
        method: 'POST',
        url: `/api/orgs/${org}/incidents/${incident}/tickets`,
        token,
        payload: { system: 'JIRA', key: 'OPS-1', url },
      });
      expect(response.statusCode, url).toBe(400);
      expect(response.json().code).toBe('VALIDATION_FAILED');
    }
    const ok = await t.request({
      method: 'POST',
      url: `/api/orgs/${org}/incidents/${incident}/tickets`,
      token,
      payload: { system: 'JIRA', key: 'OPS-1', url: 'https://jira.example.com/browse/OPS-1' },
    });
    expect(ok.statusCode).toBe(200);
  });

  it('refuses an Idempotency-Key with control characters as a 400, not a 500', async () => {
    const response = await t.request({
      method: 'POST',
      url: `/api/orgs/${org}/incidents/${incident}/tags`,
      token,
      headers: { 'idempotency-key': 'a\u0000b' },
      payload: { tag: 'db' },
    });
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  });
});
