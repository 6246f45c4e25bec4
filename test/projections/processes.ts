import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { expect } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { eventStoreEnv } from '../support/eventstore.ts';
import type { PlannedAppend } from './fixtures.ts';

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
  /** The projections this process has taken the lead of, in order. */
  led(): string[];
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): Promise<number | null>;
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
  return {
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
    led: () =>
      lines.filter((line) => line.msg === 'leading projection').map((line) => String(line.projection)),
    exited,
    async kill(signal) {
      if (!done) child.kill(signal);
      return exited;
    },
  };
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
