import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type DeliveryOutcome = 'succeeded' | 'retrying' | 'failed';

/** The webhook figures, registered in the service's registry (src/app/metrics.ts serves it). */
export class WebhookMetrics {
  private readonly deliveries: Counter<'outcome'>;
  private readonly attemptSeconds: Histogram;

  constructor(registry: Registry, backlog: () => Promise<{ endpointId: string; pending: number }[]>) {
    this.deliveries = new Counter({
      name: 'its_webhook_deliveries_total',
      help: 'Webhook attempts by what came of them: succeeded, retrying (failed, tried again later), failed (given up)',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.attemptSeconds = new Histogram({
      name: 'its_webhook_attempt_duration_seconds',
      help: 'Latency of webhook attempts, from the request to the end of the answer',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15],
      registers: [registry],
    });
    new Gauge({
      name: 'its_webhook_backlog',
      help: 'Pending deliveries per webhook endpoint',
      labelNames: ['endpoint'],
      registers: [registry],
      async collect() {
        this.reset();
        // A scrape while the database is down shows no backlog rather than failing.
        const rows = await backlog().catch(() => []);
        for (const { endpointId, pending } of rows) this.set({ endpoint: endpointId }, pending);
      },
    });
  }

  delivered(outcome: DeliveryOutcome): void {
    this.deliveries.inc({ outcome });
  }

  attempted(seconds: number): void {
    this.attemptSeconds.observe(seconds);
  }
}
