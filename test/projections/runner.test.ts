import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { openPostgres, type Database } from '../../src/db/database.ts';
import { incidentStreamName } from '../../src/domain/streams.ts';
import type { EventToAppend } from '../../src/eventstore/port.ts';
import { PROJECTORS } from '../../projections/catalog.ts';
import {
  PROJECTION_NAMES,
  ProjectionProgress,
  projectionStatus,
  startProjectionWorkers,
} from '../../projections/index.ts';
import { startProjectionDaemon } from '../../projections/workers.ts';
import { databaseLabel, useTestStore } from '../support/database.ts';
import { waitForCheckpoints } from './fixtures.ts';

const alice = { type: 'USER', ref: 'alice' };

function createdEvent(orgId: string, incidentId: string): EventToAppend {
  return {
    eventId: randomUUID(),
    type: 'INCIDENT_CREATED',
    data: {
      projectId: 'payments',
      title: 'Checkout slow',
      serviceName: 'checkout',
      severity: 'SEV3',
      environment: 'production',
      tags: [],
      correlationKeys: [],
    },
    metadata: {
      orgId,
      incidentId,
      actor: alice,
      occurredAt: new Date().toISOString(),
      correlationId: 'req-1',
      schemaVersion: 1,
    },
  };
}

function tagAdded(orgId: string, incidentId: string, tag: string): EventToAppend {
  return {
    eventId: randomUUID(),
    type: 'INCIDENT_TAG_ADDED',
    data: { tag },
    metadata: {
      orgId,
      incidentId,
      actor: alice,
      occurredAt: new Date().toISOString(),
      correlationId: 'req-2',
      schemaVersion: 1,
    },
  };
}

const newIds = () => ({
  orgId: `org${randomUUID().slice(0, 8)}`,
  incidentId: `inc_${randomUUID().replaceAll('-', '')}`,
});

/** A logger whose lines a test can wait for, instead of sleeping. */
function recordingLogger() {
  const lines: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean))
        lines.push(JSON.parse(line) as Record<string, unknown>);
      waiters.forEach((waiter) => waiter());
      done();
    },
  });
  const logger = pino({ level: 'debug' }, stream);
  const waitFor = (match: (line: Record<string, unknown>) => boolean, timeoutMs = 20_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => {
        const found = lines.find(match);
        if (!found) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(found);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error('log line never came'));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  return { logger, lines, waitFor };
}

describe(`projection workers on ${databaseLabel}`, () => {
  const scope = useTestStore();

  it('waitFor resolves once an append is projected (woken by NOTIFY from another connection on a server), and the row is there', async () => {
    const { test, store } = scope;
    const { orgId, incidentId } = newIds();
    const workers = startProjectionWorkers({ database: test.database, store });
    // On a server, a second pool stands for an API replica in another process: only the NOTIFY can wake it.
    const replica: Database = test.url ? openPostgres(test.url) : test.database;
    const progress = new ProjectionProgress(replica);
    try {
      await progress.start();
      const { position } = await store.append(
        incidentStreamName(orgId, incidentId),
        [createdEvent(orgId, incidentId)],
        'no_stream',
      );
      expect(await progress.waitFor(position, 10_000)).toBe(true);
      const row = await replica.db
        .selectFrom('incidents')
        .select(['status', 'version'])
        .where('org_id', '=', orgId)
        .where('id', '=', incidentId)
        .executeTakeFirst();
      expect(row).toEqual({ status: 'OPEN', version: 0 });
    } finally {
      await progress.stop();
      await workers.stop();
      if (replica !== test.database) await replica.close();
    }
  });

  it('waitFor answers false at its timeout while the workers are stopped, and a restart resumes from the checkpoint', async () => {
    const { test, store } = scope;
    const { orgId, incidentId } = newIds();
    const stream = incidentStreamName(orgId, incidentId);
    const progress = new ProjectionProgress(test.database);
    try {
      const { position } = await store.append(stream, [createdEvent(orgId, incidentId)], 'no_stream');
      const started = performance.now();
      expect(await progress.waitFor(position, 300)).toBe(false);
      expect(performance.now() - started).toBeGreaterThanOrEqual(290);

      const [status] = await projectionStatus(test.database, store);
      expect(status).toMatchObject({ name: 'incidents', state: 'idle', lag: 1 });
      expect(status!.lagSeconds).toBeGreaterThan(0);

      const workers = startProjectionWorkers({ database: test.database, store });
      try {
        expect(await progress.waitFor(position, 10_000)).toBe(true);
        const statuses = await projectionStatus(test.database, store);
        expect(
          statuses.map(({ name, state, lag, lagSeconds, position: at }) => ({
            name,
            state,
            lag,
            lagSeconds,
            at,
          })),
        ).toEqual(
          PROJECTION_NAMES.map((name) => ({ name, state: 'running', lag: 0, lagSeconds: 0, at: position })),
        );
      } finally {
        await workers.stop();
      }
    } finally {
      await progress.stop();
    }
  });

  it('a standby takes over when the leader stops, and goes on from its checkpoint', async () => {
    const { test, store } = scope;
    const { orgId, incidentId } = newIds();
    const stream = incidentStreamName(orgId, incidentId);
    const leaderLog = recordingLogger();
    const standbyLog = recordingLogger();
    const leader = startProjectionDaemon({
      database: test.database,
      store,
      logger: leaderLog.logger,
      projectors: [...PROJECTORS.values()],
    });
    await leaderLog.waitFor(
      (line) => line.msg === 'leading projection' && line.projection === 'slo_violations',
    );
    const standby = startProjectionDaemon({
      database: test.database,
      store,
      logger: standbyLog.logger,
      projectors: [...PROJECTORS.values()],
      standbyRetryMs: 50,
    });
    try {
      const first = await store.append(stream, [createdEvent(orgId, incidentId)], 'no_stream');
      await waitForCheckpoints(test.database, first.position);
      expect(standbyLog.lines.filter((line) => line.msg === 'leading projection')).toEqual([]);

      await leader.stop();
      const second = await store.append(stream, [tagAdded(orgId, incidentId, 'db')], 0);
      await waitForCheckpoints(test.database, second.position);
      expect(
        standbyLog.lines
          .filter((line) => line.msg === 'leading projection')
          .map((line) => line.projection)
          .sort(),
      ).toEqual([...PROJECTION_NAMES].sort());
      const row = await test.database.db
        .selectFrom('incidents')
        .select(['tags', 'version'])
        .where('org_id', '=', orgId)
        .where('id', '=', incidentId)
        .executeTakeFirstOrThrow();
      expect(row).toEqual({ tags: ['db'], version: 1 });
    } finally {
      await leader.stop();
      await standby.stop();
    }
  });
});

