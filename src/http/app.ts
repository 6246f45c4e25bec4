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
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { uuidv7 } from 'uuidv7';
import { openRuntime, type Runtime } from '../app/runtime.ts';
import { loadConfig } from '../config.ts';
import { openPGlite } from '../db/database.ts';
import { rateLimitKey, registerAuth } from './auth.ts';
import { clientErrorResponse, HttpProblem, sendProblem, toProblem, validationFailed } from './errors.ts';
import { swaggerOptions } from './openapi.ts';
import { activityRoutes } from './routes/activity.ts';
import { adminRoutes } from './routes/admin.ts';
import { alertRoutes } from './routes/alerts.ts';
import { auditRoutes } from './routes/audit.ts';
import { eventRoutes } from './routes/events.ts';
import { incidentRoutes } from './routes/incidents.ts';
import { liveRoutes } from './routes/live.ts';
import { operationsRoutes } from './routes/operations.ts';
import { webhookRoutes } from './routes/webhooks.ts';
import { CountingJsonValues, VALUES_MESSAGE, findUnstorable, scanJsonText } from './unstorable.ts';
import { timelineRoutes } from './routes/timeline.ts';
import { webRoutes } from './routes/web.ts';

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
    // Slow clients are cut off: a whole request within REQUEST_TIMEOUT_MS, no socket silent past IDLE_TIMEOUT_MS.
    requestTimeout: runtime.config.requestTimeoutMs,
    connectionTimeout: runtime.config.idleTimeoutMs,
    http: {
      headersTimeout: Math.min(runtime.config.requestTimeoutMs, 10_000),
      // How often node looks for requests past their timeout (its default, 30 s, would double a short one).
      connectionsCheckingInterval: Math.min(1_000, runtime.config.requestTimeoutMs),
    },
    clientErrorHandler: (error, socket) => {
      const response = clientErrorResponse(error as { code?: string });
      if (response === null || !socket.writable) return void socket.destroy();
      socket.end(response, () => socket.destroy());
    },
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
  app.server.maxConnections = runtime.config.maxConnections;
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // JSON only: fastify's text/plain parser would hand handlers a string where they expect an object.
  app.removeContentTypeParser(['text/plain', 'application/json']);
  const parseJson = app.getDefaultJsonParser('error', 'error');
  // An empty body is no body (a DELETE sent with a JSON content type); the schema decides if one was needed.
  const parseJsonOrNothing: typeof parseJson = (request, body, done) => {
    if (body === '') return done(null, undefined);
    const problem = scanJsonText(body);
    parseJson(request, body, problem === null ? done : nameUnstorable(problem, done));
  };
  // `application/merge-patch+json` and other `+json` types are JSON too, with parameters or without
  // (fastify tests a pattern against the type with its parameters).
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJsonOrNothing);
  app.addContentTypeParser(JSON_TYPE, { parseAs: 'string' }, parseJsonOrNothing);

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
  // A keep-alive socket that goes idle after close() began would hold the server open until its timeout;
  // one refused before its body arrived would stay open while node drains whatever the client trickles.
  app.addHook('onSend', async (request, reply) => {
    const refusedEarly = reply.statusCode >= 400 && !request.raw.complete;
    if (closing || refusedEarly) reply.header('connection', 'close');
  });
  // A JSON body's values are counted as its bytes arrive: one over the budget is refused there,
  // unread beyond that point (the answer closes the socket), never decoded, scanned or parsed.
  app.addHook('preParsing', async (request, _reply, payload) => {
    if (!isJsonType(request.headers['content-type'])) return payload;
    const counted = new CountingJsonValues(() => unstorableBody('body', VALUES_MESSAGE));
    // Fastify checks the body limit against what arrived, as sent.
    Object.defineProperty(counted, 'receivedEncodedLength', {
      get: () =>
        (payload as { receivedEncodedLength?: number }).receivedEncodedLength ?? counted.receivedBytes,
    });
    payload.on('error', (error) => counted.destroy(error));
    return payload.pipe(counted);
  });
  // Before the schemas run: a NUL or a lone surrogate would pass them and then fail in PostgreSQL.
  // Bodies were checked on their raw text before they were parsed (parseJsonOrNothing).
  app.addHook('preValidation', async (request) => {
    for (const [part, value] of [
      ['params', request.params],
      ['querystring', request.query],
    ] as const) {
      const found = findUnstorable(value);
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
  app.register(fastifySwagger, swaggerOptions);
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
  app.register(alertRoutes, { runtime });
  app.register(auditRoutes, { runtime });
  app.register(webhookRoutes, { runtime });
  app.register(timelineRoutes, { runtime });
  app.register(liveRoutes, { runtime });
  app.register(webRoutes);
  app.get('/openapi.json', { schema: { hide: true }, config: { rateLimit: false } }, async () =>
    app.swagger(),
  );
  return app;
}

type ParserDone = (error: Error | null, body?: unknown) => void;

/** The content types parsed as JSON, and whose values are counted: `application/json` and every `application/…+json`. */
const JSON_TYPE = /^application\/(?:json|[\w.-]+\+json)\s*(?:;|$)/i;
const isJsonType = (contentType: string | undefined) =>
  contentType !== undefined && JSON_TYPE.test(contentType);

const unstorableBody = (path: string, message: string) =>
  validationFailed('the request body cannot be stored as it is', [{ path, message }]);

/**
 * Wraps a JSON parser's callback for a body whose raw text has `problem` (PostgreSQL could not store
 * it): once it parses, a 400 naming the field. Rare, and only for a body refused anyway: it is walked
 * once to find the field.
 */
function nameUnstorable(problem: string, done: ParserDone): ParserDone {
  return (error, parsed) => {
    if (error) return done(error, undefined);
    const found = findUnstorable(parsed);
    done(unstorableBody(found?.path || 'body', found?.message ?? problem), undefined);
  };
}

/** The OpenAPI document of a server with this configuration, built over a throwaway in-memory database. */
export async function openApiDocument(): Promise<unknown> {
  const config = loadConfig({ JWT_SECRET: 'openapi-document-only', LOG_LEVEL: 'silent' });
  const runtime = await openRuntime(config, { database: await openPGlite(), workers: false, migrate: true });
  const app = buildApp(runtime, { logger: false });
  try {
    await app.ready();
    return app.swagger();
  } finally {
    await app.close();
    await runtime.close();
  }
}
