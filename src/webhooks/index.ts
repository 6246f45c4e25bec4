import { pino, type Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from '../config.ts';
import type { Database } from '../db/database.ts';
import type { EventStore } from '../eventstore/port.ts';
import { AddressGuard, type Resolver } from './address-guard.ts';
import { WebhookEndpoints } from './endpoints.ts';
import { DeliveryFeed } from './feed.ts';
import { WebhookMetrics } from './metrics.ts';
import { SecretBox } from './secrets.ts';
import { DeliveryWorker, type DeliveryWorkerOptions } from './worker.ts';

export { AddressGuard, type Resolver } from './address-guard.ts';
export { WebhookEndpoints, type EndpointView, type DeliveryView } from './endpoints.ts';

/** What tests tune: the resolver, the retry schedule, the timings. */
export interface WebhookTuning extends Partial<
  Omit<DeliveryWorkerOptions, 'endpoints' | 'guard' | 'metrics' | 'logger'>
> {
  resolver?: Resolver;
  sweepMs?: number;
}

export interface Webhooks {
  endpoints: WebhookEndpoints;
  guard: AddressGuard;
  /** Endpoints or deliveries changed in this process (created, enabled, redeliver, replay): act now. */
  wake(): void;
  /** Starts the feed and the delivery worker in this process (roles that run workers). */
  startWorker(): void;
  stop(): Promise<void>;
}

export function openWebhooks(options: {
  config: Config;
  database: Database;
  store: EventStore;
  registry: Registry;
  logger?: Logger | undefined;
  tuning?: WebhookTuning | undefined;
}): Webhooks {
  const { resolver, sweepMs, ...workerTuning } = options.tuning ?? {};
  const box = new SecretBox(options.config.webhooks.secretKey);
  const endpoints = new WebhookEndpoints(options.database.db, options.store, box);
  const guard = new AddressGuard(options.config.webhooks.allowPrivate, resolver);
  const metrics = new WebhookMetrics(options.registry, () => endpoints.backlog());
  const logger = options.logger ?? pino({ level: 'silent' });
  let worker: DeliveryWorker | null = null;
  let feed: DeliveryFeed | null = null;
  return {
    endpoints,
    guard,
    wake: () => {
      feed?.notify();
      worker?.wake();
    },
    startWorker() {
      if (worker) return;
      worker = new DeliveryWorker({ endpoints, guard, metrics, logger, ...workerTuning });
      const started = worker;
      feed = new DeliveryFeed({
        endpoints,
        store: options.store,
        logger,
        onQueued: () => started.wake(),
        ...(sweepMs !== undefined ? { sweepMs } : {}),
      });
      worker.start();
      feed.start();
    },
    async stop() {
      await feed?.stop();
      await worker?.stop();
    },
  };
}
