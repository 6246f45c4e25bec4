/** WEBHOOKS.md: a failed attempt is retried after these waits, then the delivery is `failed`. */
export const RETRY_SCHEDULE_MS: readonly number[] = [
  5_000,
  5 * 60_000,
  30 * 60_000,
  2 * 3_600_000,
  5 * 3_600_000,
  10 * 3_600_000,
  10 * 3_600_000,
];

/** An endpoint whose deliveries have all failed for this long is disabled. */
export const DISABLE_AFTER_MS = 5 * 24 * 3_600_000;

/** Jitter of ±10%, so endpoints that failed together do not retry in lockstep. */
const JITTER = 0.1;

/**
 * The wait before the next attempt after `failures` failed attempts in a row, or null when the
 * schedule is spent. `random` is in [0, 1).
 */
export function nextRetryDelay(
  failures: number,
  schedule: readonly number[] = RETRY_SCHEDULE_MS,
  random: number = Math.random(),
): number | null {
  const base = schedule[failures - 1];
  if (base === undefined) return null;
  return Math.round(base * (1 - JITTER + 2 * JITTER * random));
}
