import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Runtime } from '../../app/runtime.ts';
import { verifyIncident } from '../../audit/verify.ts';
import { notFound } from '../errors.ts';
import { IncidentParams, TAGS } from '../schemas.ts';

const Hash = z.string().regex(/^[0-9a-f]{64}$/);

/** AUDIT.md's answer, field for field. */
export const StreamVerification = z
  .object({
    streamName: z.string(),
    events: z.number().int().describe('events in the stream'),
    unchained: z
      .number()
      .int()
      .describe('events before the first hashed one (written before the chain existed)'),
    valid: z.boolean(),
    headVersion: z.number().int().describe('version of the last event; -1 when the stream is empty'),
    headHash: Hash.nullable().describe("the last event's stored hash"),
    firstInvalidVersion: z.number().int().nullable(),
    reason: z.string().nullable().describe('why the chain breaks at firstInvalidVersion'),
    readModel: z.object({
      version: z.number().int().nullable().describe("the incident row's version; null when there is no row"),
      matches: z.boolean().describe('folding the stream gives the row the read model serves'),
    }),
  })
  .meta({ id: 'StreamVerification' });

/** Tamper evidence (AUDIT.md): recompute an incident's hash chain and hold it against the read model. */
export const auditRoutes: FastifyPluginAsyncZod<{ runtime: Runtime }> = async (app, { runtime }) => {
  app.get(
    '/api/orgs/:orgId/incidents/:incidentId/verify',
    {
      config: { operation: 'readEvents' },
      schema: {
        tags: TAGS.events,
        summary: "Verify an incident's hash chain",
        description:
          'Recomputes every hash of the stream (AUDIT.md). `valid` is false when a hash does not match, a version is missing, or the stream ends before the version the read model recorded (a deleted tail). Waits up to CONSISTENCY_TIMEOUT_MS for the read models to reach the stream before comparing.',
        params: IncidentParams,
        response: { 200: StreamVerification },
      },
    },
    async (request) => {
      const { orgId, incidentId } = request.params;
      const verification = await verifyIncident(runtime, orgId, incidentId, (position) =>
        runtime.progress.waitFor(position, runtime.config.consistencyTimeoutMs).catch(() => false),
      );
      if (!verification) throw notFound(`incident ${incidentId} not found`);
      return verification;
    },
  );
};
