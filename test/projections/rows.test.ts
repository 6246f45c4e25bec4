import { randomInt, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { incidentStreamName } from '../../src/domain/streams.ts';
import type { EventToAppend } from '../../src/eventstore/port.ts';
import { PROJECTORS } from '../../projections/catalog.ts';
import { startProjectionWorkers } from '../../projections/index.ts';
import { projectEvents, toProjectedEvent } from '../../projections/projector.ts';
import { startProjectionDaemon } from '../../projections/workers.ts';
import { databaseLabel, useTestStore } from '../support/database.ts';
import { appendLog, generateLog, servedRows, waitForCheckpoints } from './fixtures.ts';

describe(`the rows the workers write, on ${databaseLabel}`, () => {
  const scope = useTestStore();

  it('are exactly the pure fold of the events, awkward text, arrays and JSON included', async () => {
    const { test, store } = scope;
    const seed = randomInt(2 ** 31);
    const orgs = [`rows${seed}`];
    const head = await appendLog(store, generateLog({ seed, orgs, incidents: 40, events: 1500 }));
    const workers = startProjectionWorkers({ database: test.database, store });
    try {
      await waitForCheckpoints(test.database, head);
    } finally {
      await workers.stop();
    }
    const events = (await store.readAll({ limit: 100_000 }))
      .map(toProjectedEvent)
      .filter((event) => orgs.includes(event.orgId));
    for (const projector of PROJECTORS.values()) {
      const folded = projectEvents(projector, events);
      expect(folded.length).toBeGreaterThan(0);
      expect(await servedRows(test.database, projector, orgs)).toEqual(folded);
    }
    // The generated log does carry the awkward values.
    const tags = (await servedRows(test.database, PROJECTORS.get('incidents')!, orgs)).flatMap(
      (row) => row.tags as string[],
    );
    expect(tags.some((tag) => tag.includes('"') || tag.includes('\\') || tag === 'NULL')).toBe(true);
  });

  it('stops an insert-only projection at an event whose row exists already, and names the key', async () => {
    const { test, store } = scope;
    const orgId = `dup${randomUUID().slice(0, 8)}`;
    const incidentId = `inc_${randomUUID().replaceAll('-', '')}`;
    const stream = incidentStreamName(orgId, incidentId);
    const metadata = {
      orgId,
      incidentId,
      actor: { type: 'USER', ref: 'alice' },
      occurredAt: '2026-03-01T10:00:00.000Z',
      correlationId: 'req-1',
      schemaVersion: 1,
    };
    const signal = (): EventToAppend => ({
      eventId: randomUUID(),
      type: 'INCIDENT_SIGNAL_INGESTED',
      data: {
        signalId: 'sig_twice',
        signalType: 'ALERT',
        source: 'prometheus',
        summary: 'error rate',
        ts: '2026-03-01T10:00:00.000Z',
      },
      metadata,
    });
    await store.append(
      stream,
      [
        {
          eventId: randomUUID(),
          type: 'INCIDENT_CREATED',
          data: {
            projectId: 'p',
            title: 't',
            serviceName: 's',
            severity: 'SEV3',
            environment: 'prod',
            tags: [],
            correlationKeys: [],
          },
          metadata,
        },
      ],
      'no_stream',
    );
    const first = await store.append(stream, [signal()], 0);
    const second = await store.append(stream, [signal()], 1);

    const workers = startProjectionDaemon({
      database: test.database,
      store,
      projectors: [PROJECTORS.get('signals')!],
      retryDelaysMs: [5, 10],
    });
    try {
      await expect
        .poll(
          async () =>
            (
              await test.database.db
                .selectFrom('projection_checkpoints')
                .select('state')
                .where('name', '=', 'signals')
                .executeTakeFirst()
            )?.state,
          { timeout: 20_000 },
        )
        .toBe('failed');
    } finally {
      await workers.stop();
    }
    const checkpoint = await test.database.db
      .selectFrom('projection_checkpoints')
      .selectAll()
      .where('name', '=', 'signals')
      .executeTakeFirstOrThrow();
    expect(checkpoint).toMatchObject({ position: first.position, error_position: second.position });
    expect(checkpoint.last_error).toMatch(
      /^UnprojectableEvent: signals: a row with the same key exists already \(Key \(org_id, incident_id, id\)=\(.*sig_twice\) already exists\.\)$/,
    );
    const stored = await test.database.db
      .selectFrom('incident_signals')
      .select('id')
      .where('org_id', '=', orgId)
      .execute();
    expect(stored).toEqual([{ id: 'sig_twice' }]);
  });
});
