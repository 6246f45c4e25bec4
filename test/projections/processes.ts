import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { PROJECTION_NAMES } from '../../projections/index.ts';
import { openTestDatabase, serverUrl, type TestDatabase } from '../support/database.ts';
import { eventStoreEnv } from '../support/eventstore.ts';
import { createAuditTable, type PlannedAppend } from './fixtures.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const script = fileURLToPath(new URL('./worker-process.ts', import.meta.url));

export interface WorkerProcess {
  child: ChildProcess;
  pid: number;
  /** Parsed log lines so far. */
  lines: Record<string, unknown>[];
  /** Resolves with the first line (already seen or to come) that matches. */
  waitForLine(
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** Resolves once this process has taken the lead of `projection`. */
  waitForLead(projection: string): Promise<Record<string, unknown>>;
  /** The projections this process has taken the lead of, in order. */
  led(): string[];
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

/** The projections a worker process carries: the catalog's and the tests' audit projection. */
export const ALL = [...PROJECTION_NAMES, 'audit'];

/**
 * A describe block of tests that run worker processes: they share a server database (PGlite cannot
 * be shared between processes, so without DATABASE_URL they are skipped, saying so) with the audit
 * table, and every worker still running is killed after them. `setup` is filled in before the tests run.
 */
export function describeWorkerProcesses(
  title: string,
  tests: (setup: { readonly test: TestDatabase }) => void,
): void {
  if (!serverUrl)
    console.warn(`${title}: SKIPPED (DATABASE_URL is not set; PGlite cannot be shared between processes)`);
  describe.skipIf(!serverUrl)(title, () => {
    let test: TestDatabase | undefined;
    beforeAll(async () => {
      test = await openTestDatabase({ kind: 'server' });
      await createAuditTable(test.database);
    });
    afterAll(async () => {
      killAllWorkers();
      await test?.cleanup();
    });
    tests({
      get test() {
        if (!test) throw new Error('the worker processes database is not open yet');
        return test;
      },
    });
  });
}

const running = new Set<ChildProcess>();

/** Kills every worker still running: for afterAll, so a test that times out leaves no process behind. */
export function killAllWorkers(): void {
  for (const child of running) child.kill('SIGKILL');
}

/** Starts `worker-process.ts` on the server database at `url` (and the EventStoreDB at `eventStoreUrl`, if given). */
export function spawnWorker(url: string, batchSize: number, eventStoreUrl?: string): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', script, url, String(batchSize)], {
    cwd: root,
    env: { ...process.env, ...eventStoreEnv(eventStoreUrl) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  const lines: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const complete = buffered.split('\n');
    buffered = complete.pop()!;
    for (const line of complete.filter(Boolean)) {
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ msg: line });
      }
    }
    waiters.forEach((waiter) => waiter());
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then(() => waiters.forEach((waiter) => waiter()));
  let done = false;
  void exited.then(() => (done = true));
  const worker: WorkerProcess = {
    child,
    pid: child.pid!,
    lines,
    waitForLine(match, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = lines.find(match);
          if (found) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(found);
          } else if (done) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(
              new Error(
                `worker ${child.pid} exited before the expected line; stderr: ${stderr.slice(-2000)}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `worker ${child.pid}: no expected line within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`,
            ),
          );
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    waitForLead: (projection) =>
      worker.waitForLine((line) => line.msg === 'leading projection' && line.projection === projection),
    led: () =>
      lines.filter((line) => line.msg === 'leading projection').map((line) => String(line.projection)),
    exited,
    async kill(signal) {
      if (!done) child.kill(signal);
      return exited;
    },
  };
  return worker;
}

/** Each named projection's events_processed. */
export async function eventsProcessed(
  database: Database,
  names: readonly string[],
): Promise<Record<string, number>> {
  const rows = await database.db
    .selectFrom('projection_checkpoints')
    .select(['name', 'events_processed'])
    .where('name', 'in', names)
    .execute();
  return Object.fromEntries(
    names.map((name) => [name, Number(rows.find((row) => row.name === name)?.events_processed ?? 0)]),
  );
}

/** The audit projection applied each of the log's events exactly once, and every projection counted each once. */
export async function expectEachEventAppliedOnce(
  database: Database,
  log: readonly PlannedAppend[],
  names: readonly string[],
  processedBefore: Record<string, number>,
): Promise<void> {
  const ids = log.flatMap((append) => append.events.map((event) => event.eventId));
  const { rows } = await sql<{ events: string; least: number; most: number }>`
    select count(*) as events, min(applied) as least, max(applied) as most from projection_audit where event_id = any(${ids}::text[])`.execute(
    database.db,
  );
  expect(rows[0]).toEqual({ events: String(ids.length), least: 1, most: 1 });
  const after = await eventsProcessed(database, names);
  expect(Object.fromEntries(names.map((name) => [name, after[name]! - processedBefore[name]!]))).toEqual(
    Object.fromEntries(names.map((name) => [name, ids.length])),
  );
}
