import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { PROJECTION_NAMES, projectionStatus, requestRebuild } from '../../../projections/index.ts';
import type { Runtime } from '../../app/runtime.ts';
import { notFound } from '../errors.ts';
import { NullableTimestamp, TAGS } from '../schemas.ts';

const tags = TAGS.admin;

const ProjectionState = z
  .object({
    name: z.string(),
    position: z.string().nullable().describe('checkpoint: the position of the last event applied'),
    lag: z.number().int().describe('events after the checkpoint'),
    lagSeconds: z.number().describe('age of the oldest event not applied yet'),
    state: z.enum(['running', 'standby', 'rebuilding', 'failed', 'idle']),
    lastError: z.string().nullable(),
    errorPosition: z.string().nullable(),
    eventsProcessed: z.number().int(),
    rebuildRequestedAt: NullableTimestamp,
    rebuildDone: z.number().int(),
    rebuildTotal: z.number().int(),
    rebuiltAt: NullableTimestamp,
  })
  .meta({ id: 'ProjectionState' });

/** Projection status and rebuilds, for `its_admin` tokens. */
export const adminRoutes: FastifyPluginAsyncZod<{ runtime: Runtime }> = async (app, { runtime }) => {
  app.get(
    '/admin/projections',
    {
      config: { operation: 'admin' },
      schema: {
        tags,
        operationId: 'listProjections',
        summary: 'Each projection: checkpoint, lag, state, last error',
        response: { 200: z.object({ projections: z.array(ProjectionState) }) },
      },
    },
    async () => {
      return { projections: await projectionStatus(runtime.database, runtime.store) };
    },
  );

  app.post(
    '/admin/projections/:name/rebuild',
    {
      config: { operation: 'admin' },
      schema: {
        tags,
        operationId: 'rebuildProjection',
        summary: 'Replay a projection from the start, without taking the read API down',
        params: z.object({ name: z.string().min(1).max(100) }),
        response: { 202: z.object({ name: z.string(), rebuildRequested: z.literal(true) }) },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      if (!PROJECTION_NAMES.includes(name) || !(await requestRebuild(runtime.database, name))) {
        throw notFound(`no projection named ${name}; known: ${PROJECTION_NAMES.join(', ')}`);
      }
      reply.code(202);
      return { name, rebuildRequested: true as const };
    },
  );
};
