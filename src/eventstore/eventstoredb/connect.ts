/**
 * A client from a connection string, with two things 6.2.1's `connectionString()` gets wrong:
 * it ignores `tlsVerifyCert=false` (it only warns), and its parse error carries the whole string,
 * password included, in `.message` and `.connectionString`.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { EventStoreDBClient, type ChannelCredentialOptions } from '@eventstore/db-client';
import {
  parseConnectionString,
  type ConnectionOptions,
} from '@eventstore/db-client/dist/Client/parseConnectionString.js';

/** The connection string cannot be used; the message never contains its credentials. */
export class EventStoreConnectionStringError extends Error {
  override readonly name = 'EventStoreConnectionStringError';
}

/** The string with any `user:password@` replaced, safe for a log line or an error. */
export function redactConnectionString(connectionString: string): string {
  return connectionString.replace(/(\/\/)[^@/?]*@/, '$1***@');
}

function parse(connectionString: string): ConnectionOptions {
  // The client's parser warns on stdout that it ignores tlsVerifyCert=false; we apply it ourselves.
  const withoutVerify = connectionString.replace(
    /([?&])tlsVerifyCert=(true|false)(&|$)/i,
    (_, lead, _v, tail) => (tail ? lead : ''),
  );
  try {
    const options = parseConnectionString(withoutVerify);
    const verify = /[?&]tlsVerifyCert=false(&|$)/i.test(connectionString) ? false : undefined;
    return verify === undefined ? options : { ...options, tlsVerifyCert: verify };
  } catch (error) {
    const expected = (error as { expected?: unknown }).expected;
    throw new EventStoreConnectionStringError(
      `not a valid EventStoreDB connection string (${redactConnectionString(connectionString.slice(0, 200))})` +
        (typeof expected === 'string' ? `: expected ${expected}` : ''),
    );
  }
}

function readFile(file: string): Buffer {
  const resolved = path.resolve(process.cwd(), file);
  if (!existsSync(resolved)) throw new EventStoreConnectionStringError(`file not found: ${resolved}`);
  return readFileSync(resolved);
}

export function createClient(connectionString: string): EventStoreDBClient {
  const options = parse(connectionString);
  const credentials: ChannelCredentialOptions = { insecure: options.tls === false };
  if (!credentials.insecure) {
    if (options.tlsCAFile) credentials.rootCertificate = readFile(options.tlsCAFile);
    if (options.userCertFile || options.userKeyFile) {
      if (!options.userCertFile || !options.userKeyFile)
        throw new EventStoreConnectionStringError('userCertFile must be given with userKeyFile');
      credentials.userCertFile = readFile(options.userCertFile);
      credentials.userKeyFile = readFile(options.userKeyFile);
    }
    // Encryption without verification: what the EventStoreDB docs mean by tlsVerifyCert=false.
    if (options.tlsVerifyCert === false)
      credentials.verifyOptions = { rejectUnauthorized: false, checkServerIdentity: () => undefined };
  }
  const common = {
    throwOnAppendFailure: options.throwOnAppendFailure,
    keepAliveInterval: options.keepAliveInterval,
    keepAliveTimeout: options.keepAliveTimeout,
    defaultDeadline: options.defaultDeadline,
    connectionName: options.connectionName,
  };
  const cluster = {
    nodePreference: options.nodePreference,
    discoveryInterval: options.discoveryInterval,
    gossipTimeout: options.gossipTimeout,
    maxDiscoverAttempts: options.maxDiscoverAttempts,
  };
  const [first] = options.hosts;
  if (!first) throw new EventStoreConnectionStringError('the connection string names no host');
  const user = options.defaultCredentials;
  if (options.dnsDiscover)
    return new EventStoreDBClient(
      dropUndefined({ discover: first, ...cluster, ...common }),
      credentials,
      user,
    );
  if (options.hosts.length > 1)
    return new EventStoreDBClient(
      dropUndefined({ endpoints: options.hosts, ...cluster, ...common }),
      credentials,
      user,
    );
  return new EventStoreDBClient(dropUndefined({ endpoint: first, ...common }), credentials, user);
}

/** The client's constructor treats a present-but-undefined option as given. */
function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
