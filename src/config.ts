import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

const blankAsUndefined = (value: unknown) =>
  typeof value === 'string' && value.trim() === '' ? undefined : value;
const optionalText = z.preprocess(blankAsUndefined, z.string().optional());
const integer = (fallback: number, min: number, max: number) =>
  z.preprocess(blankAsUndefined, z.coerce.number().int().min(min).max(max).default(fallback));

/** The environment ITS reads, every variable validated once at start-up. */
const Environment = z.object({
  /** Only `production` changes behaviour: it refuses to start without a JWT secret or key. */
  NODE_ENV: z.preprocess(blankAsUndefined, z.string().default('development')),
  PORT: integer(3000, 0, 65535),
  HOST: z.preprocess(blankAsUndefined, z.string().default('127.0.0.1')),
  DATA_DIR: z.preprocess(blankAsUndefined, z.string().default('./data')),
  DATABASE_URL: z.preprocess(
    blankAsUndefined,
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
      .optional(),
  ),
  EVENTSTORE_URL: z.preprocess(
    blankAsUndefined,
    z
      .string()
      .regex(/^esdb(\+discover)?:\/\//, 'must be an esdb:// URL')
      .optional(),
  ),
  JWT_SECRET: optionalText,
  /** PEM; `\n` escapes are accepted so the key fits on one line of an env file. */
  JWT_PUBLIC_KEY: z.preprocess(
    (value) => (typeof value === 'string' ? blankAsUndefined(value.replace(/\\n/g, '\n')) : value),
    z.string().optional(),
  ),
  JWT_ISSUER: optionalText,
  JWT_AUDIENCE: optionalText,
  /** Key of the HMAC that signs list cursors; derived from JWT_SECRET when unset. */
  CURSOR_SECRET: optionalText,
  LOG_LEVEL: z.preprocess(
    blankAsUndefined,
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ),
  CONSISTENCY_TIMEOUT_MS: integer(5000, 0, 600_000),
  RATE_LIMIT_PER_MINUTE: integer(6000, 1, Number.MAX_SAFE_INTEGER),
  /** Live streams (LIVE.md): open streams per token, keep-alive interval, unsent bytes before a slow client is cut off. */
  STREAM_MAX_PER_TOKEN: integer(20, 1, 100_000),
  STREAM_KEEPALIVE_MS: integer(15_000, 100, 3_600_000),
  STREAM_MAX_BUFFERED_BYTES: integer(1024 * 1024, 1024, 1024 * 1024 * 1024),
});

export interface JwtConfig {
  /** HS256 shared secret: verifies tokens, and lets `its token` mint them. */
  secret?: string;
  /** PEM public key: RS256 or ES256 tokens, verify only. */
  publicKey?: string;
  issuer?: string;
  audience?: string;
}

export interface Config {
  nodeEnv: string;
  port: number;
  host: string;
  dataDir: string;
  databaseUrl?: string;
  eventStoreUrl?: string;
  jwt: JwtConfig;
  /** Where the secret came from, so `serve` can say how to mint a token when it generated one. */
  jwtSecretSource: 'env' | 'generated' | 'file' | 'none';
  cursorSecret: Buffer;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  consistencyTimeoutMs: number;
  rateLimitPerMinute: number;
  stream: { maxPerToken: number; keepAliveMs: number; maxBufferedBytes: number };
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export interface LoadConfigOptions {
  /**
   * Without a JWT secret or key outside production, keep one at `DATA_DIR/jwt-secret` (created on
   * first use) so a fresh checkout runs with no configuration. Off for callers that only read config.
   */
  persistDevSecret?: boolean;
}

/** Reads and validates the configuration; throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, options: LoadConfigOptions = {}): Config {
  const parsed = Environment.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const e = parsed.data;
  let secret = e.JWT_SECRET;
  let source: Config['jwtSecretSource'] = secret ? 'env' : 'none';
  if (!secret && !e.JWT_PUBLIC_KEY) {
    if (e.NODE_ENV === 'production') {
      throw new ConfigError('JWT_SECRET or JWT_PUBLIC_KEY must be set when NODE_ENV=production');
    }
    if (options.persistDevSecret) ({ secret, source } = devSecret(e.DATA_DIR));
  }
  return {
    nodeEnv: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    dataDir: e.DATA_DIR,
    databaseUrl: e.DATABASE_URL,
    eventStoreUrl: e.EVENTSTORE_URL,
    jwt: { secret, publicKey: e.JWT_PUBLIC_KEY, issuer: e.JWT_ISSUER, audience: e.JWT_AUDIENCE },
    jwtSecretSource: source,
    cursorSecret: cursorKey(e.CURSOR_SECRET, secret),
    logLevel: e.LOG_LEVEL,
    consistencyTimeoutMs: e.CONSISTENCY_TIMEOUT_MS,
    rateLimitPerMinute: e.RATE_LIMIT_PER_MINUTE,
    stream: {
      maxPerToken: e.STREAM_MAX_PER_TOKEN,
      keepAliveMs: e.STREAM_KEEPALIVE_MS,
      maxBufferedBytes: e.STREAM_MAX_BUFFERED_BYTES,
    },
  };
}

/** A cursor key that survives restarts when a secret exists; otherwise random to this process. */
function cursorKey(explicit: string | undefined, jwtSecret: string | undefined): Buffer {
  const base = explicit ?? jwtSecret;
  if (!base) return randomBytes(32);
  return createHmac('sha256', base).update('its list cursor').digest();
}

function devSecret(dataDir: string): { secret: string; source: 'generated' | 'file' } {
  const file = path.join(dataDir, 'jwt-secret');
  try {
    const existing = readFileSync(file, 'utf8').trim();
    if (existing.length > 0) return { secret: existing, source: 'file' };
  } catch {
    // Absent: create it below.
  }
  const secret = randomBytes(32).toString('base64url');
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return { secret, source: 'generated' };
}

/** Where the dev secret lives, for messages. */
export function devSecretPath(config: Config): string {
  return path.join(config.dataDir, 'jwt-secret');
}
