import fastifyHelmet from '@fastify/helmet';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyPluginAsync,
  type FastifyPluginOptions,
  type FastifyServerOptions,
} from 'fastify';
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod';
import { uuidv7 } from 'uuidv7';
import type { Runtime } from '../app/runtime.ts';
import { OPERATION_ROLES, rateLimitKey, registerAuth, type Operation } from './auth.ts';
import { HttpProblem, sendProblem, toProblem, validationFailed } from './errors.ts';
import { activityRoutes } from './routes/activity.ts';
import { adminRoutes } from './routes/admin.ts';
import { eventRoutes } from './routes/events.ts';
import { incidentRoutes } from './routes/incidents.ts';
import { liveRoutes } from './routes/live.ts';
import { operationsRoutes } from './routes/operations.ts';
import { timelineRoutes } from './routes/timeline.ts';
import { webRoutes } from './routes/web.ts';
import { findUnstorableText } from './schemas.ts';

export interface BuildAppOptions {
  /** fastify's logger option; default: pino at the configured level, Authorization redacted. */
  logger?: FastifyServerOptions['logger'];
  /** A pino logger to use instead (the CLI shares one with the projection workers). */
  loggerInstance?: FastifyBaseLogger;
}

/** Headers never written to the logs. */
export const REDACTED_LOG_PATHS = [
  'req.headers.authorization',
  'request.headers.authorization',
  'headers.authorization',
  'req.headers.cookie',
];

/** The largest request body accepted (API.md: 413 above 1 MiB). */
const BODY_LIMIT = 1024 * 1024;

/** An incoming X-Request-Id is kept when it is a sane token; otherwise the request gets a new one. */
const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/** Marks a plugin as sharing its parent's context (what fastify-plugin does), so its hooks apply app-wide in order. */
function shared<T extends FastifyPluginOptions>(plugin: FastifyPluginAsync<T>): FastifyPluginAsync<T> {
  Object.assign(plugin, { [Symbol.for('skip-override')]: true });
  return plugin;
}

/** The HTTP API over a runtime. Does not listen: `app.listen()` or `app.inject()`. */
export function buildApp(runtime: Runtime, options: BuildAppOptions = {}): FastifyInstance {
  const app = Fastify({
    ...(options.loggerInstance
      ? { loggerInstance: options.loggerInstance }
      : {
          logger: options.logger ?? {
            level: runtime.config.logLevel,
            redact: { paths: REDACTED_LOG_PATHS, censor: '[redacted]' },
          },
        }),
    bodyLimit: BODY_LIMIT,
    genReqId: (request) => {
      const incoming = request.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : uuidv7();
    },
    logController: new LogController({ requestIdLogLabel: 'requestId' }),
    // Once closing starts, idle keep-alive sockets close at once; new requests get the 503 problem below.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    // Errors the router raises before any hook (a malformed URL, an over-long path segment).
    frameworkErrors: (error, _request, reply) => {
      sendProblem(reply, toProblem(error));
    },
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // JSON only: fastify's text/plain parser would hand handlers a string where they expect an object.
  app.removeContentTypeParser(['text/plain', 'application/json']);
  const parseJson = app.getDefaultJsonParser('error', 'error');
  // An empty body is no body (a DELETE sent with a JSON content type); the schema decides if one was needed.
  const parseJsonOrNothing: typeof parseJson = (request, body, done) =>
    body === '' ? done(null, undefined) : parseJson(request, body, done);
  // `application/merge-patch+json` and other `+json` types are JSON too.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJsonOrNothing);
  app.addContentTypeParser(/^application\/[\w.-]+\+json$/, { parseAs: 'string' }, parseJsonOrNothing);

  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    if (closing)
      throw new HttpProblem('UNAVAILABLE', 'the server is shutting down; retry', undefined, {
        'retry-after': '1',
      });
  });
  // A keep-alive socket that goes idle after close() began would hold the server open until its timeout.
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });
  // Before the schemas run: a NUL or a lone surrogate would pass them and then fail in PostgreSQL.
  app.addHook('preValidation', async (request) => {
    for (const [part, value] of [
      ['params', request.params],
      ['querystring', request.query],
      ['body', request.body],
    ] as const) {
      const found = findUnstorableText(value);
      if (found !== null)
        throw validationFailed(`the request ${part} cannot be stored as it is`, [
          { path: found.path || part, message: found.message },
        ]);
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    runtime.metrics.observeRequest(
      request.method,
      request.routeOptions.url ?? 'unmatched',
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
  });

  app.setErrorHandler((error, request, reply) => {
    const mapped = toProblem(error);
    if (mapped.problem.status >= 500) {
      request.log.error({ err: error }, 'request failed: %s', mapped.problem.code);
    } else if (!(error instanceof HttpProblem)) {
      request.log.info(
        { code: mapped.problem.code, reason: error instanceof Error ? error.message : String(error) },
        'request refused',
      );
    }
    return sendProblem(reply, mapped);
  });
  app.setNotFoundHandler((request, reply) => {
    sendProblem(
      reply,
      toProblem(new HttpProblem('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)),
    );
  });

  app.register(fastifyHelmet, { global: true });
  app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'ITS: Incident & Timeline Service',
        version: '1.0.0',
        description:
          'Event-sourced incidents. Errors are application/problem+json. Writes answer once the read models include them (202 when they do not in time, or with Prefer: respond-async).',
      },
      components: {
        securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      },
    },
    transform: documentRoute,
    transformObject: jsonSchemaTransformObject,
  });
  app.register(fastifySwaggerUi, { routePrefix: '/docs', staticCSP: true });
  app.register(shared(async (root) => registerAuth(root, runtime.config.jwt)));
  app.register(fastifyRateLimit, {
    global: true,
    max: runtime.config.rateLimitPerMinute,
    timeWindow: 60_000,
    keyGenerator: rateLimitKey,
    errorResponseBuilder: (_request, context) =>
      Object.assign(new Error(`rate limit exceeded; retry in ${context.after}`), { statusCode: 429 }),
  });
  app.register(operationsRoutes, { runtime });
  app.register(incidentRoutes, { runtime });
  app.register(activityRoutes, { runtime });
  app.register(eventRoutes, { runtime });
  app.register(adminRoutes, { runtime });
  app.register(timelineRoutes, { runtime });
  app.register(liveRoutes, { runtime });
  app.register(webRoutes);
  app.get('/openapi.json', { schema: { hide: true }, config: { rateLimit: false } }, async () =>
    app.swagger(),
  );
  return app;
}

