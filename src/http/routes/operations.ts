import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createHash, timingSafeEqual } from 'node:crypto';
import { projectionStatus } from '../../../projections/index.ts';
import type { Runtime } from '../../app/runtime.ts';
import { pingDatabase } from '../../db/database.ts';
import { heldBackEvents } from '../../eventstore/postgres/held-back.ts';
import { RETRY_AFTER_SECONDS, unauthenticated } from '../errors.ts';
import { TAGS } from '../schemas.ts';

/** A readiness probe answers quickly, whatever hangs behind it. */
const CHECK_TIMEOUT_MS = 2_000;

const tags = TAGS.operations;

const Dependency = z.object({ status: z.enum(['up', 'down']), error: z.string().optional() });
const Readiness = z
  .object({
    status: z.enum(['ready', 'unavailable']),
    eventStore: Dependency,
    database: Dependency,
    heldBack: z
      .object({ events: z.number().int(), seconds: z.number() })
      .optional()
      .describe(
        'events committed but not yet readable (an older transaction still runs), and the age of the oldest; PostgreSQL event store only',
      ),
    projections: z.array(
      z.object({
        name: z.string(),
        lag: z.number().int().describe('events behind'),
        lagSeconds: z.number(),
        state: z.string(),
      }),
    ),
  })
  .meta({ id: 'Readiness' });

/** Compares two secrets in constant time (their hashes, so their lengths leak nothing either). */
function sameSecret(given: string, expected: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

function withTimeout<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not answer within ${CHECK_TIMEOUT_MS} ms`)),
      CHECK_TIMEOUT_MS,
    );
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

async function check(work: () => Promise<unknown>, what: string): Promise<z.infer<typeof Dependency>> {
  try {
    await withTimeout(work(), what);
    return { status: 'up' };
  } catch (error) {
    return { status: 'down', error: error instanceof Error ? error.message.slice(0, 200) : String(error) };
  }
}

/** Liveness, readiness and metrics: public, never rate limited. */
export const operationsRoutes: FastifyPluginAsyncZod<{ runtime: Runtime }> = async (app, { runtime }) => {
  const open = { operation: 'public', rateLimit: false } as const;

  app.get(
    '/health/live',
    {
      config: open,
      schema: {
        tags,
        operationId: 'live',
        summary: '200 while the process runs',
        response: { 200: z.object({ status: z.literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/health/ready',
    {
      config: open,
      schema: {
        tags,
        operationId: 'ready',
        summary: "200 when the event store and the database answer, else 503; with each projection's lag",
        response: { 200: Readiness, 503: Readiness },
      },
    },
    async (_request, reply) => {
      const [eventStore, database] = await Promise.all([
        check(() => runtime.store.ping(), 'the event store'),
        check(() => pingDatabase(runtime.database), 'the database'),
      ]);
      const projections =
        eventStore.status === 'up' && database.status === 'up'
          ? await withTimeout(projectionStatus(runtime.database, runtime.store), 'projection status').catch(
              () => [],
            )
          : [];
      const ready = eventStore.status === 'up' && database.status === 'up';
      const heldBack =
        ready && runtime.store.kind === 'postgres'
          ? await withTimeout(heldBackEvents(runtime.database.db), 'held-back events').catch(() => undefined)
          : undefined;
      if (!ready) reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS));
      return {
        status: ready ? ('ready' as const) : ('unavailable' as const),
        eventStore,
        database,
        ...(heldBack ? { heldBack } : {}),
        projections: projections.map((projection) => ({
          name: projection.name,
          lag: projection.lag,
          lagSeconds: projection.lagSeconds,
          state: projection.state,
        })),
      };
    },
  );

  app.get(
    '/metrics',
    {
      config: open,
      schema: {
        tags,
        operationId: 'metrics',
        summary: 'Prometheus metrics (text exposition format)',
        description:
          'Open, unless the server sets METRICS_TOKEN: then `Authorization: Bearer <METRICS_TOKEN>` (401 without it).',
        response: {
          200: {
            description: 'Prometheus text exposition format',
            content: { 'text/plain': { schema: z.string() } },
          },
        },
      },
    },
    async (request, reply) => {
      const expected = runtime.config.metricsToken;
      if (expected !== undefined && !sameSecret(request.headers.authorization ?? '', `Bearer ${expected}`))
        throw unauthenticated('/metrics needs Authorization: Bearer <METRICS_TOKEN>');
      reply.type(runtime.metrics.registry.contentType);
      return runtime.metrics.registry.metrics();
    },
  );
};
