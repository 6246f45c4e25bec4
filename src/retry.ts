/**
 * Waiting and trying again: the one `sleep`, the one way to join two stop signals, and the named
 * backoff policies of everything that retries (lost append races, the projection daemon's
 * subscription, the EventStoreDB resubscription, the live feed), so their timings can be read side
 * by side.
 */

/** Resolves after `ms`, or at once when `signal` aborts (or has already). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** A signal that aborts when either input does (AbortSignal.any needs Node 20.3); `release` unhooks it. */
export function linkSignals(
  first: AbortSignal,
  second: AbortSignal | undefined,
): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const abort = () => controller.abort();
  for (const signal of [first, second]) {
    if (signal?.aborted) controller.abort();
    signal?.addEventListener('abort', abort, { once: true });
  }
  return {
    signal: controller.signal,
    release() {
      first.removeEventListener('abort', abort);
      second?.removeEventListener('abort', abort);
    },
  };
}

/** How long to wait before retry number `attempt` (0 for the first), in milliseconds. */
export interface Backoff {
  readonly firstMs: number;
  readonly maxMs: number;
  /** The share of the ceiling drawn at random: 0 waits the ceiling, 1 anywhere below it. */
  readonly jitter: number;
  delayMs(attempt: number, random?: () => number): number;
}

/** A ceiling that doubles from `firstMs` to `maxMs`; the delay is its top `jitter` share, drawn at random. */
export function exponentialBackoff(policy: { firstMs: number; maxMs: number; jitter: number }): Backoff {
  const { firstMs, maxMs, jitter } = policy;
  return {
    firstMs,
    maxMs,
    jitter,
    delayMs(attempt, random = Math.random) {
      const ceiling = Math.min(maxMs, firstMs * 2 ** Math.max(0, attempt));
      return jitter === 0 ? ceiling : ceiling * (1 - jitter) + random() * ceiling * jitter;
    },
  };
}

/** After a lost append race: short, and fully jittered so racing writers do not collide again in lockstep. */
export const conflictBackoff = exponentialBackoff({ firstMs: 5, maxMs: 100, jitter: 1 });

/** The projection daemon's subscription while it keeps failing; it starts over once a batch gets through. */
export const subscriptionBackoff = exponentialBackoff({ firstMs: 250, maxMs: 5_000, jitter: 0 });

/**
 * An EventStoreDB `$all` resubscription: drawn from the upper half of the ceiling, so that many
 * subscribers dropped at once do not come back in step.
 */
export const resubscribeBackoff = exponentialBackoff({ firstMs: 100, maxMs: 5_000, jitter: 0.5 });

/** The live streams' feed of committed events (src/live/), resumed after its subscription or a store read fails. */
export const liveFeedBackoff = exponentialBackoff({ firstMs: 200, maxMs: 5_000, jitter: 0 });
