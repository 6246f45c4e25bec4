import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import openapiTS, { astToString, type OpenAPI3 } from 'openapi-typescript';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultOperationId } from '../../src/http/openapi.ts';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';

/** Where the generated client lives for the test: under test/artifacts (ignored), so it resolves node_modules. */
const dir = path.resolve(import.meta.dirname, '../artifacts', `openapi-client-${randomUUID().slice(0, 8)}`);

/** A program written against the generated types: create → status → note → details. */
const CLIENT = `
import createClient from 'openapi-fetch';
import type { operations, paths } from './schema.ts';

type Created = operations['createIncident']['responses'][201]['content']['application/json'];
type Details = operations['getIncident']['responses'][200]['content']['application/json'];

export async function drive(baseUrl: string, token: string, orgId: string): Promise<{ created: Created; details: Details }> {
  const client = createClient<paths>({ baseUrl, headers: { authorization: \`Bearer \${token}\` } });
  const created = await client.POST('/api/orgs/{orgId}/incidents', {
    params: { path: { orgId } },
    body: { projectId: 'payments', title: 'Checkout down', serviceName: 'checkout', severity: 'SEV1', environment: 'production' },
  });
  if (!created.data) throw new Error(\`create: \${created.response.status}\`);
  const incidentId = created.data.incidentId;
  const status = await client.POST('/api/orgs/{orgId}/incidents/{incidentId}/status', {
    params: { path: { orgId, incidentId } },
    body: { newStatus: 'INVESTIGATING', reason: 'paged' },
  });
  if (!status.data) throw new Error(\`status: \${status.response.status}\`);
  const note = await client.POST('/api/orgs/{orgId}/incidents/{incidentId}/actions', {
    params: { path: { orgId, incidentId } },
    body: { actionKind: 'NOTE', label: 'rolled back 4.2.1' },
  });
  if (!note.data?.actionId) throw new Error(\`note: \${note.response.status}\`);
  const details = await client.GET('/api/orgs/{orgId}/incidents/{incidentId}', {
    params: { path: { orgId, incidentId } },
  });
  if (!details.data) throw new Error(\`details: \${details.response.status}\`);
  return { created: created.data, details: details.data };
}
`;

/** The same client misused: the generated types must refuse it. */
const MISUSE = `
import createClient from 'openapi-fetch';
import type { paths } from './schema.ts';
const client = createClient<paths>({ baseUrl: 'http://127.0.0.1' });
void client.POST('/api/orgs/{orgId}/incidents/{incidentId}/status', {
  params: { path: { orgId: 'o', incidentId: 'i' } },
  body: { newStatus: 'ON_FIRE' },
});
`;

function typeErrors(file: string): string[] {
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    allowImportingTsExtensions: true,
    skipLibCheck: true,
  });
  return ts
    .getPreEmitDiagnostics(program)
    .map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
}

describe('a typed client generated from /openapi.json drives a real ITS', () => {
  let t: TestApp;
  let baseUrl: string;
  beforeAll(async () => {
    t = await startTestApp();
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    baseUrl = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
    mkdirSync(dir, { recursive: true });
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await t?.cleanup();
  });

  it('names, secures and licenses every operation, and keeps no unused component', async () => {
    const document = (await (await fetch(`${baseUrl}/openapi.json`)).json()) as {
      info: { license?: { name: string } };
      security?: unknown[];
      paths: Record<string, Record<string, { operationId?: string; security?: unknown[] }>>;
      components: { schemas: Record<string, unknown> };
    };
    expect(document.info.license?.name).toBeTruthy();
    const operations = Object.entries(document.paths).flatMap(([route, methods]) =>
      Object.entries(methods).map(([method, operation]) => ({ route, method, ...operation })),
    );
    expect(operations.filter((operation) => !operation.operationId)).toEqual([]);
    const ids = operations.map((operation) => operation.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const operation of operations) {
      const open = operation.route.startsWith('/health/') || operation.route === '/metrics';
      expect(operation.security, `${operation.method} ${operation.route}`).toEqual(
        open ? [] : [{ bearerAuth: [] }],
      );
    }
    const text = JSON.stringify(document.paths);
    const reachable = Object.keys(document.components.schemas).filter(
      (name) =>
        JSON.stringify({ ...document.components.schemas, [name]: null }).includes(
          `"#/components/schemas/${name}"`,
        ) || text.includes(`"#/components/schemas/${name}"`),
    );
    expect(reachable.sort()).toEqual(Object.keys(document.components.schemas).sort());
    // A route with no operationId of its own gets one from its method and path.
    expect(defaultOperationId('POST', '/api/orgs/:orgId/incidents/:incidentId/tags')).toBe(
      'postIncidentsTagsByIncidentId',
    );
    expect(defaultOperationId('GET', '/api/orgs/:orgId/incidents/stream')).toBe('getIncidentsStream');

    const metrics = await fetch(`${baseUrl}/metrics`);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await metrics.text()).toMatch(/^# HELP /m);
  });

  it('generates types with openapi-typescript that a client compiles against, and that refuse misuse', async () => {
    const document = (await (await fetch(`${baseUrl}/openapi.json`)).json()) as OpenAPI3;
    writeFileSync(path.join(dir, 'schema.ts'), astToString(await openapiTS(document)));
    writeFileSync(path.join(dir, 'client.ts'), CLIENT);
    writeFileSync(path.join(dir, 'misuse.ts'), MISUSE);
    expect(typeErrors(path.join(dir, 'client.ts'))).toEqual([]);
    expect(typeErrors(path.join(dir, 'misuse.ts')).join('\n')).toMatch(/ON_FIRE/);

    // The compiled client, run: create → status → note → details over a real socket.
    const org = freshOrg();
    const token = t.token({ sub: 'client', orgs: { [org]: ['ORG_ADMIN'] } });
    const { drive } = (await import(path.join(dir, 'client.ts'))) as {
      drive(
        baseUrl: string,
        token: string,
        orgId: string,
      ): Promise<{
        created: { incidentId: string };
        details: { incident: { id: string; status: string; version: number }; actions: { label: string }[] };
      }>;
    };
    const { created, details } = await drive(baseUrl, token, org);
    expect(details.incident).toMatchObject({ id: created.incidentId, status: 'INVESTIGATING', version: 2 });
    expect(details.actions.map((action) => action.label)).toContain('rolled back 4.2.1');
  });
});
