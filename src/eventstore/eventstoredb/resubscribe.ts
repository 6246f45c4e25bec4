/**
 * The parts of a self-healing `$all` subscription that need no server: where to resume, how long
 * to wait before trying again, and when a silent subscription counts as dead.
 */
import { comparePositions } from '../port.ts';

export const FIRST_RETRY_MS = 100;
export const MAX_RETRY_MS = 5_000;
export const DEFAULT_LIVENESS_MS = 60_000;

/**
 * Where a resubscription starts (exclusive) and the guard against repeats. It moves forward only:
 * to each event handed to the consumer, and to each server checkpoint once every event before
 * that checkpoint has been handed over.
 */
export class ResumeCursor {
  constructor(private current: string | null) {}

  get position(): string | null {
    return this.current;
  }

  /** Moves to `position` and returns true when it is after the cursor; false for a repeat or an older place. */
  advanceTo(position: string): boolean {
    if (this.current !== null && comparePositions(position, this.current) <= 0) return false;
    this.current = position;
    return true;
  }
}

/**
 * Delay before resubscription number `failures` (0 for the first after a healthy run): the ceiling
 * doubles from 100 ms to 5 s, and the delay is drawn from the upper half of it so that many
 * subscribers dropped at once do not come back in step.
 */
export function resubscribeDelay(failures: number, random: () => number = Math.random): number {
  const ceiling = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.max(0, failures));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * Calls `onSilence` once when nothing was heard for `timeoutMs` while we were waiting on the
 * server. Time spent paused (the consumer holding an event) does not count: a slow consumer is
 * not a dead subscription.
 */
export class LivenessWatchdog {
  private lastHeard: number;
  private paused = false;
  private fired = false;
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(
    private readonly timeoutMs: number,
    private readonly onSilence: () => void,
    private readonly now: () => number = Date.now,
  ) {
    this.lastHeard = now();
    this.timer = setInterval(() => this.check(), Math.max(10, Math.floor(timeoutMs / 4)));
    this.timer.unref();
  }

  heard(): void {
    this.lastHeard = this.now();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.lastHeard = this.now();
  }

  check(): void {
    if (this.fired || this.paused || this.now() - this.lastHeard < this.timeoutMs) return;
    this.fired = true;
    this.onSilence();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
