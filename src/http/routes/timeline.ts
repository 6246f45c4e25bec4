import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Runtime } from '../../app/runtime.ts';
import { decodeCursor, encodeCursor } from '../../readmodel/cursor.ts';
import { findIncident } from '../../readmodel/incidents.ts';
import { responseTimes } from '../../readmodel/response-times.ts';
import { incidentTimeline } from '../../readmodel/timeline.ts';
import { notFound, validationFailed } from '../errors.ts';
import {
  IncidentParams,
  OrgParams,
  ResponseTimes,
  ResponseTimesQuery,
  TAGS,
  Timeline,
  TimelineQuery,
} from '../schemas.ts';

/** What a timeline cursor carries (inside its signature): whose timeline, and where the page ended. */
const TimelineCursor = z.object({
  org: z.string(),
  incident: z.string(),
  after: z.object({
    ts: z.string().regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/),
    version: z.number().int().min(0),
  }),
});

const DEFAULT_STATS_DAYS = 30;

/** The merged timeline of an incident, and how fast the org acknowledges and resolves. */
export const timelineRoutes: FastifyPluginAsyncZod<{ runtime: Runtime }> = async (app, { runtime }) => {
  const db = runtime.database.db;
  const cursorKey = runtime.config.cursorSecret;

  app.get(
    '/api/orgs/:orgId/incidents/:incidentId/timeline',
    {
      config: { operation: 'readIncidents' },
      schema: {
        tags: TAGS.incidents,
        summary: 'Actions, signals and SLO violations in one list, oldest first (by ts, then version)',
        params: IncidentParams,
        querystring: TimelineQuery,
        response: { 200: Timeline },
      },
    },
    async (request) => {
      const { orgId, incidentId } = request.params;
      const { limit, cursor } = request.query;
      let after: z.infer<typeof TimelineCursor>['after'] | undefined;
      if (cursor !== undefined) {
        const payload = TimelineCursor.safeParse(decodeCursor(cursorKey, cursor));
        if (!payload.success || payload.data.org !== orgId || payload.data.incident !== incidentId)
          throw validationFailed('the cursor is not one this API issued for this timeline', [
            { path: 'cursor', message: 'is invalid or was tampered with' },
          ]);
        after = payload.data.after;
      }
      const page = await incidentTimeline(db, orgId, incidentId, { limit, ...(after ? { after } : {}) });
      if (page.entries.length === 0 && after === undefined && !(await findIncident(db, orgId, incidentId)))
        throw notFound(`incident ${incidentId} not found`);
      return {
        entries: page.entries,
        nextCursor: page.next
          ? encodeCursor(cursorKey, { org: orgId, incident: incidentId, after: page.next })
          : null,
      };
    },
  );

  app.get(
    '/api/orgs/:orgId/stats/response-times',
    {
      config: { operation: 'readIncidents' },
      schema: {
        tags: TAGS.stats,
        summary: 'Time to acknowledge and to resolve (seconds) of the incidents created in [from, to)',
        description:
          'Without groupBy, one group keyed `all`. Cancelled incidents count in `cancelled` only. Percentiles are continuous (interpolated).',
        params: OrgParams,
        querystring: ResponseTimesQuery,
        response: { 200: ResponseTimes },
      },
    },
    async (request) => {
      const { orgId } = request.params;
      const { from: fromText, to: toText, ...rest } = request.query;
      const to = toText ?? new Date().toISOString();
      const from = fromText ?? new Date(Date.parse(to) - DEFAULT_STATS_DAYS * 86_400_000).toISOString();
      if (Date.parse(from) >= Date.parse(to))
        throw validationFailed('from must be before to', [{ path: 'from', message: 'is not before to' }]);
      return { from, to, groups: await responseTimes(db, orgId, { from, to, ...rest }) };
    },
  );
};
