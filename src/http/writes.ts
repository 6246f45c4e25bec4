import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Runtime } from '../app/runtime.ts';
import type { CommandContext, CommandInput } from '../commands/index.ts';

/** The response body of every write: `{ incidentId, version, position }` plus the new item's id. */
export interface WriteResponse {
  incidentId: string;
  version: number;
  position: string;
  actionId?: string;
  signalId?: string;
  violationId?: string;
}

export interface WriteOptions {
  /** null for a create. */
  incidentId: string | null;
  input: CommandInput;
  /** Which field names the id of the item the command adds. */
  itemField?: 'actionId' | 'signalId' | 'violationId';
}

interface WriteHeaderValues {
  'if-match'?: '*' | number[];
  'idempotency-key'?: string;
  prefer?: string;
}

/**
 * Runs one command for a request and shapes the answer: ETag, Location, Idempotent-Replayed,
 * and 201/200 once the read models include the write, or 202 when the client asked not to wait
 * (`Prefer: respond-async`) or the projection did not catch up in time.
 */
export async function executeWrite(
  runtime: Runtime,
  request: FastifyRequest,
  reply: FastifyReply,
  options: WriteOptions,
): Promise<WriteResponse> {
  const principal = request.principal!;
  const { orgId } = request.params as { orgId: string };
  const headers = request.headers as unknown as WriteHeaderValues;
  const idempotencyKey = headers['idempotency-key'];
  const ctx: CommandContext = {
    orgId,
    actor: { type: principal.actorType, ref: principal.sub },
    correlationId: request.id,
    ...(idempotencyKey !== undefined ? { idempotencyKey, requestFingerprint: fingerprint(request) } : {}),
    // `*` asks only that the incident exist, which every write to an incident checks anyway.
    ...(headers['if-match'] !== undefined && headers['if-match'] !== '*' && options.incidentId !== null
      ? { ifMatch: headers['if-match'] }
      : {}),
  };
  const result = await runtime.commands.execute(ctx, options.incidentId, options.input);
  const body: WriteResponse = {
    incidentId: result.incidentId,
    version: result.version,
    position: result.position,
  };
  if (options.itemField && result.itemId !== undefined) body[options.itemField] = result.itemId;

  reply.header('etag', `"${result.version}"`);
  if (result.replayed) reply.header('idempotent-replayed', 'true');
  const created = options.incidentId === null;
  if (created) reply.header('location', `/api/orgs/${orgId}/incidents/${result.incidentId}`);

  const respondAsync = prefersAsync(headers.prefer);
  if (respondAsync) reply.header('preference-applied', 'respond-async');
  // The write has landed either way: failing to confirm its projection only makes the answer a 202.
  const visible =
    !respondAsync &&
    (await runtime.progress.waitFor(result.position, runtime.config.consistencyTimeoutMs).catch(() => false));
  reply.code(visible ? (created ? 201 : 200) : 202);
  return body;
}

function prefersAsync(prefer: string | undefined): boolean {
  return (
    prefer !== undefined &&
    prefer.split(/[,;]/).some((token) => token.trim().toLowerCase() === 'respond-async')
  );
}

/** What makes two requests "the same" for an idempotency key: method, route, path parameters and body. */
function fingerprint(request: FastifyRequest): string {
  return createHash('sha256')
    .update(JSON.stringify([request.method, request.routeOptions.url, request.params, request.body ?? null]))
    .digest('base64url');
}
