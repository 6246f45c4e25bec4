import type { LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';

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
