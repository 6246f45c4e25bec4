import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPERATION_ROLES } from '../../src/http/auth.ts';
import { ALLOWED_TRANSITIONS } from '../../src/domain/incident/state.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { expectProblem } from './support.ts';

/** The CSP directives of a response, as a map of name → sources. */
function directives(header: string | string[] | number | undefined): Map<string, string[]> {
  expect(typeof header).toBe('string');
  return new Map(
    String(header)
      .split(';')
      .map((part) => part.trim().split(/\s+/))
      .filter((words) => words[0])
      .map(([name, ...sources]) => [name!, sources]),
  );
}

describe('the web app is served by ITS itself', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ workers: false });
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  it('serves the page at / with a CSP stricter than the rest of the API', async () => {
    const page = await t.request({ method: 'GET', url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body).toContain('<script type="module" src="/web/app.js"></script>');
    expect(page.body).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/); // no inline script in the page

    const csp = directives(page.headers['content-security-policy']);
    expect(csp.get('default-src')).toEqual(["'none'"]);
    expect(csp.get('script-src')).toEqual(["'self'"]);
    expect(csp.get('style-src')).toEqual(["'self'"]);
    expect(csp.get('connect-src')).toEqual(["'self'"]);
    expect(csp.get('frame-ancestors')).toEqual(["'none'"]);
    expect(csp.get('object-src')).toEqual(["'none'"]);
    expect(csp.get('require-trusted-types-for')).toEqual(["'script'"]);
    for (const sources of csp.values()) {
      expect(sources).not.toContain("'unsafe-inline'");
      expect(sources).not.toContain("'unsafe-eval'");
      expect(sources.some((source) => source.startsWith('http') || source === 'https:')).toBe(false);
    }

    // Each directive of helmet's global policy is in the page's too, allowing no source the global one refuses.
    const api = await t.request({ method: 'GET', url: '/health/live' });
    const global = directives(api.headers['content-security-policy']);
    for (const [name, wider] of global) {
      const own = csp.get(name) ?? (name.endsWith('-src') ? csp.get('default-src') : undefined);
      expect(own, name).toBeDefined();
      for (const source of own!.filter((source) => source !== "'none'"))
        expect(wider, `${name} ${source}`).toContain(source);
    }
  });

  it('serves every file of web/ with its type, and answers 304 to a matching ETag', async () => {
    const files = readdirSync(new URL('../../web/', import.meta.url), { recursive: true }) as string[];
    const scripts = files.filter((file) => file.endsWith('.js'));
    expect(scripts.length).toBeGreaterThan(5);
    // The page asks for every module at once rather than discovering them import by import.
    const page = (await t.request({ method: 'GET', url: '/' })).body;
    for (const file of [...scripts.filter((file) => file !== 'app.js'), 'contract.js'])
      expect(page, file).toContain(`<link rel="modulepreload" href="/web/${file}" />`);
    for (const file of scripts) {
      const response = await t.request({ method: 'GET', url: `/web/${file}` });
      expect(response.statusCode, file).toBe(200);
      expect(response.headers['content-type']).toBe('text/javascript; charset=utf-8');
      expect(response.headers['content-security-policy']).toContain("default-src 'none'");
    }
    const css = await t.request({ method: 'GET', url: '/web/app.css' });
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
    expect(css.headers['cache-control']).toBe('no-cache');
    const again = await t.request({
      method: 'GET',
      url: '/web/app.css',
      headers: { 'if-none-match': String(css.headers.etag) },
    });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
  });

  it('gives the app the roles table and the lifecycle the server enforces', async () => {
    const response = await t.request({ method: 'GET', url: '/web/contract.js' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/javascript; charset=utf-8');
    const contract = JSON.parse(/^export default (.*);\n$/s.exec(response.body)![1]!);
    expect(contract.operationRoles.changeStatus).toEqual(OPERATION_ROLES.changeStatus);
    expect(contract.operationRoles.readEvents).toEqual(OPERATION_ROLES.readEvents);
    expect(contract.operationRoles).not.toHaveProperty('admin');
    expect(contract.transitions).toEqual(ALLOWED_TRANSITIONS);
    expect(contract.severities).toEqual(['SEV1', 'SEV2', 'SEV3', 'SEV4']);
  });

  it('serves nothing outside web/ and keeps the API docs and 404s as they were', async () => {
    for (const url of ['/web/../package.json', '/web/%2e%2e/package.json', '/web/nope.js', '/web/']) {
      const response = await t.request({ method: 'GET', url });
      expectProblem(response, 404, 'NOT_FOUND');
    }
    const docs = await t.request({ method: 'GET', url: '/docs/' });
    expect(docs.statusCode).toBe(200);
    expect(docs.headers['content-security-policy']).not.toContain('trusted-types');
    const openapi = await t.request({ method: 'GET', url: '/openapi.json' });
    expect(JSON.stringify(openapi.json().paths)).not.toContain('/web/');
  });
});