describe(`a projection that meets an event it cannot apply, on ${databaseLabel}`, () => {
  const scope = useTestStore();

  it('retries it with backoff, then stops there with state failed, the position and the error, skipping nothing', async () => {
    const { test, store } = scope;
    const good = newIds();
    const orphan = newIds();
    const later = newIds();
    const before = await store.append(
      incidentStreamName(good.orgId, good.incidentId),
      [createdEvent(good.orgId, good.incidentId)],
      'no_stream',
    );
    // A tag for an incident that was never created: the incidents projection cannot apply it.
    const poison = await store.append(
      incidentStreamName(orphan.orgId, orphan.incidentId),
      [tagAdded(orphan.orgId, orphan.incidentId, 'x')],
      'any',
    );
    const after = await store.append(
      incidentStreamName(later.orgId, later.incidentId),
      [createdEvent(later.orgId, later.incidentId)],
      'no_stream',
    );

    const { logger, lines, waitFor } = recordingLogger();
    const workers = startProjectionDaemon({
      database: test.database,
      store,
      logger,
      projectors: [...PROJECTORS.values()],
      retryDelaysMs: [10, 20, 40, 80],
    });
    try {
      await waitFor((line) => line.msg === 'projection stopped at an event that keeps failing');
      // The projections the event does not concern went past it.
      await waitForCheckpoints(test.database, after.position, ['signals', 'actions', 'slo_violations']);

      const checkpoint = await test.database.db
        .selectFrom('projection_checkpoints')
        .selectAll()
        .where('name', '=', 'incidents')
        .executeTakeFirstOrThrow();
      expect(checkpoint).toMatchObject({
        state: 'failed',
        position: before.position,
        error_position: poison.position,
      });
      expect(checkpoint.last_error).toMatch(/never created/);
      expect(
        lines.filter(
          (line) => line.msg === 'event failed to project; retrying' && line.position === poison.position,
        ),
      ).toHaveLength(4);

      const incidents = await test.database.db
        .selectFrom('incidents')
        .select('id')
        .where('org_id', 'in', [good.orgId, orphan.orgId, later.orgId])
        .execute();
      expect(incidents.map((row) => row.id)).toEqual([good.incidentId]);
      const statuses = await projectionStatus(test.database, store);
      expect(statuses.find((status) => status.name === 'incidents')).toMatchObject({
        state: 'failed',
        lag: 2,
        errorPosition: poison.position,
      });
    } finally {
      await workers.stop();
    }
    const stopped = await test.database.db
      .selectFrom('projection_checkpoints')
      .select('state')
      .where('name', '=', 'incidents')
      .executeTakeFirstOrThrow();
    expect(stopped.state).toBe('failed');
  });
});
