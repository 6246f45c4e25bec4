import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Runtime } from '../../app/runtime.ts';
import { incidentStreamName, orgStreamPrefix } from '../../domain/streams.ts';
import { eventJson, eventJsonWithStream, parsePosition } from '../../eventstore/port.ts';
import { notFound, validationFailed } from '../errors.ts';
import {
  IncidentParams,
  OrgEvents,
  OrgEventsQuery,
  OrgParams,
  StreamEvents,
  StreamEventsQuery,
  TAGS,
} from '../schemas.ts';

const tags = TAGS.events;

/** With a type filter, read the org's log in batches of this size… */
const FILTER_BATCH = 500;
/** …and stop after this many events per request, handing back where the scan got to. */
const FILTER_SCAN_LIMIT = 10_000;

/** A page stops before this many bytes of events (at least one event), and says where to go on from. */
export const PAGE_BYTE_BUDGET = 4 * 1024 * 1024;

/** The largest part of a position each store can issue (int8 in PostgreSQL, uint64 in EventStoreDB). */
export const MAX_POSITION_PART = { postgres: 2n ** 63n - 1n, eventstoredb: 2n ** 64n - 1n } as const;

/** The longest prefix of `events` within PAGE_BYTE_BUDGET as JSON, and never empty when `events` is not. */
function withinBudget<T>(events: T[]): T[] {
  let bytes = 0;
  for (let i = 0; i < events.length; i++) {
    bytes += Buffer.byteLength(JSON.stringify(events[i]));
    if (i > 0 && bytes > PAGE_BYTE_BUDGET) return events.slice(0, i);
  }
  return events;
}

/** The raw events, as stored: one incident's stream, and the org's feed in global-log order. */
export const eventRoutes: FastifyPluginAsyncZod<{ runtime: Runtime }> = async (app, { runtime }) => {
  const store = runtime.store;

  app.get(
    '/api/orgs/:orgId/incidents/:incidentId/events',
    {
      config: { operation: 'readEvents' },
      schema: {
        tags,
        operationId: 'readIncidentEvents',
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
      const page = withinBudget(events.slice(0, limit).map(eventJson));
      return {
        streamName,
        events: page,
        nextFromVersion: events.length > page.length ? events[page.length]!.version : null,
      };
    },
  );

  app.get(
    '/api/orgs/:orgId/events',
    {
      config: { operation: 'readEvents' },
      schema: {
        tags,
        operationId: 'readOrgEvents',
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
      // The port filters by stream, not by type: scan, keep the matches, and never skip one.
      const wanted = type ? new Set<string>(type) : null;
      const batchSize = wanted ? FILTER_BATCH : Math.min(limit + 1, FILTER_BATCH);
      const page: ReturnType<typeof eventJsonWithStream>[] = [];
      let bytes = 0;
      let position = fromPosition ?? null;
      let scanned = 0;
      for (;;) {
        const batch = await store.readAll({ fromPosition: position, streamPrefix, limit: batchSize });
        for (const event of batch) {
          if (wanted && !wanted.has(event.type)) {
            position = event.position;
            continue;
          }
          // A full page, or one more event would pass the byte budget: another page follows from here.
          if (page.length === limit) return { events: page, nextFromPosition: position };
          const output = eventJsonWithStream(event);
          const size = Buffer.byteLength(JSON.stringify(output));
          if (page.length > 0 && bytes + size > PAGE_BYTE_BUDGET)
            return { events: page, nextFromPosition: position };
          page.push(output);
          bytes += size;
          position = event.position;
        }
        scanned += batch.length;
        if (batch.length < batchSize) return { events: page, nextFromPosition: null };
        // A long stretch without matches: answer what was found and where to go on from.
        if (scanned >= FILTER_SCAN_LIMIT) return { events: page, nextFromPosition: position };
      }
    },
  );
};
