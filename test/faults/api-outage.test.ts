import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime, type Runtime } from '../../src/app/runtime.ts';
import { loadConfig } from '../../src/config.ts';
import { incidentStreamName, orgStreamPrefix } from '../../src/domain/streams.ts';
import { buildApp } from '../../src/http/app.ts';
import { signToken } from '../../src/http/tokens.ts';
import type { RecordedEvent } from '../../src/eventstore/port.ts';
import { eventStoreEnv, testEventStoreKind } from '../support/eventstore.ts';
import {
  startEventStoreDbTestServer,
  type EventStoreDbTestServer,
} from '../support/eventstoredb-server/index.ts';
import {
  postgresBinDir,
  startDedicatedPostgres,
  type DedicatedPostgres,
} from '../support/postgres-instance.ts';

/**
 * The real service (HTTP on a port, events and read models on a PostgreSQL server of this test's own,
 * projection workers running) while that server is killed and restarted under steady writes. Acked
 * writes survive exactly once, the outage is a quick 503 with Retry-After, the service heals by
 * itself, and clients retrying with an Idempotency-Key get one event per key.
 * OUTAGE_TRACE=1 prints the timeline of every request.
 */

const hasBinaries = postgresBinDir() !== null;
if (!hasBinaries)
  console.warn('API outage test: SKIPPED (no PostgreSQL server binaries to run a dedicated instance)');

/**
 * Each phase lasts at least its minimum and until the clients have shown what the phase is for
 * (acked writes, refused writes, acked writes again), at most its maximum: on a loaded machine a
 * fixed sleep would sometimes see nothing happen.
 */
const WARM_UP_MS = { min: 1_000, max: 20_000 };
/** At least CONSISTENCY_TIMEOUT_MS, so writes sent during it find the server down rather than waiting it out. */
const OUTAGE_MS = { min: 2_000, max: 10_000 };
const CONSISTENCY_TIMEOUT_MS = 1_000;
const AFTER_RECOVERY_MS = { min: 1_500, max: 25_000 };
/** An outage answer must come back this fast: no request may wait on a dead database. */
const OUTAGE_ANSWER_MS = 5_000;
/** A steady writer gives up on a request after this long (then counted as hung). */
const CLIENT_DEADLINE_MS = 10_000;
/** The retrying clients give up on one key after this long (then the test fails). */
const KEY_DEADLINE_MS = 30_000;
const STEADY_WRITERS = 4;
const RETRYING_CLIENTS = 3;

interface Attempt {
  client: string;
  kind: 'create' | 'note';
  /** Unique per request: the title of a create, the label of a note. */
  marker: string;
  startedAt: number;
  endedAt: number;
  /** HTTP status, or 0 when the client gave up (timeout) or the connection failed. */
  status: number;
  failure?: string;
  contentType?: string;
  retryAfter?: string;
  body?: unknown;
  incidentId?: string;
}

interface WriteBody {
  incidentId: string;
  version: number;
  position: string;
  actionId?: string;
}

