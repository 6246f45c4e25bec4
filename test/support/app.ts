import { randomBytes, randomUUID } from 'node:crypto';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { openRuntime, type OpenRuntimeOptions, type Runtime } from '../../src/app/runtime.ts';
import { loadConfig } from '../../src/config.ts';
import { buildApp } from '../../src/http/app.ts';
import { signToken } from '../../src/http/tokens.ts';
import { openTestDatabase, type TestDatabase } from './database.ts';
import type { TestEventStoreKind } from './eventstore.ts';

export interface TokenClaims {
  sub?: string;
  name?: string;
  orgs?: Record<string, string[]>;
  actor_type?: 'USER' | 'SYSTEM' | 'INTEGRATION';
  its_admin?: boolean;
  /** Seconds from now; default 300. */
  expiresIn?: number;
  [claim: string]: unknown;
}

export interface TestApp {
  app: FastifyInstance;
  runtime: Runtime;
  /** The scratch database under the app (shared by apps started with `shareDatabaseOf`). */
  database: TestDatabase;
  /** The HS256 secret the app verifies with. */
  secret: string;
  /** A real HS256 token signed with the app's secret; `iat`/`exp` filled in unless given. */
  token(claims?: TokenClaims): string;
  /** `app.inject` with `Authorization: Bearer <token>` when a token is given. */
  request(options: InjectOptions & { token?: string }): Promise<LightMyRequestResponse>;
  cleanup(): Promise<void>;
}

export interface StartTestAppOptions {
  /** Extra environment for loadConfig (JWT_PUBLIC_KEY, RATE_LIMIT_PER_MINUTE, DATABASE_URL…). */
  env?: Record<string, string>;
  /** Run the projection workers (default true: writes wait until they are visible). */
  workers?: boolean;
  /** Reuse this app's database instead of creating one (its cleanup stays with that app). */
  shareDatabaseOf?: TestApp;
  /** Skip the database entirely and open the one the env names (e.g. a dead port). */
  configuredDatabase?: boolean;
  /** Webhook resolver, retry schedule and timings. */
  webhooks?: OpenRuntimeOptions['webhooks'];
  /** Where the events go, whatever ITS_TEST_EVENT_STORE says. */
  eventStore?: TestEventStoreKind;
}

/** A fresh org id per test, so tests never see each other's incidents. */
export const freshOrg = (label = 'org'): string => `${label}_${randomUUID().slice(0, 8)}`;

/**
 * The whole API over a real runtime (scratch PostgreSQL from DATABASE_URL, else in-memory PGlite),
 * for `app.inject`. Other suites reuse it: `const t = await startTestApp(); … await t.cleanup()`.
 */
export async function startTestApp(options: StartTestAppOptions = {}): Promise<TestApp> {
  const secret = randomBytes(32).toString('base64url');
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    JWT_SECRET: secret,
    DATA_DIR: '/nonexistent-its-test-data',
    ...options.env,
  });
  const owned =
    options.shareDatabaseOf || options.configuredDatabase
      ? undefined
      : await openTestDatabase(options.eventStore ? { eventStore: options.eventStore } : {});
  const database = options.shareDatabaseOf?.database ?? owned;
  let runtime: Runtime;
  try {
    runtime = await openRuntime(config, {
      workers: options.workers ?? true,
      ...(options.webhooks ? { webhooks: options.webhooks } : {}),
      ...(database ? { database: database.database, store: database.store } : {}),
    });
  } catch (error) {
    await owned?.cleanup();
    throw error;
  }
  const app = buildApp(runtime, { logger: false });
  await app.ready();

  const token = (claims: TokenClaims = {}): string => {
    const { expiresIn = 300, ...rest } = claims;
    const now = Math.floor(Date.now() / 1000);
    return signToken({ sub: 'tester', orgs: {}, iat: now, exp: now + expiresIn, ...rest }, 'HS256', secret);
  };

  return {
    app,
    runtime,
    database:
      database ??
      ({
        database: runtime.database,
        url: undefined,
        store: runtime.store,
        eventStoreUrl: runtime.config.eventStoreUrl,
        eventStoreServer: undefined,
        cleanup: async () => {},
      } satisfies TestDatabase),
    secret,
    token,
    request: ({ token: bearer, headers, ...rest }) =>
      app.inject({
        ...rest,
        headers: { ...(bearer ? { authorization: `Bearer ${bearer}` } : {}), ...headers },
      }),
    async cleanup() {
      await app.close();
      await runtime.close();
      await owned?.cleanup();
    },
  };
}
