import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { runRebuildCommand, runStatusCommand } from '../../projections/cli.ts';
import { openConfiguredDatabase, openRuntime, type Runtime } from '../app/runtime.ts';
import { runAuditVerifyCommand } from '../audit/cli.ts';
import { ConfigError, devSecretPath, loadConfig, type Config } from '../config.ts';
import { migrateToLatest } from '../db/migrate.ts';
import { INCIDENT_ID_PATTERN, ORG_ID_PATTERN, incidentStreamName } from '../domain/streams.ts';
import { buildApp, openApiDocument, REDACTED_LOG_PATHS } from '../http/app.ts';
import { ROLES } from '../http/auth.ts';
import { parseDuration, signToken } from '../http/tokens.ts';
import { runRedeliver, runWebhookDeliveries, runWebhooksList } from '../webhooks/cli.ts';

/** `its`: the one command that serves, migrates, inspects projections and mints tokens. */
const program = new Command('its').description('ITS, the Incident & Timeline Service').showHelpAfterError();

function logger(config: Config): Logger {
  return pino({ level: config.logLevel, redact: { paths: REDACTED_LOG_PATHS, censor: '[redacted]' } });
}

/** Opens a runtime without projection workers for one command, and always closes it. */
async function withRuntime<T>(use: (runtime: Runtime) => Promise<T>): Promise<T> {
  const config = loadConfig(process.env, { persistDevSecret: true });
  const runtime = await openRuntime(config, { workers: false, migrate: true, logger: logger(config) });
  try {
    return await use(runtime);
  } finally {
    await runtime.close();
  }
}

program
  .command('serve')
  .description('apply pending migrations, then serve the API and/or run the projection workers')
  .addOption(
    new Option('--role <role>', 'all: API and projections; api: API only; projector: projections only')
      .choices(['all', 'api', 'projector'])
      .default('all'),
  )
  .action(async (options: { role: 'all' | 'api' | 'projector' }) => {
    const config = loadConfig(process.env, { persistDevSecret: true });
    const log = logger(config);
    if (config.jwt.secret && config.jwtSecretSource === 'env' && Buffer.byteLength(config.jwt.secret) < 32) {
      log.warn('JWT_SECRET is shorter than 32 bytes: HS256 tokens signed with it are easier to forge');
    }
    const runtime = await openRuntime(config, {
      workers: options.role !== 'api',
      migrate: true,
      logger: log,
    });
    const app = options.role === 'projector' ? null : buildApp(runtime, { loggerInstance: log });

    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) {
        log.warn('second %s: exiting now', signal);
        process.exit(1);
      }
      stopping = true;
      log.info('%s: finishing in-flight requests, then stopping the projections at a checkpoint', signal);
      // In-flight requests wait at most CONSISTENCY_TIMEOUT_MS for the read models; a socket still
      // open well after that belongs to a client that left, and must not hold the process up.
      setTimeout(() => app?.server.closeAllConnections(), config.consistencyTimeoutMs + 5000).unref();
      try {
        await app?.close();
        await runtime.close();
        process.exit(0);
      } catch (error) {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      }
    };
    process.on('SIGINT', () => void stop('SIGINT'));
    process.on('SIGTERM', () => void stop('SIGTERM'));

    if (app) {
      try {
        await app.listen({ port: config.port, host: config.host });
      } catch (error) {
        await runtime.close();
        throw error;
      }
    }
    log.info(
      { role: options.role, database: runtime.database.kind, eventStore: runtime.store.kind },
      'ITS is running',
    );
    if (config.jwtSecretSource === 'generated' || config.jwtSecretSource === 'file') {
      process.stderr.write(
        `\nNo JWT_SECRET is set: tokens are signed with the development secret in ${devSecretPath(config)}.\n` +
          `Mint one with:  node bin/its.js token --sub alice --org acme:ORG_ADMIN --admin\n` +
          `then:           curl -H "Authorization: Bearer <token>" http://${config.host}:${config.port}/api/orgs/acme/incidents\n` +
          (app ? `The war room:   ${developmentLink(app, config)}\n` : '') +
          '\n',
      );
    }
  });

