import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { OPERATION_ROLES, type Operation } from './auth.ts';
import { MAX_JSON_DEPTH, MAX_JSON_VALUES } from './unstorable.ts';

/**
 * The OpenAPI document: one place derives what every route needs for tools to accept it (an
 * operationId, its security, the problems it answers with), so routes added later need nothing extra.
 */

type OpenApiDocument = Record<string, unknown> & {
  paths?: Record<string, Record<string, Record<string, unknown>>>;
  components?: { schemas?: Record<string, unknown> } & Record<string, unknown>;
};

const problemResponse = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
});

/** `POST /api/orgs/:orgId/incidents/:incidentId/tags` → `postIncidentsTagsByIncidentId`: unique per method and path. */
export function defaultOperationId(method: string, url: string): string {
  const segments = url.split('/').filter((part) => part !== '' && part !== 'api' && part !== 'orgs');
  const words = segments.filter((part) => !part.startsWith(':') && part !== ':orgId');
  const params = segments
    .filter((part) => part.startsWith(':') && part !== ':orgId')
    .map((part) => part.slice(1));
  const pascal = (word: string) =>
    word
      .split(/[^A-Za-z0-9]+/)
      .filter(Boolean)
      .map((piece) => piece[0]!.toUpperCase() + piece.slice(1))
      .join('');
  return (
    method.toLowerCase() +
    words.map(pascal).join('') +
    (params.length ? `By${params.map(pascal).join('And')}` : '')
  );
}

/** Documents each route's schema, its operationId, its security and the problems it can answer with. */
export const documentRoute: typeof jsonSchemaTransform = (document) => {
  const transformed = jsonSchemaTransform(document);
  if (transformed.schema.hide) return transformed;
  const operation = (document.route.config as { operation?: Operation } | undefined)?.operation;
  const method = Array.isArray(document.route.method) ? document.route.method[0] : document.route.method;
  const schema = transformed.schema as Record<string, unknown> & { response?: Record<string, unknown> };
  schema.operationId ??= defaultOperationId(String(method), document.url);
  if (!operation) return transformed;
  const responses: Record<string, unknown> = { ...schema.response };
  responses['400'] ??= problemResponse(
    `VALIDATION_FAILED: the body, query or path fails its schema (a JSON body also holds at most ${MAX_JSON_VALUES.toLocaleString('en')} values and nests at most ${MAX_JSON_DEPTH} deep)`,
  );
  responses['503'] ??= problemResponse(
    'UNAVAILABLE: the event store or database is unreachable or too busy (Retry-After)',
  );
  if (OPERATION_ROLES[operation] !== null) {
    schema.security = [{ bearerAuth: [] }];
    responses['401'] ??= problemResponse('UNAUTHENTICATED: missing, malformed, forged or expired token');
    responses['403'] ??= problemResponse('FORBIDDEN: the token lacks the org or the role');
    responses['404'] ??= problemResponse('NOT_FOUND');
    // Routes with a rate-limit config of their own (ingestion) answer 503 instead of 429.
    if (!(document.route.config as { rateLimit?: unknown } | undefined)?.rateLimit)
      responses['429'] ??= problemResponse('RATE_LIMITED: too many requests for this person (Retry-After)');
  } else {
    // Open on purpose (health, metrics): said explicitly, so it does not inherit the document's default.
    schema.security = [];
  }
  if (method !== 'GET') {
    if (document.url.includes(':incidentId')) {
      responses['409'] ??= problemResponse('INVALID_TRANSITION: the lifecycle does not allow the move');
      responses['412'] ??= problemResponse('VERSION_CONFLICT: If-Match names another version');
    }
    responses['408'] ??= problemResponse(
      'REQUEST_TIMEOUT: the body did not arrive within REQUEST_TIMEOUT_MS',
    );
    responses['413'] ??= problemResponse('PAYLOAD_TOO_LARGE: body over 1 MiB');
    responses['415'] ??= problemResponse('UNSUPPORTED_MEDIA_TYPE: the body is not JSON');
    responses['422'] ??= problemResponse(
      'IDEMPOTENCY_KEY_REUSED: the Idempotency-Key was used for another request',
    );
  }
  schema.response = responses;
  return transformed;
};

/** Every `#/components/schemas/X` that `value` refers to. */
function collectRefs(value: unknown, into: Set<string>): void {
  if (Array.isArray(value)) for (const item of value) collectRefs(item, into);
  else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key === '$ref' && typeof item === 'string' && item.startsWith('#/components/schemas/'))
        into.add(item.slice('#/components/schemas/'.length));
      else collectRefs(item, into);
    }
  }
}

/** Keeps only the component schemas the operations reach (zod registers an unused `…Input` twin of each). */
function withoutUnusedSchemas(document: OpenApiDocument): OpenApiDocument {
  const schemas = document.components?.schemas;
  if (!schemas) return document;
  const used = new Set<string>();
  collectRefs(document.paths, used);
  for (let grew = true; grew;) {
    const before = used.size;
    for (const name of [...used]) collectRefs(schemas[name], used);
    grew = used.size > before;
  }
  const kept = Object.fromEntries(Object.entries(schemas).filter(([name]) => used.has(name)));
  return { ...document, components: { ...document.components, schemas: kept } };
}

export const transformDocument: typeof jsonSchemaTransformObject = (input) =>
  withoutUnusedSchemas(jsonSchemaTransformObject(input) as OpenApiDocument) as ReturnType<
    typeof jsonSchemaTransformObject
  >;

/** The options @fastify/swagger registers with. */
export const swaggerOptions: FastifyDynamicSwaggerOptions = {
  openapi: {
    openapi: '3.1.0',
    info: {
      title: 'ITS: Incident & Timeline Service',
      version: '1.0.0',
      description:
        'Event-sourced incidents. Errors are application/problem+json. Writes answer once the read models include them (202 when they do not in time, or with Prefer: respond-async).',
      license: { name: 'Proprietary', identifier: 'LicenseRef-Proprietary' },
    },
    servers: [{ url: '/', description: 'this ITS' }],
    // Every operation needs a bearer token unless it says otherwise (the open ones say `security: []`).
    security: [{ bearerAuth: [] }],
    components: {
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
    },
  },
  transform: documentRoute,
  transformObject: transformDocument,
};