interface StoredEvent {
  stream_name: string;
  version: string;
  event_id: string;
  type: string;
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Waits at least `min`, then until `done()` holds or `max` has passed. */
async function phase(limits: { min: number; max: number }, done: () => boolean): Promise<void> {
  const started = Date.now();
  await sleep(limits.min);
  while (!done() && Date.now() - started < limits.max) await sleep(50);
}
const isSuccess = (status: number) => status >= 200 && status < 300;

describe.skipIf(!hasBinaries)('the API while its PostgreSQL server restarts', () => {
  let server: DedicatedPostgres;
  let eventServer: EventStoreDbTestServer | undefined;
  let databaseUrl: string;
  let runtime: Runtime;
  let app: FastifyInstance;
  let base: string;
  let token: string;
  const org = `outage_${randomUUID().slice(0, 8)}`;
  const secret = randomBytes(32).toString('base64url');

  const attempts: Attempt[] = [];
  const readiness: { at: number; status: number }[] = [];
  /** Idempotency key → the 2xx its client finally got (absent if it never did). */
  const settledKeys = new Map<
    string,
    {
      kind: 'create' | 'note';
      path: string;
      request: unknown;
      body: WriteBody;
      tries: number;
      timeouts: number;
    }
  >();
  const openKeys = new Set<string>();
  /** Every attempt of the retrying clients: a 2xx, a 503, or the client's own timeout; anything else is a finding. */
  const keyAttempts: { key: string; status: number; failure?: string; body?: unknown }[] = [];
  const outage = { stopping: 0, stopped: 0, starting: 0, started: 0, readyAgain: 0 };
  let events: StoredEvent[] = [];
  /** Errors nobody handled: in `its serve` the first one would end the process. */
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => uncaught.push(error);

  async function call(
    method: string,
    path: string,
    options: { body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {},
  ) {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...options.headers,
      },
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
      signal: AbortSignal.timeout(options.timeoutMs ?? CLIENT_DEADLINE_MS),
    });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON: kept as text, and the assertions below say so.
    }
    return {
      status: response.status,
      body,
      contentType: response.headers.get('content-type') ?? undefined,
      retryAfter: response.headers.get('retry-after') ?? undefined,
    };
  }

  const createBody = (title: string) => ({
    projectId: 'payments',
    title,
    serviceName: 'checkout',
    severity: 'SEV2',
    environment: 'production',
  });
  const noteBody = (label: string) => ({ actionKind: 'NOTE', label });

  /** Writes without retrying: a create now and then, notes on its own incidents in between. */
  async function steadyWriter(name: string, running: () => boolean): Promise<void> {
    const mine: string[] = [];
    for (let seq = 0; running(); seq++) {
      const kind = mine.length === 0 || seq % 4 === 0 ? 'create' : 'note';
      const marker = `${name}-${seq}`;
      const incidentId = kind === 'note' ? mine[seq % mine.length] : undefined;
      const attempt: Attempt = {
        client: name,
        kind,
        marker,
        startedAt: Date.now(),
        endedAt: 0,
        status: 0,
        ...(incidentId ? { incidentId } : {}),
      };
      try {
        const response =
          kind === 'create'
            ? await call('POST', `/api/orgs/${org}/incidents`, { body: createBody(marker) })
            : await call('POST', `/api/orgs/${org}/incidents/${incidentId}/actions`, {
                body: noteBody(marker),
              });
        Object.assign(attempt, response);
        if (kind === 'create' && isSuccess(response.status))
          mine.push((response.body as WriteBody).incidentId);
      } catch (error) {
        attempt.failure = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      }
      attempt.endedAt = Date.now();
      attempts.push(attempt);
      await sleep(isSuccess(attempt.status) ? 10 : 50);
    }
  }

  /**
   * Each request carries a new Idempotency-Key; the client gives up on an attempt after a short,
   * random time (so some attempts are still running on the server when the next one arrives) and
   * sends the very same request again until it gets a 2xx.
   */
  async function retryingClient(name: string, running: () => boolean): Promise<void> {
    let incidentId: string | undefined;
    for (let seq = 0; running(); seq++) {
      const kind = incidentId === undefined || seq % 3 === 0 ? 'create' : 'note';
      const key = `${name}-${seq}-${randomUUID()}`;
      const marker = `${name}-key-${seq}`;
      const path =
        kind === 'create' ? `/api/orgs/${org}/incidents` : `/api/orgs/${org}/incidents/${incidentId}/actions`;
      const body = kind === 'create' ? createBody(marker) : noteBody(marker);
      openKeys.add(key);
      const deadline = Date.now() + KEY_DEADLINE_MS;
      let tries = 0;
      let timeouts = 0;
      while (Date.now() < deadline) {
        tries++;
        // Mostly impatient (20-400 ms), and patient now and then so every key gets through eventually.
        const timeoutMs =
          tries % 4 === 0 ? Math.min(15_000, 3_000 * (tries / 4)) : 20 + Math.floor(Math.random() * 380);
        try {
          const response = await call('POST', path, { body, headers: { 'idempotency-key': key }, timeoutMs });
          keyAttempts.push({ key, status: response.status, body: response.body });
          if (isSuccess(response.status)) {
            settledKeys.set(key, {
              kind,
              path,
              request: body,
              body: response.body as WriteBody,
              tries,
              timeouts,
            });
            openKeys.delete(key);
            if (kind === 'create') incidentId = (response.body as WriteBody).incidentId;
            break;
          }
        } catch (error) {
          const failure = error instanceof Error ? error.name : String(error);
          keyAttempts.push({ key, status: 0, failure });
          if (failure === 'TimeoutError') timeouts++;
        }
        await sleep(50);
      }
    }
  }

  async function pollReadiness(running: () => boolean): Promise<void> {
    while (running()) {
      const startedAt = Date.now();
      try {
        const response = await fetch(`${base}/health/ready`, {
          signal: AbortSignal.timeout(CLIENT_DEADLINE_MS),
        });
        await response.arrayBuffer();
        readiness.push({ at: startedAt, status: response.status });
        if (response.status === 200 && outage.started && !outage.readyAgain) outage.readyAgain = Date.now();
      } catch {
        readiness.push({ at: startedAt, status: 0 });
      }
      await sleep(100);
    }
  }

  beforeAll(async () => {
    server = await startDedicatedPostgres();
    // Under the EventStoreDB switch the events go to a test server; only the read models see the outage.
    if (testEventStoreKind === 'eventstoredb' && !process.env.EVENTSTORE_URL)
      eventServer = await startEventStoreDbTestServer();
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query('create database its_outage');
    await admin.end();
    const target = new URL(server.url);
    target.pathname = '/its_outage';
    databaseUrl = target.toString();

    const config = loadConfig({
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      JWT_SECRET: secret,
      DATABASE_URL: databaseUrl,
      ...eventStoreEnv(
        eventServer?.url ?? (testEventStoreKind === 'eventstoredb' ? process.env.EVENTSTORE_URL : undefined),
      ),
      DATA_DIR: '/nonexistent-its-test-data',
      CONSISTENCY_TIMEOUT_MS: String(CONSISTENCY_TIMEOUT_MS),
      RATE_LIMIT_PER_MINUTE: '10000000',
    });
    runtime = await openRuntime(config, { migrate: true, workers: true });
    app = buildApp(runtime, { logger: false });
    await app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

    const now = Math.floor(Date.now() / 1000);
    token = signToken(
      { sub: 'outage-tester', orgs: { [org]: ['ORG_ADMIN'] }, its_admin: true, iat: now, exp: now + 600 },
      'HS256',
      secret,
    );

    // ---- the scenario: steady load, a hard restart of PostgreSQL, load again ----
    process.on('uncaughtException', onUncaught);
    let running = true;
    const isRunning = () => running;
    const clients = [
      ...Array.from({ length: STEADY_WRITERS }, (_, i) => steadyWriter(`steady${i}`, isRunning)),
      ...Array.from({ length: RETRYING_CLIENTS }, (_, i) => retryingClient(`retrying${i}`, isRunning)),
      pollReadiness(isRunning),
    ];
    try {
      const ackedBy = (client: string, after = 0) =>
        attempts.some((a) => a.client === client && a.startedAt > after && isSuccess(a.status));
      const everyWriter = (after = 0) =>
        Array.from({ length: STEADY_WRITERS }, (_, i) => `steady${i}`).every((client) =>
          ackedBy(client, after),
        );
      await phase(WARM_UP_MS, () => everyWriter() && settledKeys.size >= RETRYING_CLIENTS);
      outage.stopping = Date.now();
      await server.stop('immediate');
      outage.stopped = Date.now();
      await phase(
        OUTAGE_MS,
        () => attempts.filter((a) => a.startedAt >= outage.stopped && a.endedAt > 0).length >= STEADY_WRITERS,
      );
      outage.starting = Date.now();
      await server.start();
      outage.started = Date.now();
      // Recovered: readiness says so by itself, and every writer got a write through again.
      await phase(AFTER_RECOVERY_MS, () => outage.readyAgain > 0 && everyWriter(outage.started));
    } finally {
      running = false;
      await Promise.allSettled(clients);
    }
    // Clients stop when told, but a retrying client finishes the key it holds (bounded by KEY_DEADLINE_MS).
    const results = await Promise.allSettled(clients);
    for (const result of results) if (result.status === 'rejected') throw result.reason;

    // Everything acked must reach the read models before they are checked.
    const head = await runtime.store.headPosition();
    if (head !== null) await runtime.progress.waitFor(head, 20_000);

    events = (await readOrgEvents()).map((event) => ({
      stream_name: event.streamName,
      version: String(event.version),
      event_id: event.eventId,
      type: event.type,
      data: event.data,
      metadata: event.metadata,
    }));
    const summary = {
      attempts: attempts.length,
      acked: attempts.filter((a) => isSuccess(a.status)).length,
      unavailable: attempts.filter((a) => a.status === 503).length,
      failed: attempts.filter((a) => a.status === 0).length,
      keys: settledKeys.size,
      keysRetried: [...settledKeys.values()].filter((k) => k.tries > 1).length,
      clientTimeouts: [...settledKeys.values()].reduce((sum, k) => sum + k.timeouts, 0),
      events: events.length,
      outageMs: outage.started - outage.stopping,
      readyAgainAfterMs: outage.readyAgain ? outage.readyAgain - outage.started : null,
      uncaught: uncaught.length,
    };
    console.info(`API outage scenario: ${JSON.stringify(summary)}`);
    if (process.env.OUTAGE_TRACE) {
      for (const t of attempts)
        console.info(
          `${t.client} ${t.kind} +${t.startedAt - outage.stopping}..+${t.endedAt - outage.stopping} ${t.status} ${t.failure ?? ''}`,
        );
      console.info(
        JSON.stringify({
          stopped: outage.stopped - outage.stopping,
          starting: outage.starting - outage.stopping,
          started: outage.started - outage.stopping,
          readyAgain: outage.readyAgain - outage.stopping,
          readiness: readiness.map((r) => [r.at - outage.stopping, r.status]),
          keyAttempts: keyAttempts.map((k) => k.status || k.failure).join(','),
        }),
      );
    }
  }, 110_000);

  afterAll(async () => {
    process.off('uncaughtException', onUncaught);
    if (app) {
      // A keep-alive socket whose request a client abandoned can hold close() for the keep-alive timeout (72 s).
      const force = setTimeout(() => app.server.closeAllConnections(), 3_000);
      await app.close();
      clearTimeout(force);
    }
    await runtime?.close();
    await server?.destroy();
    await eventServer?.close();
  });

  /** The org's events in global order, through the store (PostgreSQL or EventStoreDB). */
  async function readOrgEvents(): Promise<RecordedEvent[]> {
    const all: RecordedEvent[] = [];
    for (;;) {
      const page = await runtime.store.readAll({
        fromPosition: all.at(-1)?.position ?? null,
        streamPrefix: orgStreamPrefix(org),
        limit: 1000,
      });
      all.push(...page);
      if (page.length < 1000) return all;
    }
  }

  const acked = () => attempts.filter((attempt) => isSuccess(attempt.status));
  const describeAttempt = (attempt: Attempt) =>
    `${attempt.client} ${attempt.kind} ${attempt.marker} at +${attempt.startedAt - outage.stopping} ms (${attempt.endedAt - attempt.startedAt} ms) → ${attempt.status || attempt.failure} ${JSON.stringify(attempt.body)}`;

  it('the scenario did what it says: writes were acked before and after the outage, and refused during it', () => {
    expect(acked().filter((attempt) => attempt.endedAt < outage.stopping).length).toBeGreaterThan(0);
    expect(
      acked().filter((attempt) => attempt.startedAt > outage.started).length,
      'no write succeeded after the restart',
    ).toBeGreaterThan(0);
    expect(
      attempts.filter((attempt) => attempt.startedAt >= outage.stopped && attempt.endedAt <= outage.starting)
        .length,
      'no request fell inside the outage',
    ).toBeGreaterThan(0);
    expect(
      [...settledKeys.values()].filter((key) => key.tries > 1).length,
      'no idempotent request needed a retry',
    ).toBeGreaterThan(0);
  });

  it('every acked write is in the event store exactly once, where its response said', () => {
    const byStream = new Map<string, StoredEvent[]>();
    for (const event of events)
      byStream.set(event.stream_name, [...(byStream.get(event.stream_name) ?? []), event]);
    for (const attempt of acked()) {
      const body = attempt.body as WriteBody;
      const stream = byStream.get(incidentStreamName(org, body.incidentId)) ?? [];
      const at = stream.find((event) => Number(event.version) === body.version);
      if (attempt.kind === 'create') {
        const copies = events.filter(
          (event) => event.type === 'INCIDENT_CREATED' && event.data.title === attempt.marker,
        );
        expect(copies.length, `copies of ${describeAttempt(attempt)}`).toBe(1);
        expect(at?.type, describeAttempt(attempt)).toBe('INCIDENT_CREATED');
        expect(at?.data.title, describeAttempt(attempt)).toBe(attempt.marker);
      } else {
        const copies = events.filter(
          (event) => event.type === 'INCIDENT_NOTE_ADDED' && event.data.label === attempt.marker,
        );
        expect(copies.length, `copies of ${describeAttempt(attempt)}`).toBe(1);
        expect(body.incidentId, describeAttempt(attempt)).toBe(attempt.incidentId);
        expect(at?.type, describeAttempt(attempt)).toBe('INCIDENT_NOTE_ADDED');
        expect(at?.data.actionId, describeAttempt(attempt)).toBe(body.actionId);
        expect(at?.data.label, describeAttempt(attempt)).toBe(attempt.marker);
      }
    }
    // A refused request may have landed or not (it was cut mid-way), but never twice.
    for (const attempt of attempts.filter((a) => !isSuccess(a.status))) {
      const field = attempt.kind === 'create' ? 'title' : 'label';
      expect(
        events.filter((event) => event.data[field] === attempt.marker).length,
        describeAttempt(attempt),
      ).toBeLessThanOrEqual(1);
    }
  });

  it('every acked write shows in the read models after recovery', async () => {
    const incidents = new Map<string, { version: number; actionIds: string[] }>();
    const note = (body: WriteBody) => {
      const entry = incidents.get(body.incidentId) ?? { version: -1, actionIds: [] };
      entry.version = Math.max(entry.version, body.version);
      if (body.actionId) entry.actionIds.push(body.actionId);
      incidents.set(body.incidentId, entry);
    };
    for (const attempt of acked()) note(attempt.body as WriteBody);
    for (const settled of settledKeys.values()) note(settled.body);
    expect(incidents.size).toBeGreaterThan(0);
    for (const [incidentId, expected] of incidents) {
      const response = await call('GET', `/api/orgs/${org}/incidents/${incidentId}`);
      expect(response.status, `GET ${incidentId}: ${JSON.stringify(response.body)}`).toBe(200);
      const details = response.body as { incident: { version: number }; actions: { id: string }[] };
      const lastVersion = Math.max(
        ...events
          .filter((event) => event.stream_name === incidentStreamName(org, incidentId))
          .map((event) => Number(event.version)),
      );
      expect(details.incident.version, incidentId).toBe(lastVersion);
      expect(details.incident.version, incidentId).toBeGreaterThanOrEqual(expected.version);
      const shown = new Set(details.actions.map((action) => action.id));
      for (const actionId of expected.actionIds)
        expect(shown.has(actionId), `${incidentId} lacks action ${actionId}`).toBe(true);
    }
  });

  it('during the outage requests get a quick 503 UNAVAILABLE with Retry-After, and never anything else', () => {
    for (const attempt of attempts) {
      // Whenever it happened, a request ends with a 2xx or a clean 503: no 500, no dropped socket, no hang.
      expect([200, 201, 202, 503], describeAttempt(attempt)).toContain(attempt.status);
      if (attempt.status === 503) {
        expect(attempt.contentType, describeAttempt(attempt)).toMatch(/^application\/problem\+json/);
        expect(attempt.body, describeAttempt(attempt)).toMatchObject({
          status: 503,
          code: 'UNAVAILABLE',
          type: expect.any(String),
          title: expect.any(String),
          detail: expect.any(String),
        });
        expect(Number(attempt.retryAfter), `Retry-After of ${describeAttempt(attempt)}`).toBeGreaterThan(0);
      }
      const overlapsOutage = attempt.endedAt >= outage.stopping && attempt.startedAt <= outage.started;
      if (overlapsOutage)
        expect(
          attempt.endedAt - attempt.startedAt,
          `slow answer during the outage: ${describeAttempt(attempt)}`,
        ).toBeLessThan(OUTAGE_ANSWER_MS);
      // While the server is down, no write can succeed; with the events in EventStoreDB a write that
      // needs nothing from PostgreSQL (a create, a cached stream) still lands and is accepted (202),
      // and the checks above prove each acked one is there exactly once.
      if (attempt.startedAt >= outage.stopped && attempt.endedAt <= outage.starting)
        expect(
          testEventStoreKind === 'eventstoredb' ? [202, 503] : [503],
          describeAttempt(attempt),
        ).toContain(attempt.status);
    }
    const probes = readiness.filter((probe) => probe.at >= outage.stopped && probe.at <= outage.starting);
    expect(probes.length).toBeGreaterThan(0);
    for (const probe of probes) expect(probe.status, '/health/ready while the server is down').toBe(503);
  });

  it('no error goes unhandled while the database restarts (in `its serve` one would end the process)', () => {
    const described = uncaught.map((error) =>
      error instanceof Error
        ? `${error.message}\n${error.stack?.split('\n').slice(1, 4).join('\n')}`
        : String(error),
    );
    expect(described, 'uncaught exceptions during the restart').toEqual([]);
  });

  it('recovers without a restart: /health/ready is 200 again and writes succeed', async () => {
    expect(outage.readyAgain, '/health/ready never answered 200 after the restart').toBeGreaterThan(0);
    const ready = await call('GET', '/health/ready');
    expect(ready.status, JSON.stringify(ready.body)).toBe(200);
    const created = await call('POST', `/api/orgs/${org}/incidents`, { body: createBody('after the storm') });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const { incidentId } = created.body as WriteBody;
    const noted = await call('POST', `/api/orgs/${org}/incidents/${incidentId}/actions`, {
      body: noteBody('all clear'),
    });
    expect(noted.status, JSON.stringify(noted.body)).toBe(200);
    const details = await call('GET', `/api/orgs/${org}/incidents/${incidentId}`);
    expect((details.body as { actions: { label: string }[] }).actions.map((action) => action.label)).toEqual([
      'all clear',
    ]);
  });

  it('retries with one Idempotency-Key produce exactly one event per key, the one the client was answered with', async () => {
    expect(openKeys, 'keys that never got a 2xx').toEqual(new Set());
    // The client's own timeouts aside, every attempt got a 2xx or a clean 503.
    const unexpected = keyAttempts.filter(
      (attempt) =>
        !(isSuccess(attempt.status) || attempt.status === 503 || attempt.failure === 'TimeoutError'),
    );
    expect(unexpected, 'idempotent attempts answered with something else').toEqual([]);
    expect(settledKeys.size).toBeGreaterThan(0);
    for (const [key, settled] of settledKeys) {
      const withKey = events.filter((event) => event.metadata.idempotencyKey === key);
      const context = `key ${key} (${settled.kind}, ${settled.tries} tries, ${settled.timeouts} timeouts) → ${JSON.stringify(settled.body)}: ${JSON.stringify(withKey.map((e) => [e.stream_name, e.version, e.type]))}`;
      expect(withKey.length, context).toBe(1);
      const [event] = withKey;
      expect(event!.stream_name, context).toBe(incidentStreamName(org, settled.body.incidentId));
      expect(Number(event!.version), context).toBe(settled.body.version);
      expect(event!.type, context).toBe(
        settled.kind === 'create' ? 'INCIDENT_CREATED' : 'INCIDENT_NOTE_ADDED',
      );
      if (settled.kind === 'note') expect(event!.data.actionId, context).toBe(settled.body.actionId);
    }
    // And the key keeps answering with that first response, appending nothing more.
    for (const [key, settled] of [...settledKeys].slice(0, 10)) {
      const replay = await call('POST', settled.path, {
        body: settled.request,
        headers: { 'idempotency-key': key },
      });
      expect(replay.status, `replay of ${key}: ${JSON.stringify(replay.body)}`).toBeLessThan(300);
      expect(replay.body, `replay of ${key}`).toEqual(settled.body);
    }
    const withKeys = (await readOrgEvents()).filter((event) =>
      settledKeys.has(String(event.metadata.idempotencyKey)),
    );
    expect(withKeys.length, 'events carrying the keys after the replays').toBe(settledKeys.size);
  });
});
