/**
 * The parts of a self-healing `$all` subscription that need no server: where to resume, how long
 * to wait before trying again, and when a silent subscription counts as dead.
 */
import { resubscribeBackoff } from '../../retry.ts';
import { comparePositions, parsePosition } from '../port.ts';

export const FIRST_RETRY_MS = resubscribeBackoff.firstMs;
export const MAX_RETRY_MS = resubscribeBackoff.maxMs;
export const DEFAULT_LIVENESS_MS = 60_000;

/** Checkpoint parts at or above this are server bugs (KDB-710 sends 2^64-1): no real log is that long. */
export const UNTRUSTED_POSITION_PART = 2n ** 63n;

/**
 * Two places, kept apart: the last event handed to the consumer (events at or before it are
 * repeats and are dropped), and where a resubscription may start (that event, or a later server
 * checkpoint). A bad checkpoint can therefore only move the second, never hide an event.
 */
export class ResumeCursor {
  private lastDelivered: string | null;
  private resumeAfter: string | null;

  constructor(start: string | null) {
    this.lastDelivered = start;
    this.resumeAfter = start;
  }

  /** Where a resubscription starts (exclusive). */
  get position(): string | null {
    return this.resumeAfter;
  }

  get delivered(): string | null {
    return this.lastDelivered;
  }

  /** True (and remembered) when the event at `position` is new; false for a repeat or an older place. */
  deliver(position: string): boolean {
    if (this.lastDelivered !== null && comparePositions(position, this.lastDelivered) <= 0) return false;
    this.lastDelivered = position;
    if (comparePositions(position, this.resumeAfter) > 0) this.resumeAfter = position;
    return true;
  }

  /** Moves the resume position to a server checkpoint; refuses one no real log can reach. */
  checkpoint(position: string): boolean {
    const [commit, prepare] = parsePosition(position);
    if (commit >= UNTRUSTED_POSITION_PART || prepare >= UNTRUSTED_POSITION_PART) return false;
    if (comparePositions(position, this.resumeAfter) <= 0) return false;
    this.resumeAfter = position;
    return true;
  }

  /** A checkpoint beyond the head of the log is not trusted: resume after the last delivered event instead. */
  distrustBeyond(head: string | null): void {
    if (comparePositions(this.resumeAfter, head) > 0) this.resumeAfter = this.lastDelivered;
  }

  /** Whether the resume position came from a checkpoint rather than a delivered event. */
  get aheadOfDelivered(): boolean {
    return comparePositions(this.resumeAfter, this.lastDelivered) > 0;
  }
}

/**
 * Delay before resubscription number `failures` (0 for the first after a healthy run), in whole
 * milliseconds: `resubscribeBackoff`, from 100 ms to 5 s, drawn from the upper half of the ceiling.
 */
export function resubscribeDelay(failures: number, random: () => number = Math.random): number {
  return Math.round(resubscribeBackoff.delayMs(failures, random));
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

  /** Starts watching again after a silence turned out to be harmless. */
  rearm(): void {
    this.fired = false;
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
