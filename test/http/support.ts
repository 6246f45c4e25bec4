import type { LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';

/** Asserts an RFC 9457 problem with the given status and code; returns its body. */
export function expectProblem(response: LightMyRequestResponse, status: number, code: string) {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = response.json<{
    type: string;
    title: string;
    status: number;
    code: string;
    detail: string;
    errors?: { path: string; message: string }[];
  }>();
  expect(body).toMatchObject({
    status,
    code,
    type: expect.any(String),
    title: expect.any(String),
    detail: expect.any(String),
  });
  expect(response.body).not.toMatch(/\n\s+at /); // never a stack trace
  return body;
}

export const validIncident = {
  projectId: 'payments',
  title: 'Checkout latency above SLO',
  serviceName: 'checkout',
  severity: 'SEV2',
  environment: 'production',
};

export const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** A test app, a fresh org with an ORG_ADMIN token, and one incident created in it from `payload`. */
export async function startWithIncident(
  payload: Record<string, unknown> = validIncident,
): Promise<{ t: TestApp; org: string; token: string; incident: string }> {
  const t = await startTestApp();
  const org = freshOrg();
  const token = t.token({ orgs: { [org]: ['ORG_ADMIN'] } });
  const created = await t.request({ method: 'POST', url: `/api/orgs/${org}/incidents`, token, payload });
  return { t, org, token, incident: created.json<{ incidentId: string }>().incidentId };
}
