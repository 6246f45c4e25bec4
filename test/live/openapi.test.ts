import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.ts';

interface Operation {
  responses: Record<string, { content?: Record<string, unknown> }>;
  parameters?: { name: string; in: string }[];
}

describe('OpenAPI document of the live streams, timeline and statistics', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ workers: false });
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  it('documents the three streams as text/event-stream, with their resume parameters, and the JSON routes', async () => {
    const document = (await t.request({ method: 'GET', url: '/openapi.json' })).json<{
      paths: Record<string, { get: Operation }>;
    }>();
    for (const path of [
      '/api/orgs/{orgId}/incidents/{incidentId}/stream',
      '/api/orgs/{orgId}/incidents/stream',
      '/api/orgs/{orgId}/events/stream',
    ]) {
      const operation = document.paths[path]!.get;
      expect(Object.keys(operation.responses['200']!.content!)).toEqual(['text/event-stream']);
      const parameters = operation.parameters!.map((p) => `${p.in}:${p.name}`);
      expect(parameters).toEqual(expect.arrayContaining(['header:last-event-id', 'query:fromPosition']));
      expect(Object.keys(operation.responses)).toEqual(expect.arrayContaining(['401', '403', '429']));
    }
    expect(
      document.paths['/api/orgs/{orgId}/incidents/{incidentId}/stream']!.get.parameters!.map((p) => p.name),
    ).toContain('fromVersion');
    expect(
      document.paths['/api/orgs/{orgId}/incidents/stream']!.get.parameters!.map((p) => p.name),
    ).toContain('type');
    for (const path of [
      '/api/orgs/{orgId}/incidents/{incidentId}/timeline',
      '/api/orgs/{orgId}/stats/response-times',
    ])
      expect(Object.keys(document.paths[path]!.get.responses['200']!.content!)).toEqual(['application/json']);
  });
});
