import { createHmac, generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { signToken } from '../../src/http/tokens.ts';
import { freshOrg, startTestApp, type TestApp } from '../support/app.ts';
import { expectProblem } from './support.ts';

const now = () => Math.floor(Date.now() / 1000);

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** The same signature spelt differently: the last character's two padding bits flipped (32-byte HMAC). */
const respell = (token: string) => {
  const last = BASE64URL.indexOf(token.at(-1)!);
  return token.slice(0, -1) + BASE64URL[last ^ 1];
};

describe('tokens the service accepts: bounded in time, storable, counted per person', () => {
  let t: TestApp;
  let org: string;
  beforeAll(async () => {
    t = await startTestApp({ workers: false });
    org = freshOrg();
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  const list = (token: string, app: TestApp = t) =>
    app.request({ method: 'GET', url: `/api/orgs/${org}/incidents`, token });
  const orgs = () => ({ [org]: ['ORG_ADMIN'] });

  it('refuses a token without exp, with exp 1e400, with an iat in the future, or living past JWT_MAX_TTL', async () => {
    const hs = (payload: Record<string, unknown>) => signToken(payload, 'HS256', t.secret);
    const signText = (payloadJson: string) => {
      const encode = (text: string) => Buffer.from(text).toString('base64url');
      const input = `${encode('{"alg":"HS256","typ":"JWT"}')}.${encode(payloadJson)}`;
      return `${input}.${createHmac('sha256', t.secret).update(input).digest('base64url')}`;
    };
    const claims = `"sub":"a","orgs":${JSON.stringify(orgs())}`;
    const cases: [string, string][] = [
      ['no exp', hs({ sub: 'a', orgs: orgs(), iat: now() })],
      ['exp 1e400', signText(`{${claims},"iat":${now()},"exp":1e400}`)],
      ['iat in the future', hs({ sub: 'a', orgs: orgs(), iat: now() + 3600, exp: now() + 7200 })],
      ['lives 25 h', hs({ sub: 'a', orgs: orgs(), iat: now(), exp: now() + 25 * 3600 })],
      ['no iat, exp in 25 h', hs({ sub: 'a', orgs: orgs(), exp: now() + 25 * 3600 })],
    ];
    for (const [label, token] of cases) {
      const response = await list(token);
      expect(response.statusCode, label).toBe(401);
      expectProblem(response, 401, 'UNAUTHENTICATED');
    }
    expect((await list(hs({ sub: 'a', orgs: orgs(), iat: now(), exp: now() + 23 * 3600 }))).statusCode).toBe(
      200,
    );
    expect((await list(hs({ sub: 'a', orgs: orgs(), exp: now() + 60 }))).statusCode).toBe(200);
  });

  it('takes JWT_MAX_TTL from the environment', async () => {
    const short = await startTestApp({ shareDatabaseOf: t, workers: false, env: { JWT_MAX_TTL: '15m' } });
    try {
      const sign = (ttl: number) =>
        signToken({ sub: 'a', orgs: orgs(), iat: now(), exp: now() + ttl }, 'HS256', short.secret);
      expectProblem(await list(sign(3600), short), 401, 'UNAUTHENTICATED');
      expect((await list(sign(600), short)).statusCode).toBe(200);
    } finally {
      await short.cleanup();
    }
    expect(() => loadConfig({ JWT_SECRET: 'x', JWT_MAX_TTL: 'forever' })).toThrow(ConfigError);
  });

  it('refuses a sub or name with NUL or half a surrogate pair with 401, not a 500 from PostgreSQL', async () => {
    for (const sub of ['a\u0000b', 'half \ud800', '\udc00']) {
      const token = t.token({ sub, orgs: { [org]: ['ORG_ADMIN'] } });
      expectProblem(
        await t.request({
          method: 'POST',
          url: `/api/orgs/${org}/incidents`,
          token,
          payload: { projectId: 'p', title: 't', serviceName: 's', severity: 'SEV3', environment: 'e' },
        }),
        401,
        'UNAUTHENTICATED',
      );
    }
    expectProblem(await list(t.token({ name: 'n\u0000', orgs: orgs() })), 401, 'UNAUTHENTICATED');
  });

  it('refuses to start in production with JWT_PUBLIC_KEY and no CURSOR_SECRET', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => loadConfig({ NODE_ENV: 'production', JWT_PUBLIC_KEY: pem })).toThrow(/CURSOR_SECRET/);
    expect(() =>
      loadConfig({ NODE_ENV: 'production', JWT_PUBLIC_KEY: pem, CURSOR_SECRET: 's' }),
    ).not.toThrow();
    expect(() => loadConfig({ NODE_ENV: 'development', JWT_PUBLIC_KEY: pem })).not.toThrow();
  });

  it('counts per person and org, whatever the iat or the spelling of the signature, and counts 401 and 403', async () => {
    const limited = await startTestApp({
      shareDatabaseOf: t,
      workers: false,
      env: { RATE_LIMIT_PER_MINUTE: '3' },
    });
    try {
      // Fresh iat each time, and the signature's last base64url character respelt: still one bucket.
      const token = (iat: number) =>
        signToken({ sub: 'busy', orgs: orgs(), iat, exp: iat + 600 }, 'HS256', limited.secret);
      expect((await list(token(now()), limited)).statusCode).toBe(200);
      expect((await list(token(now() - 1), limited)).statusCode).toBe(200);
      expect((await list(respell(token(now() - 2)), limited)).statusCode).toBe(200);
      expectProblem(await list(token(now() - 3), limited), 429, 'RATE_LIMITED');
      // Another person is not held back.
      const other = signToken(
        { sub: 'calm', orgs: orgs(), iat: now(), exp: now() + 600 },
        'HS256',
        limited.secret,
      );
      expect((await list(other, limited)).statusCode).toBe(200);

      // Forged tokens count against the client address; after three, the fourth is 429, not 401.
      const forged = signToken(
        { sub: 'x', orgs: orgs(), exp: now() + 60 },
        'HS256',
        'not-the-secret-not-the-secret',
      );
      for (let i = 0; i < 3; i++) expectProblem(await list(forged, limited), 401, 'UNAUTHENTICATED');
      expectProblem(await list(forged, limited), 429, 'RATE_LIMITED');

      // A token trying orgs it lacks counts under its subject, whichever org the path names.
      const stranger = signToken(
        { sub: 'stranger', orgs: {}, iat: now(), exp: now() + 600 },
        'HS256',
        limited.secret,
      );
      for (let i = 0; i < 3; i++) {
        const response = await limited.request({
          method: 'GET',
          url: `/api/orgs/${freshOrg()}/incidents`,
          token: stranger,
        });
        expectProblem(response, 403, 'FORBIDDEN');
      }
      expectProblem(
        await limited.request({ method: 'GET', url: `/api/orgs/${freshOrg()}/incidents`, token: stranger }),
        429,
        'RATE_LIMITED',
      );
    } finally {
      await limited.cleanup();
    }
  });
});