/** The web app's address with a 12-hour ORG_ADMIN token for org acme in the fragment (never sent to the server). */
function developmentLink(app: FastifyInstance, config: Config): string {
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const now = Math.floor(Date.now() / 1000);
  const token = signToken(
    { sub: 'developer', name: 'Developer', orgs: { acme: ['ORG_ADMIN'] }, iat: now, exp: now + 12 * 3600 },
    'HS256',
    config.jwt.secret!,
  );
  // A wildcard listen address is no address to browse to; the loopback one always answers.
  const host = ['0.0.0.0', '::', ''].includes(config.host) ? '127.0.0.1' : config.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}/#token=${token}`;
}

program
  .command('migrate')
  .description('apply pending database migrations')
  .action(async () => {
    const config = loadConfig(process.env);
    const database = await openConfiguredDatabase(config);
    try {
      const results = await migrateToLatest(database.db);
      if (results.length === 0) console.log('database is up to date');
      for (const result of results)
        console.log(`${result.status === 'Success' ? 'applied' : result.status}: ${result.migrationName}`);
    } finally {
      await database.close();
    }
  });

const projections = program
  .command('projections')
  .description('inspect and rebuild the read-model projections');
projections
  .command('status')
  .description('each projection: checkpoint, lag, state, last error')
  .action(async () => {
    await withRuntime((runtime) => runStatusCommand(runtime));
  });
projections
  .command('rebuild')
  .description(
    'replay projections from the start (all when no name is given), without taking the read API down',
  )
  .argument('[names...]', 'projection names')
  .action(async (names: string[]) => {
    // Sets process.exitCode when a rebuild fails.
    await withRuntime((runtime) => runRebuildCommand(runtime, names));
  });

const orgRoles = (value: string, previous: Record<string, string[]>): Record<string, string[]> => {
  const match = /^([^:]+):(.+)$/.exec(value);
  if (!match || !ORG_ID_PATTERN.test(match[1]!)) throw new InvalidArgumentError('expected ORG:ROLE[,ROLE…]');
  const roles = match[2]!.split(',').map((role) => role.trim().toUpperCase());
  const unknown = roles.filter((role) => !(ROLES as readonly string[]).includes(role));
  if (unknown.length)
    throw new InvalidArgumentError(`unknown role ${unknown.join(', ')}; roles: ${ROLES.join(', ')}`);
  return { ...previous, [match[1]!]: [...new Set([...(previous[match[1]!] ?? []), ...roles])] };
};

program
  .command('token')
  .description('mint a token signed with the configured JWT_SECRET (or the development secret)')
  .requiredOption('--sub <sub>', 'the actor: user name or integration id')
  .option(
    '--org <ORG:ROLE[,ROLE]>',
    'an org and its roles; repeatable',
    orgRoles,
    {} as Record<string, string[]>,
  )
  .option('--admin', 'grant its_admin (the /admin routes)', false)
  .option('--name <name>', 'display name')
  .addOption(
    new Option('--actor-type <type>', 'actor type recorded on events').choices([
      'USER',
      'SYSTEM',
      'INTEGRATION',
    ]),
  )
  .option('--ttl <duration>', 'lifetime, e.g. 15m, 1h, 7d', '1h')
  .action(
    (options: {
      sub: string;
      org: Record<string, string[]>;
      admin: boolean;
      name?: string;
      actorType?: string;
      ttl: string;
    }) => {
      const config = loadConfig(process.env, { persistDevSecret: true });
      if (config.jwt.publicKey) {
        throw new ConfigError(
          'tokens are verified with JWT_PUBLIC_KEY: mint them with the matching private key, not with `its token`',
        );
      }
      if (parseDuration(options.ttl) > config.jwt.maxTtlSeconds)
        throw new ConfigError(
          `--ttl ${options.ttl} is longer than JWT_MAX_TTL allows: the service would refuse it`,
        );
      const now = Math.floor(Date.now() / 1000);
      const payload: Record<string, unknown> = {
        sub: options.sub,
        orgs: options.org,
        iat: now,
        exp: now + parseDuration(options.ttl),
        ...(options.name ? { name: options.name } : {}),
        ...(options.actorType ? { actor_type: options.actorType } : {}),
        ...(options.admin ? { its_admin: true } : {}),
        ...(config.jwt.issuer ? { iss: config.jwt.issuer } : {}),
        ...(config.jwt.audience ? { aud: config.jwt.audience } : {}),
      };
      console.log(signToken(payload, 'HS256', config.jwt.secret!));
    },
  );

