import { randomInt } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { EventStore } from '../../src/eventstore/port.ts';
import { openPostgres, type Database } from '../../src/db/database.ts';
import { PostgresEventStore } from '../../src/eventstore/postgres/index.ts';
import { runRebuildCommand, runStatusCommand } from '../../projections/cli.ts';
import { PROJECTION_NAMES, startProjectionWorkers, type ProjectionWorkers } from '../../projections/index.ts';
import { databaseLabel, openTestDatabase, type TestDatabase } from '../support/database.ts';
import { appendLog, countEvents, dumpReadModels, generateLog, waitForCheckpoints } from './fixtures.ts';
import { output } from '../support/output.ts';

describe(`the projection CLI commands on ${databaseLabel}`, () => {
  let test: TestDatabase;
  let store: EventStore;
  let workers: ProjectionWorkers;
  let total: number;
  beforeAll(async () => {
    test = await openTestDatabase();
    store = test.store;
    workers = startProjectionWorkers({ database: test.database, store });
    const seed = randomInt(2 ** 31);
    const log = generateLog({ seed, orgs: [`cli${seed}`], incidents: 10, events: 200 });
    total = countEvents(log);
    await waitForCheckpoints(test.database, await appendLog(store, log));
  });
  afterAll(async () => {
    await workers?.stop();
    await test?.cleanup();
  });
  afterEach(() => {
    process.exitCode = undefined;
  });

  it('status prints one line per projection with its state, position and lag', async () => {
    const { stdout } = await output(() => runStatusCommand({ database: test.database, store }));
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^PROJECTION\s+STATE\s+POSITION\s+LAG\s+LAG \(s\)\s+PROCESSED\s+LAST ERROR$/);
    expect(lines.slice(1).map((line) => line.split(/\s+/).slice(0, 2))).toEqual(
      PROJECTION_NAMES.map((name) => [name, 'running']),
    );
    expect(process.exitCode).toBeUndefined();
  });

  it('rebuild runs through this process’s leader and reports plain lines off a terminal', async () => {
    const before = await dumpReadModels(test.database);
    const { stdout } = await output(() =>
      runRebuildCommand({ database: test.database, store }, ['incidents', 'actions']),
    );
    expect(stdout).toMatch(
      new RegExp(`incidents, actions: ${total}/${total} events \\(100%\\), \\d+ events/s, ETA 0s`),
    );
    expect(stdout).toContain('incidents: rebuilt\n');
    expect(stdout).toContain('actions: rebuilt\n');
    expect(await dumpReadModels(test.database)).toEqual(before);
    expect(process.exitCode).toBeUndefined();
  });

  it('rebuild asks the leader in another process, and follows it to the end', async () => {
    // Another process: on a server a second pool (its own sessions); on PGlite a handle that never gets the lock.
    const elsewhere: Database = test.url
      ? openPostgres(test.url)
      : { ...test.database, tryLock: async () => null };
    try {
      const { stdout } = await output(() =>
        runRebuildCommand({ database: elsewhere, store: new PostgresEventStore(elsewhere) }, ['signals']),
      );
      expect(stdout).toContain('signals: another process leads it; asked it to rebuild\n');
      expect(stdout).toContain('signals: rebuilt by its leader\n');
      expect(process.exitCode).toBeUndefined();
    } finally {
      if (elsewhere !== test.database && test.url) await elsewhere.close();
    }
  });

  it('rebuild refuses an unknown projection with exit code 2', async () => {
    const { stderr } = await output(() => runRebuildCommand({ database: test.database, store }, ['nope']));
    expect(stderr).toMatch(/unknown projection nope; known: incidents, signals, actions, slo_violations/);
    expect(process.exitCode).toBe(2);
  });
});
