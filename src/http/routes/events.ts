import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Runtime } from '../../app/runtime.ts';
import { incidentStreamName, orgStreamPrefix } from '../../domain/streams.ts';
import { parsePosition, type RecordedEvent } from '../../eventstore/port.ts';
import { notFound, validationFailed } from '../errors.ts';
import {
  IncidentParams,
  OrgEvents,
  OrgEventsQuery,
  OrgParams,
  StreamEvents,
  StreamEventsQuery,
} from '../schemas.ts';

const tags = ['events'];

/** With a type filter, read the org's log in batches of this size… */
const FILTER_BATCH = 500;
/** …and stop after this many events per request, handing back where the scan got to. */
const FILTER_SCAN_LIMIT = 10_000;

/** The largest part of a position each store can issue (int8 in PostgreSQL, uint64 in EventStoreDB). */
export const MAX_POSITION_PART = { postgres: 2n ** 63n - 1n, eventstoredb: 2n ** 64n - 1n } as const;

const rawEvent = (event: RecordedEvent) => ({
  eventId: event.eventId,
  type: event.type,
  version: event.version,
  position: event.position,
  createdAt: event.createdAt,
  data: event.data,
  metadata: event.metadata,
});

/** The raw events, as stored: one incident's stream, and the org's feed in global-log order. */
export const eventRoutes: FastifyPluginAsyncZod<{ runtime: Runtime }> = async (app, { runtime }) => {
  const store = runtime.store;

  app.get(
    '/api/orgs/:orgId/incidents/:incidentId/events',
    {
      config: { operation: 'readEvents' },
      schema: {
        tags,
        summary: "One incident's stream, by version",
        params: IncidentParams,
        querystring: StreamEventsQuery,
        response: { 200: StreamEvents },
      },
    },
    async (request) => {
      const { orgId, incidentId } = request.params;
      const { fromVersion, limit, direction } = request.query;
      const streamName = incidentStreamName(orgId, incidentId);
      const start = fromVersion ?? (direction === 'forwards' ? 0 : undefined);
      // One more than asked, to know whether another page follows.
      const events = await store.readStream(streamName, {
        ...(start !== undefined ? { fromVersion: start } : {}),
        direction,
        limit: limit + 1,
      });
      if (events.length === 0) {
        const newest = await store.readStream(streamName, { direction: 'backwards', limit: 1 });
        if (newest.length === 0) throw notFound(`incident ${incidentId} not found`);
      }
      const page = events.slice(0, limit);
      return {
        streamName,
        events: page.map(rawEvent),
        nextFromVersion: events.length > limit ? events[limit]!.version : null,
      };
    },
  );

  app.get(
    '/api/orgs/:orgId/events',
    {
      config: { operation: 'readEvents' },
      schema: {
        tags,
        summary: "The org's events from every incident, in global-log order",
        description:
          'Total and stable order: reading again from any position gives the same events. Follow nextFromPosition until it is null.',
        params: OrgParams,
        querystring: OrgEventsQuery,
        response: { 200: OrgEvents },
      },
    },
    async (request) => {
      const { orgId } = request.params;
      const { fromPosition, limit, type } = request.query;
      if (
        fromPosition !== undefined &&
        parsePosition(fromPosition).some((part) => part > MAX_POSITION_PART[store.kind])
      ) {
        throw validationFailed('fromPosition is beyond any position this store issues', [
          { path: 'fromPosition', message: 'is not a position this API issued' },
        ]);
      }
      const streamPrefix = orgStreamPrefix(orgId);
      const toOutput = (event: RecordedEvent) => ({ ...rawEvent(event), streamName: event.streamName });

      if (!type) {
        const events = await store.readAll({
          fromPosition: fromPosition ?? null,
          streamPrefix,
          limit: limit + 1,
        });
        const page = events.slice(0, limit);
        return {
          events: page.map(toOutput),
          nextFromPosition: events.length > limit ? page.at(-1)!.position : null,
        };
      }

      // The port filters by stream, not by type: scan, keep the matches, and never skip one.
      const wanted = new Set<string>(type);
      const matches: RecordedEvent[] = [];
      let position = fromPosition ?? null;
      let scanned = 0;
      for (;;) {
        const batch = await store.readAll({ fromPosition: position, streamPrefix, limit: FILTER_BATCH });
        for (const event of batch) {
          position = event.position;
          if (wanted.has(event.type)) {
            matches.push(event);
            if (matches.length > limit) {
              const page = matches.slice(0, limit);
              return { events: page.map(toOutput), nextFromPosition: page.at(-1)!.position };
            }
          }
        }
        scanned += batch.length;
        if (batch.length < FILTER_BATCH) return { events: matches.map(toOutput), nextFromPosition: null };
        // A long stretch without matches: answer what was found and where to go on from.
        if (scanned >= FILTER_SCAN_LIMIT)
          return { events: matches.map(toOutput), nextFromPosition: position };
      }
    },
  );
};
