import { createHash, createPublicKey } from 'node:crypto';
import fastifyJwt from '@fastify/jwt';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { JwtConfig } from '../config.ts';
import { forbidden, unauthenticated } from './errors.ts';
import { findUnstorable } from './unstorable.ts';

export const ROLES = ['ORG_ADMIN', 'SRE_LEAD', 'ONCALL_ENGINEER', 'MEMBER', 'AUDITOR'] as const;
export type Role = (typeof ROLES)[number];

/**
 * The roles table of API.md, the only place it is written down. Every route names its operation
 * (`config.operation`) and one onRequest hook enforces this map before anything else runs.
 */
export const OPERATION_ROLES = {
  readIncidents: ['ORG_ADMIN', 'SRE_LEAD', 'ONCALL_ENGINEER', 'MEMBER', 'AUDITOR'],
  writeIncidents: ['ORG_ADMIN', 'SRE_LEAD', 'ONCALL_ENGINEER', 'MEMBER'],
  changeStatus: ['ORG_ADMIN', 'SRE_LEAD', 'ONCALL_ENGINEER'],
  changeSeverity: ['ORG_ADMIN', 'SRE_LEAD'],
  readEvents: ['ORG_ADMIN', 'SRE_LEAD', 'AUDITOR'],
  manageWebhooks: ['ORG_ADMIN', 'SRE_LEAD'],
  readWebhooks: ['ORG_ADMIN', 'SRE_LEAD', 'ONCALL_ENGINEER', 'MEMBER', 'AUDITOR'],
  /** Tokens with `its_admin: true`, whatever their org roles. */
  admin: 'its_admin',
  /** No token needed: health, metrics, the OpenAPI document. */
  public: null,
} as const satisfies Record<string, readonly Role[] | 'its_admin' | null>;

export type Operation = keyof typeof OPERATION_ROLES;

declare module 'fastify' {
  interface FastifyContextConfig {
    operation?: Operation;
  }
  interface FastifyRequest {
    principal?: Principal;
    /** Why authentication or authorization failed; answered after the rate limiter has counted it. */
    authFailure?: unknown;
  }
}

/** The claims API.md defines; anything else in the token is ignored. */
const storable = (text: string) => findUnstorable(text) === null;
export const TokenClaims = z.object({
  // Text PostgreSQL could not store would pass verification and fail later as a 500.
  sub: z.string().min(1).max(255).refine(storable),
  name: z.string().max(255).refine(storable).optional(),
  // z.number() refuses Infinity, which is what `exp: 1e400` parses to.
  exp: z.number(),
  iat: z.number().optional(),
  orgs: z.record(z.string(), z.array(z.string())),
  actor_type: z.enum(['USER', 'SYSTEM', 'INTEGRATION']).optional(),
  its_admin: z.boolean().optional(),
});
export type TokenClaims = z.infer<typeof TokenClaims>;

export interface Principal {
  sub: string;
  name?: string;
  orgs: Record<string, string[]>;
  actorType: 'USER' | 'SYSTEM' | 'INTEGRATION';
  admin: boolean;
  /** The token's identity for per-token limits (live streams): a hash of its claims, not of its text, so a re-spelt signature is the same token. */
  tokenId: string;
}

/** How many verified tokens fast-jwt keeps: about one per client active at once. */
const VERIFIED_TOKENS_CACHED = 10_000;

/**
 * The principal of each payload fast-jwt keeps in its cache, built once: its checks below only ever
 * pass for good once they have passed (`now` only grows, and fast-jwt drops the entry at `exp`), and
 * an entry leaves with its payload when fast-jwt evicts it. A principal is shared, so never changed.
 */
const PRINCIPALS = new WeakMap<object, Principal>();

/** How far a token's `iat` may run ahead of this clock (another host's clock drifts). */
const CLOCK_SKEW_SECONDS = 60;

/** The algorithms a key may verify: fixed per key, so `alg: none` and HS/RS confusion never pass. */
export function verificationAlgorithms(jwt: JwtConfig): string[] {
  if (jwt.publicKey) {
    const key = createPublicKey(jwt.publicKey);
    if (key.asymmetricKeyType === 'rsa') return ['RS256'];
    if (key.asymmetricKeyType === 'ec') {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1' || curve === 'P-256') return ['ES256'];
      if (curve === 'secp384r1' || curve === 'P-384') return ['ES384'];
      if (curve === 'secp521r1' || curve === 'P-521') return ['ES512'];
    }
    throw new Error(
      `JWT_PUBLIC_KEY must be an RSA or EC (P-256) public key, not ${key.asymmetricKeyType ?? 'unknown'}`,
    );
  }
  if (jwt.secret) return ['HS256'];
  throw new Error('no JWT_SECRET or JWT_PUBLIC_KEY configured');
}

