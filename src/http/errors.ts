import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyReply } from 'fastify';
import { isDatabaseUnavailable } from '../db/database.ts';
import { ConcurrencyRetriesExhausted, IdempotencyKeyReused, VersionConflict } from '../commands/index.ts';
import { DomainError, type DomainErrorCode } from '../domain/incident/index.ts';
import { EventStoreUnavailable, InvalidPosition } from '../eventstore/port.ts';

/**
 * Every error the API answers with, as RFC 9457 problem details. This file is the one place where
 * errors (domain, command handler, store, database, fastify's own) become HTTP status codes.
 */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export type ProblemCode =
  | 'VALIDATION_FAILED'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'INVALID_TRANSITION'
  | 'INCIDENT_EXISTS'
  | 'VERSION_CONFLICT'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'IDEMPOTENCY_KEY_REUSED'
  | 'RATE_LIMITED'
  | 'REQUEST_TIMEOUT'
  | 'HEADERS_TOO_LARGE'
  | 'UNAVAILABLE'
  | 'INTERNAL';

export interface FieldError {
  path: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ProblemCode;
  detail: string;
  errors?: FieldError[];
}

const STATUS: Record<ProblemCode, { status: number; title: string }> = {
  VALIDATION_FAILED: { status: 400, title: 'Validation failed' },
  UNAUTHENTICATED: { status: 401, title: 'Unauthenticated' },
  FORBIDDEN: { status: 403, title: 'Forbidden' },
  NOT_FOUND: { status: 404, title: 'Not found' },
  INVALID_TRANSITION: { status: 409, title: 'Invalid transition' },
  INCIDENT_EXISTS: { status: 409, title: 'Incident exists' },
  VERSION_CONFLICT: { status: 412, title: 'Version conflict' },
  PAYLOAD_TOO_LARGE: { status: 413, title: 'Payload too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'Unsupported media type' },
  IDEMPOTENCY_KEY_REUSED: { status: 422, title: 'Idempotency key reused' },
  RATE_LIMITED: { status: 429, title: 'Rate limited' },
  REQUEST_TIMEOUT: { status: 408, title: 'Request timeout' },
  HEADERS_TOO_LARGE: { status: 431, title: 'Request header fields too large' },
  UNAVAILABLE: { status: 503, title: 'Service unavailable' },
  INTERNAL: { status: 500, title: 'Internal error' },
};

/** The problem for each domain error code: the type makes a new code fail to compile until it is mapped here. */
export const DOMAIN_PROBLEMS: Record<DomainErrorCode, ProblemCode> = {
  NOT_FOUND: 'NOT_FOUND',
  INCIDENT_EXISTS: 'INCIDENT_EXISTS',
  INVALID_TRANSITION: 'INVALID_TRANSITION',
};

/** Seconds a client should wait before retrying after a 503. */
export const RETRY_AFTER_SECONDS = 5;

/**
 * An error the edge raises on purpose (authentication, authorization, a bad header or cursor). It
 * carries no stack: where it was raised says nothing its code and detail do not, and capturing one
 * (then mapping it through source maps when something reads it) was a tenth of the CPU the service
 * spends refusing a flood of bad requests.
 */
export class HttpProblem extends Error {
  override readonly name = 'HttpProblem';
  constructor(
    readonly code: ProblemCode,
    readonly detail: string,
    readonly errors?: FieldError[],
    readonly headers: Record<string, string> = {},
  ) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(detail);
    Error.stackTraceLimit = limit;
  }
}

export const validationFailed = (detail: string, errors?: FieldError[]) =>
  new HttpProblem('VALIDATION_FAILED', detail, errors);
export const unauthenticated = (detail: string) =>
  new HttpProblem('UNAUTHENTICATED', detail, undefined, { 'www-authenticate': 'Bearer' });
export const forbidden = (detail: string) => new HttpProblem('FORBIDDEN', detail);
export const notFound = (detail: string) => new HttpProblem('NOT_FOUND', detail);

export function problem(code: ProblemCode, detail: string, errors?: FieldError[]): Problem {
  const { status, title } = STATUS[code];
  return {
    type: `urn:its:problem:${code.toLowerCase().replace(/_/g, '-')}`,
    title,
    status,
    code,
    detail,
    ...(errors ? { errors } : {}),
  };
}

export interface MappedError {
  problem: Problem;
  headers: Record<string, string>;
  /** Server-side faults are logged as errors; client mistakes are not. */
  serverFault: boolean;
}