const problemResponse = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
});

/** Documents each route's schema, its security and the problems it can answer with. */
const documentRoute: typeof jsonSchemaTransform = (document) => {
  const transformed = jsonSchemaTransform(document);
  const operation = (document.route.config as { operation?: Operation } | undefined)?.operation;
  if (!operation || transformed.schema.hide) return transformed;
  const schema = transformed.schema as Record<string, unknown> & { response?: Record<string, unknown> };
  const responses: Record<string, unknown> = { ...schema.response };
  responses['400'] ??= problemResponse('VALIDATION_FAILED: the body, query or path fails its schema');
  responses['503'] ??= problemResponse(
    'UNAVAILABLE: the event store or database is unreachable (Retry-After)',
  );
  if (OPERATION_ROLES[operation] !== null) {
    schema.security = [{ bearerAuth: [] }];
    responses['401'] ??= problemResponse('UNAUTHENTICATED: missing, malformed, forged or expired token');
    responses['403'] ??= problemResponse('FORBIDDEN: the token lacks the org or the role');
    responses['404'] ??= problemResponse('NOT_FOUND');
    responses['429'] ??= problemResponse('RATE_LIMITED: too many requests for this token (Retry-After)');
  }
  const method = Array.isArray(document.route.method) ? document.route.method[0] : document.route.method;
  if (method !== 'GET') {
    if (document.url.includes(':incidentId')) {
      responses['409'] ??= problemResponse('INVALID_TRANSITION: the lifecycle does not allow the move');
      responses['412'] ??= problemResponse('VERSION_CONFLICT: If-Match names another version');
    }
    responses['413'] ??= problemResponse('PAYLOAD_TOO_LARGE: body over 1 MiB');
    responses['415'] ??= problemResponse('UNSUPPORTED_MEDIA_TYPE: the body is not JSON');
    responses['422'] ??= problemResponse(
      'IDEMPOTENCY_KEY_REUSED: the Idempotency-Key was used for another request',
    );
  }
  schema.response = responses;
  return transformed;
};
