import { Presets, SingleBar } from 'cli-progress';
import type { Logger } from 'pino';
import type { Database } from '../src/db/database.ts';
import type { EventStore } from '../src/eventstore/port.ts';
import { PROJECTION_NAMES } from './catalog.ts';
import { checkpointRows } from './checkpoints.ts';
import { ProjectionBusy, rebuildProjections } from './index.ts';
import { projectionStatus, requestRebuild } from './status.ts';

/** What the projection commands need from the CLI's runtime. */
export interface ProjectionCliRuntime {
  database: Database;
  store: EventStore;
  logger?: Logger;
}

/** How often a rebuild run by another process is checked on. */
const FOLLOW_INTERVAL_MS = 500;

/** `its projections status`: one line per projection; exit code 1 when one has failed. */
export async function runStatusCommand(runtime: ProjectionCliRuntime): Promise<void> {
  const statuses = await projectionStatus(runtime.database, runtime.store);
  const header = ['PROJECTION', 'STATE', 'POSITION', 'LAG', 'LAG (s)', 'PROCESSED', 'LAST ERROR'];
  const lines = statuses.map((status) => [
    status.name,
    status.state === 'rebuilding' ? `rebuilding ${status.rebuildDone}/${status.rebuildTotal}` : status.state,
    status.position ?? '-',
    String(status.lag),
    status.lagSeconds.toFixed(1),
    String(status.eventsProcessed),
    status.lastError === null
      ? '-'
      : `${status.lastError}${status.errorPosition ? ` (at ${status.errorPosition})` : ''}`,
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...lines.map((line) => line[column]!.length)),
  );
  const numeric = new Set([3, 4, 5]);
  for (const line of [header, ...lines]) {
    const cells = line.map((cell, column) =>
      column === line.length - 1
        ? cell
        : numeric.has(column)
          ? cell.padStart(widths[column]!)
          : cell.padEnd(widths[column]!),
    );
    process.stdout.write(`${cells.join('  ')}\n`);
  }
  if (statuses.some((status) => status.state === 'failed')) process.exitCode = 1;
}

/**
 * `its projections rebuild [names…]`: rebuilds the projections (all when none is named) together,
 * in one pass over the log. Does it here for those no other process leads; asks the leader of each
 * other one and follows its progress. Sets `process.exitCode` when something failed (2: unknown name).
 */
export async function runRebuildCommand(runtime: ProjectionCliRuntime, names: string[]): Promise<void> {
  const unknown = names.filter((name) => !PROJECTION_NAMES.includes(name));
  if (unknown.length > 0) {
    process.stderr.write(`unknown projection ${unknown.join(', ')}; known: ${PROJECTION_NAMES.join(', ')}\n`);
    process.exitCode = 2;
    return;
  }
  const chosen = names.length > 0 ? names : [...PROJECTION_NAMES];
  const progress = progressReporter(chosen.join(', '));
  // Each projection reports its own count; the bar shows the one furthest on.
  let shown = 0;
  const onProgress = (done: number, total: number) => {
    shown = Math.max(shown, done);
    progress.update(shown, Math.max(total, shown));
  };
  const outcomes = await rebuildProjections({
    database: runtime.database,
    store: runtime.store,
    names: chosen,
    onProgress,
    logger: runtime.logger,
  }).catch((error: unknown) =>
    chosen.map((): PromiseSettledResult<void> => ({ status: 'rejected', reason: error })),
  );
  const lines: string[] = [];
  const elsewhere: string[] = [];
  let failures = 0;
  for (const [index, outcome] of outcomes.entries()) {
    const name = chosen[index]!;
    if (outcome.status === 'fulfilled') lines.push(`${name}: rebuilt`);
    else if (outcome.reason instanceof ProjectionBusy) elsewhere.push(name);
    else {
      failures++;
      lines.push(`${name}: rebuild failed: ${errorMessage(outcome.reason)}`);
    }
  }
  if (lines.length > 0) progress.finish(lines.join('\n'), failures === 0);
  for (const name of elsewhere) {
    const followed = progressReporter(name);
    followed.note(`${name}: another process leads it; asked it to rebuild`);
    try {
      const outcome = await requestAndFollow(runtime.database, name, followed.update);
      if (outcome !== null) throw new Error(outcome);
      followed.finish(`${name}: rebuilt by its leader`, true);
    } catch (error) {
      failures++;
      followed.finish(`${name}: rebuild failed: ${errorMessage(error)}`, false);
    }
  }
  if (failures > 0) process.exitCode = 1;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Requests the rebuild and follows it in projection_checkpoints; null on success, else the error. */
async function requestAndFollow(
  database: Database,
  name: string,
  onProgress: (done: number, total: number) => void,
): Promise<string | null> {
  await requestRebuild(database, name);
  const checkpoint = async () => (await checkpointRows(database, [name]))[0]!;
  const requestedAt = (await checkpoint()).rebuild_requested_at;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, FOLLOW_INTERVAL_MS));
    const row = await checkpoint();
    if (row.state === 'rebuilding') onProgress(Number(row.rebuild_done), Number(row.rebuild_total));
    // The leader clears the request when it swaps the tables in, or when the rebuild fails.
    if (row.rebuild_requested_at === null) {
      const rebuilt =
        row.rebuilt_at !== null && requestedAt !== null && row.rebuilt_at.getTime() >= requestedAt.getTime();
      return rebuilt ? null : (row.last_error ?? 'the rebuild did not complete');
    }
  }
}

export interface ProgressReporter {
  update(done: number, total: number): void;
  note(message: string): void;
  finish(message: string, succeeded: boolean): void;
}

/** A progress bar on a terminal; elsewhere (logs, CI) a plain line at most once a second. */
export function progressReporter(name: string): ProgressReporter {
  const startedAt = performance.now();
  const rate = (done: number) => Math.round(done / Math.max(0.001, (performance.now() - startedAt) / 1000));
  const eta = (done: number, total: number) =>
    done >= total ? '0s' : rate(done) > 0 ? `${Math.ceil((total - done) / rate(done))}s` : '?';
  if (process.stdout.isTTY) {
    const bar = new SingleBar(
      {
        format: `${name.padEnd(16)} [{bar}] {value}/{total} events | {rate} events/s | ETA {remaining}`,
        hideCursor: true,
      },
      Presets.shades_classic,
    );
    let started = false;
    return {
      update(done, total) {
        if (!started) {
          bar.start(total, done, { rate: 0, remaining: '?' });
          started = true;
        }
        bar.setTotal(total);
        bar.update(done, { rate: rate(done), remaining: eta(done, total) });
      },
      note(message) {
        if (!started) process.stdout.write(`${message}\n`);
      },
      finish(message, succeeded) {
        if (started) {
          // The live side may have taken the last stretch: a success ends full.
          if (succeeded) bar.update(bar.getTotal(), { remaining: '0s' });
          bar.stop();
        }
        process.stdout.write(`${message}\n`);
      },
    };
  }
  let lastLine = 0;
  return {
    update(done, total) {
      const now = performance.now();
      if (now - lastLine < 1000 && done < total) return;
      lastLine = now;
      process.stdout.write(
        `${name}: ${done}/${total} events (${total > 0 ? Math.floor((100 * done) / total) : 100}%), ${rate(done)} events/s, ETA ${eta(done, total)}\n`,
      );
    },
    note(message) {
      process.stdout.write(`${message}\n`);
    },
    finish(message) {
      process.stdout.write(`${message}\n`);
    },
  };
}