/** Registers @fastify/jwt and the hook that authenticates and authorizes every non-public route. */
export async function registerAuth(app: FastifyInstance, jwt: JwtConfig): Promise<void> {
  const algorithms = verificationAlgorithms(jwt);
  await app.register(fastifyJwt, {
    secret: jwt.publicKey ? { public: jwt.publicKey } : jwt.secret!,
    verify: {
      algorithms: algorithms as never,
      ...(jwt.issuer ? { allowedIss: jwt.issuer } : {}),
      ...(jwt.audience ? { allowedAud: jwt.audience } : {}),
      // An allowed value alone lets a token without the claim through: require it too.
      requiredClaims: ['sub', 'exp', ...(jwt.issuer ? ['iss'] : []), ...(jwt.audience ? ['aud'] : [])],
      // fast-jwt remembers the tokens it verified (an LRU of this many, each entry good until the
      // token's exp, failures never kept): a client's every request after its first skips the
      // signature check and the decoding, and answers the same payload object (see PRINCIPALS).
      cache: VERIFIED_TOKENS_CACHED,
    },
  });

  // Fail at start-up rather than serve an API route that nobody authorizes.
  app.addHook('onRoute', (route) => {
    const url = route.url ?? '';
    if ((url.startsWith('/api/') || url.startsWith('/admin/')) && !route.config?.operation) {
      throw new Error(`route ${route.method} ${url} names no operation`);
    }
  });

  // The failure is kept, not thrown, so the rate limiter (a route onRequest hook, after this one)
  // counts refused requests too; preParsing answers it, still before any body is read.
  app.addHook('onRequest', async (request) => {
    const operation = request.routeOptions.config.operation;
    if (operation === undefined || operation === 'public') return;
    try {
      const principal = authenticate(app, request, jwt.maxTtlSeconds);
      request.principal = principal;
      authorize(operation, principal, (request.params as Record<string, string | undefined>).orgId);
    } catch (error) {
      request.authFailure = error;
    }
  });
  app.addHook('preParsing', async (request) => {
    if (request.authFailure !== undefined) throw request.authFailure;
  });
}

function authenticate(app: FastifyInstance, request: FastifyRequest, maxTtlSeconds: number): Principal {
  const header = request.headers.authorization;
  if (!header) throw unauthenticated('an Authorization: Bearer token is required');
  const match = /^Bearer[ ]+([A-Za-z0-9_\-.=+/]+)\s*$/i.exec(header);
  if (!match) throw unauthenticated('the Authorization header must be "Bearer <token>"');
  const token = match[1]!;
  let payload: unknown;
  try {
    payload = app.jwt.verify(token);
  } catch (error) {
    const code = (error as { code?: string }).code ?? '';
    throw unauthenticated(
      code.includes('EXPIRED')
        ? 'the token has expired'
        : code.includes('INACTIVE')
          ? 'the token is not valid yet'
          : 'the token is invalid',
    );
  }
  const known = typeof payload === 'object' && payload !== null ? PRINCIPALS.get(payload) : undefined;
  if (known) return known;
  const claims = TokenClaims.safeParse(payload);
  if (!claims.success)
    throw unauthenticated('the token lacks the claims ITS needs (sub, orgs, a finite exp)');
  const { exp, iat } = claims.data;
  const now = Date.now() / 1000;
  if (iat !== undefined && iat > now + CLOCK_SKEW_SECONDS)
    throw unauthenticated('the token was issued in the future');
  // Without a bound, a leaked token (or one minted with exp far ahead) would be good for ever.
  if (exp - (iat ?? now) > maxTtlSeconds || exp - now > maxTtlSeconds + CLOCK_SKEW_SECONDS)
    throw unauthenticated(
      `the token lives longer than the ${maxTtlSeconds} s this service accepts (JWT_MAX_TTL)`,
    );
  const principal: Principal = {
    sub: claims.data.sub,
    name: claims.data.name,
    orgs: claims.data.orgs,
    actorType: claims.data.actor_type ?? 'USER',
    admin: claims.data.its_admin === true,
    tokenId: createHash('sha256').update(JSON.stringify(payload)).digest('base64url').slice(0, 22),
  };
  PRINCIPALS.set(payload as object, principal);
  return principal;
}

function authorize(
  operation: Exclude<Operation, 'public'>,
  principal: Principal,
  orgId: string | undefined,
): void {
  const allowed = OPERATION_ROLES[operation];
  if (allowed === 'its_admin') {
    if (!principal.admin) throw forbidden('this operation needs an its_admin token');
    return;
  }
  if (orgId === undefined) throw forbidden('this operation belongs to an organization');
  const roles = Object.hasOwn(principal.orgs, orgId) ? principal.orgs[orgId]! : undefined;
  if (!roles) throw forbidden(`the token grants no access to organization ${orgId}`);
  if (!roles.some((role) => (allowed as readonly string[]).includes(role))) {
    throw forbidden(`this operation needs one of the roles ${allowed.join(', ')}`);
  }
}

/**
 * The key a rate limit counts under: the subject within the path's org (a fresh `iat` or another
 * spelling of the signature is the same person), and the client address for requests without a
 * valid token. A path org the token lacks counts under the subject alone, so it buys no new bucket.
 */
export function rateLimitKey(request: FastifyRequest): string {
  const principal = request.principal;
  if (!principal) return `ip:${request.ip}`;
  const orgId = (request.params as Record<string, string | undefined>).orgId;
  const org = orgId !== undefined && Object.hasOwn(principal.orgs, orgId) ? orgId : '-';
  return `sub:${JSON.stringify([org, principal.sub])}`;
}
