import type { Database } from '../src/db/database.ts';
import { comparePositions } from '../src/eventstore/port.ts';
import { PROJECTION_NAMES } from './catalog.ts';
import { checkpointPositions } from './checkpoints.ts';
import { PROGRESS_CHANNEL, listenForNotices } from './notices.ts';

/**
 * Read-your-writes: knows how far every projection has got, woken by their commits (in this process
 * and, through NOTIFY, in any other), so a write can answer once the read models include it.
 */
export class ProjectionProgress {
  private readonly positions = new Map<string, string>();
  /** Each pending wait: checks its position, or settles it. */
  private readonly waiters = new Map<() => void, (reached: boolean) => void>();
  private readonly advanced = new Set<() => void>();
  private starting: Promise<void> | null = null;
  private unlisten: (() => Promise<void>) | null = null;

  constructor(
    private readonly database: Database,
    private readonly names: readonly string[] = PROJECTION_NAMES,
    private readonly options: { onCannotListen?: (error: unknown) => void } = {},
  ) {}

  /** Starts listening; `waitFor` calls it too, so calling it first only moves the set-up cost. */
  start(): Promise<void> {
    this.starting ??= this.open().catch((error: unknown) => {
      this.starting = null;
      throw error;
    });
    return this.starting;
  }

  private async open(): Promise<void> {
    // Listen before reading the checkpoints, so no commit falls between the two.
    this.unlisten = await listenForNotices(this.database, PROGRESS_CHANNEL, (payload) => {
      if (payload === null) {
        this.reload().catch(() => {});
        return;
      }
      const [name, position] = payload.split(' ');
      if (name !== undefined && position !== undefined) this.advance(name, position);
    });
    await this.reload();
  }

  private async reload(): Promise<void> {
    const rows = await checkpointPositions(this.database, this.names);
    for (const { name, position } of rows) if (position !== null) this.advance(name, position);
  }

  private advance(name: string, position: string): void {
    if (!this.names.includes(name)) return;
    // Notices from several processes can arrive out of order: a checkpoint only moves forward.
    if (comparePositions(position, this.positions.get(name) ?? null) <= 0) return;
    this.positions.set(name, position);
    for (const check of [...this.waiters.keys()]) check();
    for (const listener of [...this.advanced]) listener();
  }

  /** Calls `listener` (synchronously, so it should only take note) whenever a checkpoint moves; returns the unsubscribe. */
  onAdvance(listener: () => void): () => void {
    this.advanced.add(listener);
    return () => this.advanced.delete(listener);
  }

  /** The lowest checkpoint: every projection includes every event up to it; null while one has none known. */
  lowest(): string | null {
    let low: string | null = null;
    for (const name of this.names) {
      const position = this.positions.get(name);
      if (position === undefined) return null;
      if (low === null || comparePositions(position, low) < 0) low = position;
    }
    return low;
  }

  /** True when every projection's checkpoint is at or past `position`. */
  reached(position: string): boolean {
    return this.names.every((name) => comparePositions(this.positions.get(name) ?? null, position) >= 0);
  }

  /** Resolves true once every projection has projected `position`, false after `timeoutMs` without. */
  async waitFor(position: string, timeoutMs: number): Promise<boolean> {
    await this.start().catch((error: unknown) => {
      this.options.onCannotListen?.(error);
      throw error;
    });
    if (this.reached(position)) return true;
    return new Promise<boolean>((resolve) => {
      const settle = (result: boolean) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(result);
      };
      const check = () => {
        if (this.reached(position)) settle(true);
      };
      const timer = setTimeout(() => settle(false), timeoutMs);
      this.waiters.set(check, settle);
    });
  }

  /** Stops listening; pending waits answer false at once. */
  async stop(): Promise<void> {
    for (const settle of [...this.waiters.values()]) settle(false);
    const starting = this.starting;
    this.starting = null;
    await starting?.catch(() => {});
    await this.unlisten?.();
    this.unlisten = null;
  }
}