/** Maps anything thrown while serving a request to the problem the client sees. */
export function toProblem(error: unknown): MappedError {
  const plain = (
    code: ProblemCode,
    detail: string,
    errors?: FieldError[],
    headers: Record<string, string> = {},
  ): MappedError => ({
    problem: problem(code, detail, errors),
    headers,
    serverFault: code === 'INTERNAL' || code === 'UNAVAILABLE',
  });
  const retryLater = { 'retry-after': String(RETRY_AFTER_SECONDS) };

  if (error instanceof HttpProblem) return plain(error.code, error.detail, error.errors, error.headers);
  if (error instanceof DomainError) {
    // A code outside the map (a subclass that bypassed the type) is a server bug, never a guessed 409.
    const code = Object.hasOwn(DOMAIN_PROBLEMS, error.code) ? DOMAIN_PROBLEMS[error.code] : 'INTERNAL';
    return plain(code, code === 'INTERNAL' ? 'an unexpected error occurred' : error.message);
  }
  if (error instanceof VersionConflict) return plain('VERSION_CONFLICT', error.message);
  if (error instanceof IdempotencyKeyReused) return plain('IDEMPOTENCY_KEY_REUSED', error.message);
  if (error instanceof ConcurrencyRetriesExhausted) {
    return plain(
      'UNAVAILABLE',
      'the incident is being changed by many writers at once; retry shortly',
      undefined,
      { 'retry-after': '1' },
    );
  }
  if (error instanceof InvalidPosition)
    return plain('VALIDATION_FAILED', 'fromPosition is not a position this store issued', [
      { path: 'fromPosition', message: 'is not a position this API issued' },
    ]);
  if (error instanceof EventStoreUnavailable)
    return plain('UNAVAILABLE', 'the event store is unreachable; retry later', undefined, retryLater);

  const fastifyError = error as Partial<FastifyError> | undefined;
  if (fastifyError && Array.isArray(fastifyError.validation)) {
    return plain(
      'VALIDATION_FAILED',
      `the request ${fastifyError.validationContext ?? 'input'} does not match its schema`,
      fieldErrors(fastifyError),
    );
  }
  const status = typeof fastifyError?.statusCode === 'number' ? fastifyError.statusCode : 500;
  // Before the database checks: a client that aborts mid-body raises ECONNRESET with a 400, and is no outage.
  if (status >= 400 && status < 500) return clientProblem(status, fastifyError, plain);
  if (isStatementTimeout(error))
    return plain(
      'UNAVAILABLE',
      'the database is too busy to answer in time; retry later',
      undefined,
      retryLater,
    );
  if (isDatabaseUnavailable(error))
    return plain('UNAVAILABLE', 'the database is unreachable; retry later', undefined, retryLater);
  if (status === 503)
    return plain('UNAVAILABLE', 'the service is unavailable; retry later', undefined, retryLater);
  return plain('INTERNAL', 'an unexpected error occurred');
}

/** A 4xx fastify (or one of its plugins) raised: the client's mistake, with the problem code for it. */
function clientProblem(
  status: number,
  fastifyError: Partial<FastifyError> | undefined,
  plain: (code: ProblemCode, detail: string) => MappedError,
): MappedError {
  if (status === 429)
    return plain('RATE_LIMITED', 'too many requests for this token; retry after the indicated delay');
  if (status === 413) return plain('PAYLOAD_TOO_LARGE', 'the request body is larger than 1 MiB');
  if (status === 415)
    return plain('UNSUPPORTED_MEDIA_TYPE', 'the request body must be JSON (application/json)');
  if (status === 404) return plain('NOT_FOUND', 'no such resource');
  // Bad JSON, an empty JSON body, a bad content length…: fastify's own 4xx are all malformed input.
  return plain('VALIDATION_FAILED', clientMessage(fastifyError));
}

/** PostgreSQL's `query_canceled` (57014): statement_timeout fired under load; retrying later can succeed. */
function isStatementTimeout(error: unknown): boolean {
  for (let current: unknown = error, depth = 0; current instanceof Error && depth < 5; depth++) {
    if ((current as { code?: unknown }).code === '57014') return true;
    current = current.cause;
  }
  return false;
}

function clientMessage(error: Partial<FastifyError> | undefined): string {
  const message = typeof error?.message === 'string' ? error.message : '';
  // fastify's messages name the problem without echoing internals; keep them short.
  return message && message.length < 300 ? message : 'the request is malformed';
}

/** One entry per failing field: `title`, `tags.3`, `limit`, `If-Match`; the whole part when it is the root. */
function fieldErrors(error: Partial<FastifyError>): FieldError[] {
  const context = error.validationContext ?? 'body';
  return (error.validation ?? []).map((issue) => {
    const pointer = issue.instancePath.replace(/^\//, '');
    const field = pointer === '' ? context : pointer.split('/').map(unescapePointer).join('.');
    return { path: field, message: issue.message ?? 'is invalid' };
  });
}

function unescapePointer(segment: string): string {
  return segment.replace(/~1/g, '/').replace(/~0/g, '~');
}

export function sendProblem(
  reply: FastifyReply,
  mapped: Pick<MappedError, 'problem' | 'headers'>,
): FastifyReply {
  for (const [name, value] of Object.entries(mapped.headers)) reply.header(name, value);
  // A string payload skips the route's response serializer: an error body never fails to serialize.
  return reply.code(mapped.problem.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(mapped.problem));
}

/**
 * The raw HTTP answer to an error node's parser raises before fastify sees a request (malformed
 * HTTP, headers too large, a request not received in time), as problem+json; null when the client is gone.
 */
export function clientErrorResponse(error: { code?: string }): string | null {
  if (error.code === 'ECONNRESET') return null;
  const body =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? problem('REQUEST_TIMEOUT', 'the request did not arrive in time (REQUEST_TIMEOUT_MS)')
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? problem('HEADERS_TOO_LARGE', 'the request headers are larger than the server accepts')
        : problem('VALIDATION_FAILED', 'the request is not well-formed HTTP');
  const text = JSON.stringify(body);
  return (
    `HTTP/1.1 ${body.status} ${STATUS_CODES[body.status]}\r\n` +
    `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(text)}\r\n` +
    `Connection: close\r\n\r\n${text}`
  );
}
