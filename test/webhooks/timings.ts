/** Timings that let retries, leases and timeouts run in a test's seconds. */
export const FAST = {
  pollMs: 50,
  sweepMs: 300,
  retryScheduleMs: [100, 200, 300, 400, 500, 600, 700],
  leaseMs: 5000,
  timeoutMs: 2000,
} as const;
