import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CommandMetrics } from '../commands/index.ts';

export interface ProjectionLag {
  name: string;
  /** Events after the projection's checkpoint. */
  lag: number;
  /** Age of the oldest event not projected yet. */
  lagSeconds: number;
}

/**
 * The service's Prometheus metrics, in a registry of its own (so several apps can live in one test
 * process). Implements the command handler's CommandMetrics.
 */
export class ServiceMetrics implements CommandMetrics {
  readonly registry = new Registry();
  private readonly requestDuration: Histogram<'method' | 'route' | 'status_code'>;
  private readonly commands: Counter<'type' | 'outcome'>;
  private readonly appendSeconds: Histogram;
  private readonly retries: Counter;
  private readonly unconfirmed: Counter<'reason'>;
  private lagSource: (() => Promise<ProjectionLag[]>) | null = null;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'its_' });
    this.requestDuration = new Histogram({
      name: 'its_http_request_duration_seconds',
      help: 'HTTP request latency by route, method and status',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    this.commands = new Counter({
      name: 'its_commands_total',
      help: 'Commands handled, by type and outcome',
      labelNames: ['type', 'outcome'],
      registers: [this.registry],
    });
    this.appendSeconds = new Histogram({
      name: 'its_event_append_duration_seconds',
      help: 'Latency of appends to the event store',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [this.registry],
    });
    this.retries = new Counter({
      name: 'its_command_concurrency_retries_total',
      help: 'Commands re-decided after losing an append race',
      registers: [this.registry],
    });
    this.unconfirmed = new Counter({
      name: 'its_read_your_writes_unconfirmed_total',
      help: 'Writes answered 202 because their visibility could not be awaited, by reason',
      labelNames: ['reason'],
      registers: [this.registry],
    });
    let lags: Promise<ProjectionLag[]> | null = null;
    // Both lag gauges read one status per scrape; a scrape while the database is down shows no lag rather than failing.
    const currentLags = () =>
      (lags ??= (this.lagSource?.() ?? Promise.resolve([]))
        .catch((): ProjectionLag[] => [])
        .finally(() => {
          lags = null;
        }));
    new Gauge({
      name: 'its_projection_lag_events',
      help: 'Events after each projection checkpoint',
      labelNames: ['projection'],
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const { name, lag } of await currentLags()) this.set({ projection: name }, lag);
      },
    });
    new Gauge({
      name: 'its_projection_lag_seconds',
      help: 'Age of the oldest event each projection has not applied yet',
      labelNames: ['projection'],
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const { name, lagSeconds } of await currentLags()) this.set({ projection: name }, lagSeconds);
      },
    });
  }

  readYourWritesUnconfirmed(reason: 'cannot_listen'): void {
    this.unconfirmed.inc({ reason });
  }

  /** Where the held-back gauges read from at scrape time (the PostgreSQL event store only). */
  setHeldBackSource(source: () => Promise<{ events: number; seconds: number }>): void {
    const read = () => source().catch(() => ({ events: 0, seconds: 0 }));
    new Gauge({
      name: 'its_events_held_back',
      help: 'Events committed but not yet readable, behind an older transaction still running',
      registers: [this.registry],
      async collect() {
        this.set((await read()).events);
      },
    });
    new Gauge({
      name: 'its_events_held_back_seconds',
      help: 'Age of the oldest event committed but not yet readable',
      registers: [this.registry],
      async collect() {
        this.set((await read()).seconds);
      },
    });
  }

  /** Where the projection lag gauge reads from at scrape time. */
  setProjectionLagSource(source: () => Promise<ProjectionLag[]>): void {
    this.lagSource = source;
  }

  observeRequest(method: string, route: string, statusCode: number, seconds: number): void {
    this.requestDuration.observe({ method, route, status_code: String(statusCode) }, seconds);
  }

  commandDone(type: string, outcome: string): void {
    this.commands.inc({ type, outcome });
  }

  appendDuration(seconds: number): void {
    this.appendSeconds.observe(seconds);
  }

  retry(): void {
    this.retries.inc();
  }
}
