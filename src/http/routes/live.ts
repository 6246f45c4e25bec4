import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { Gauge } from 'prom-client';
import { z } from 'zod';
import type { Runtime } from '../../app/runtime.ts';
import { EVENT_TYPES } from '../../domain/incident/index.ts';
import { incidentStreamName } from '../../domain/streams.ts';
import { isPosition, parsePosition } from '../../eventstore/port.ts';
import { StoreCommittedEvents } from '../../live/committed.ts';
import { DaemonCommittedEvents } from '../../live/daemon-committed.ts';
import { LiveHub, type ResumePoint, type StreamSelection } from '../../live/hub.ts';
import { SseConnection } from '../../live/sse.ts';
import { findIncident } from '../../readmodel/incidents.ts';
import { HttpProblem, notFound, validationFailed } from '../errors.ts';
import { IncidentParams, OrgParams } from '../schemas.ts';
import { MAX_POSITION_PART } from './events.ts';

const tags = ['live'];

/** setTimeout's longest delay; a token valid for longer is checked again when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const Position = z.string().refine(isPosition, 'is not a position this API issued');
const typeList = z
  .string()
  .transform((value) => value.split(',').map((entry) => entry.trim()))
  .pipe(z.array(z.enum(EVENT_TYPES)).min(1));

const OrgStreamQuery = z.object({
  fromPosition: Position.optional().describe('exclusive; Last-Event-ID takes precedence'),
});
const IncidentsStreamQuery = OrgStreamQuery.extend({
  type: typeList.optional().describe('only these event types, comma-separated'),
});
const IncidentStreamQuery = OrgStreamQuery.extend({
  fromVersion: z.coerce
    .number()
    .int()
    .min(0)
    .optional()
    .describe('inclusive: 0 replays the whole stream; Last-Event-ID and fromPosition take precedence'),
});
const StreamHeaders = z.object({
  'last-event-id': z.string().max(100).optional().describe('the id of the last message received'),
});

const eventStream = {
  200: {
    description:
      'A stream of Server-Sent Events: first `retry: 2000`; per event `id: <position>`, `event: <type>`, `data: <the event as GET …/events returns it, on one line>`; a `: keep-alive` comment every 15 s. 429 RATE_LIMITED when the token has STREAM_MAX_PER_TOKEN streams open.',
    content: { 'text/event-stream': { schema: z.string() } },
  },
};

/** Server-Sent Events: one incident's events, an org's incident events, and the raw org feed (LIVE.md). */
export const liveRoutes: FastifyPluginAsyncZod<{ runtime: Runtime }> = async (app, { runtime }) => {
  // With workers, the daemon's own commits feed the streams; without, one store subscription does.
  const committed = runtime.projections
    ? new DaemonCommittedEvents(runtime.projections, runtime.store, runtime.progress, app.log)
    : new StoreCommittedEvents(runtime.store, runtime.progress, app.log);
  const hub = new LiveHub(committed, runtime.store, runtime.config.stream);
  const registry = runtime.metrics.registry;
  registry.removeSingleMetric('its_live_streams_open');
  new Gauge({
    name: 'its_live_streams_open',
    help: 'Server-Sent Event streams open in this process',
    registers: [registry],
    collect() {
      this.set(hub.openStreams);
    },
  });
  // Open streams never go idle: end them so that close() can finish; clients reconnect elsewhere.
  app.addHook('preClose', async () => hub.closeAll());
  app.addHook('onClose', async () => hub.stop());

  /** Where the stream starts: Last-Event-ID (what a browser sends on reconnect), else the query. */
  function resumePoint(
    request: FastifyRequest,
    query: { fromPosition?: string; fromVersion?: number },
  ): ResumePoint {
    const lastEventId = (request.headers as z.infer<typeof StreamHeaders>)['last-event-id'];
    const position = lastEventId?.trim() || query.fromPosition;
    if (position !== undefined) {
      if (
        !isPosition(position) ||
        parsePosition(position).some((part) => part > MAX_POSITION_PART[runtime.store.kind])
      )
        throw validationFailed('the resume position is not one this API issued', [
          {
            path: lastEventId ? 'Last-Event-ID' : 'fromPosition',
            message: 'is not a position this API issued',
          },
        ]);
      return { afterPosition: position };
    }
    return query.fromVersion !== undefined ? { fromVersion: query.fromVersion } : null;
  }

  async function stream(
    request: FastifyRequest,
    reply: FastifyReply,
    selection: StreamSelection,
    resume: ResumePoint,
  ): Promise<void> {
    const principal = request.principal!;
    const release = hub.admit(principal.tokenId);
    if (!release)
      throw new HttpProblem(
        'RATE_LIMITED',
        `at most ${runtime.config.stream.maxPerToken} streams may be open per token; close one first`,
        undefined,
        { 'retry-after': '5' },
      );
    const connection = new SseConnection(reply.raw, runtime.config.stream.maxBufferedBytes);
    connection.whenClosed(release);
    // The token was verified by the auth hook; only its expiry matters here.
    const token = request.headers.authorization!.replace(/^Bearer\s+/i, '').trim();
    const exp = (app.jwt.decode(token) as { exp?: unknown } | null)?.exp;
    if (typeof exp === 'number') {
      const endAtExpiry = () => {
        const left = exp * 1000 - Date.now();
        if (left <= 0) connection.end();
        else timer = setTimeout(endAtExpiry, Math.min(left, MAX_TIMER_MS));
      };
      let timer: NodeJS.Timeout | undefined;
      endAtExpiry();
      connection.whenClosed(() => clearTimeout(timer));
    }
    reply.hijack();
    connection.open(reply.getHeaders());
    try {
      await hub.serve(connection, selection, resume);
    } catch (error) {
      request.log.warn({ err: error }, 'live stream failed; the client resumes with Last-Event-ID');
      connection.cut();
    }
  }

  app.get(
    '/api/orgs/:orgId/incidents/:incidentId/stream',
    {
      config: { operation: 'readIncidents' },
      schema: {
        tags,
        summary: "One incident's events, live (text/event-stream)",
        description:
          'With Last-Event-ID, fromPosition or fromVersion, the events after that point first, then live, with no gap and no repeat; without, events from now on. Each event is sent once the read models include it.',
        params: IncidentParams,
        querystring: IncidentStreamQuery,
        headers: StreamHeaders,
        response: eventStream,
      },
    },
    async (request, reply) => {
      const { orgId, incidentId } = request.params;
      const resume = resumePoint(request, request.query);
      if (!(await findIncident(runtime.database.db, orgId, incidentId)))
        throw notFound(`incident ${incidentId} not found`);
      await stream(request, reply, { orgId, streamName: incidentStreamName(orgId, incidentId) }, resume);
    },
  );

  app.get(
    '/api/orgs/:orgId/incidents/stream',
    {
      config: { operation: 'readIncidents' },
      schema: {
        tags,
        summary: 'Every incident event of the org, live (text/event-stream), e.g. for a live incident list',
        params: OrgParams,
        querystring: IncidentsStreamQuery,
        headers: StreamHeaders,
        response: eventStream,
      },
    },
    async (request, reply) => {
      const { orgId } = request.params;
      const { type } = request.query;
      await stream(
        request,
        reply,
        { orgId, ...(type ? { types: new Set<string>(type) } : {}) },
        resumePoint(request, request.query),
      );
    },
  );

  app.get(
    '/api/orgs/:orgId/events/stream',
    {
      config: { operation: 'readEvents' },
      schema: {
        tags,
        summary: 'The raw org feed, live (text/event-stream), as GET /api/orgs/:orgId/events',
        params: OrgParams,
        querystring: OrgStreamQuery,
        headers: StreamHeaders,
        response: eventStream,
      },
    },
    async (request, reply) => {
      const { orgId } = request.params;
      await stream(request, reply, { orgId }, resumePoint(request, request.query));
    },
  );
};