program
  .command('events')
  .description("print an incident's raw stream as JSON lines")
  .argument('<orgId>')
  .argument('<incidentId>')
  .action(async (orgId: string, incidentId: string) => {
    if (!ORG_ID_PATTERN.test(orgId)) throw new InvalidArgumentError(`not an org id: ${orgId}`);
    if (!INCIDENT_ID_PATTERN.test(incidentId))
      throw new InvalidArgumentError(`not an incident id: ${incidentId}`);
    await withRuntime(async (runtime) => {
      const streamName = incidentStreamName(orgId, incidentId);
      const page = 1000;
      for (let fromVersion = 0; ; fromVersion += page) {
        const events = await runtime.store.readStream(streamName, { fromVersion, limit: page });
        if (fromVersion === 0 && events.length === 0) {
          process.stderr.write(`its: no events in ${streamName}\n`);
          process.exitCode = 1;
        }
        for (const event of events) process.stdout.write(`${JSON.stringify(event)}\n`);
        if (events.length < page) break;
      }
    });
  });

program
  .command('audit')
  .description('tamper evidence (AUDIT.md)')
  .command('verify')
  .description(
    'recompute the hash chain of every incident stream of an org (or the named ones); exit 1 on a broken one',
  )
  .argument('<orgId>')
  .argument('[incidentIds...]')
  .option('--json', 'one JSON verdict per stream on stdout, as the verify route answers')
  .action(async (orgId: string, incidentIds: string[], options: { json?: boolean }) => {
    if (!ORG_ID_PATTERN.test(orgId)) throw new InvalidArgumentError(`not an org id: ${orgId}`);
    const bad = incidentIds.find((id) => !INCIDENT_ID_PATTERN.test(id));
    if (bad !== undefined) throw new InvalidArgumentError(`not an incident id: ${bad}`);
    await withRuntime((runtime) => runAuditVerifyCommand(runtime, orgId, incidentIds, options));
  });

const webhooks = program.command('webhooks').description("an org's outbound webhooks and their deliveries");
webhooks
  .command('list')
  .description('each endpoint: state, URL, last delivery, last error')
  .argument('<orgId>')
  .action(async (orgId: string) => {
    await withRuntime((runtime) => runWebhooksList(runtime.webhooks.endpoints, orgId));
  });
webhooks
  .command('deliveries')
  .description("an endpoint's newest deliveries and their last attempt")
  .argument('<orgId>')
  .argument('<webhookId>')
  .addOption(new Option('--status <status>').choices(['pending', 'succeeded', 'failed']))
  .option('--limit <n>', 'how many', (value) => Number.parseInt(value, 10), 20)
  .action(
    async (
      orgId: string,
      webhookId: string,
      options: { status?: 'pending' | 'succeeded' | 'failed'; limit: number },
    ) => {
      await withRuntime((runtime) =>
        runWebhookDeliveries(runtime.webhooks.endpoints, orgId, webhookId, options),
      );
    },
  );
webhooks
  .command('redeliver')
  .description('attempt a delivery again, with the same webhook-id')
  .argument('<orgId>')
  .argument('<webhookId>')
  .argument('<deliveryId>')
  .action(async (orgId: string, webhookId: string, deliveryId: string) => {
    await withRuntime((runtime) => runRedeliver(runtime.webhooks.endpoints, orgId, webhookId, deliveryId));
  });

program
  .command('openapi')
  .description('write the OpenAPI document the server serves at /openapi.json (no database needed)')
  .option('--out <file>', 'write to this file instead of stdout')
  .action(async (options: { out?: string }) => {
    const text = `${JSON.stringify(await openApiDocument(), null, 2)}\n`;
    if (options.out) {
      mkdirSync(dirname(options.out), { recursive: true });
      writeFileSync(options.out, text);
    } else process.stdout.write(text);
  });

try {
  await program.parseAsync(process.argv);
} catch (error) {
  const message =
    error instanceof ConfigError || error instanceof InvalidArgumentError
      ? error.message
      : error instanceof Error
        ? (error.stack ?? error.message)
        : String(error);
  process.stderr.write(`its: ${message}\n`);
  process.exit(1);
}
