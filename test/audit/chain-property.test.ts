import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { verifyChain } from '../../src/audit/chain.ts';
import { IncidentCommands, type CommandInput, type CommandMetrics } from '../../src/commands/index.ts';
import { DomainError } from '../../src/domain/incident/index.ts';
import { incidentStreamName } from '../../src/domain/streams.ts';
import { databaseLabel, useTestStore } from '../support/database.ts';

const tag = fc.constantFrom('db', 'latency', 'network');
// Arbitrary JSON in signal data: the chain must survive the store's round trip (jsonb reorders keys, …).
const signalData = fc
  .dictionary(
    fc.string({ maxLength: 6, unit: 'grapheme' }),
    fc.jsonValue({ maxDepth: 2, stringUnit: 'grapheme' }),
  )
  .map((value) => JSON.parse(JSON.stringify(value)) as Record<string, unknown>)
  .filter((value) => !JSON.stringify(value).includes('\\u0000'));

const command: fc.Arbitrary<CommandInput> = fc.oneof(
  tag.map((t): CommandInput => ({ type: 'AddTag', tag: t })),
  tag.map((t): CommandInput => ({ type: 'RemoveTag', tag: t })),
  fc
    .constantFrom('SEV1', 'SEV2', 'SEV3')
    .map((s): CommandInput => ({ type: 'ChangeSeverity', newSeverity: s })),
  fc
    .constantFrom('INVESTIGATING', 'MITIGATED', 'RESOLVED')
    .map((s): CommandInput => ({ type: 'ChangeStatus', newStatus: s })),
  fc
    .string({ minLength: 1, maxLength: 20, unit: 'grapheme' })
    .map((label): CommandInput => ({ type: 'RecordAction', actionKind: 'NOTE', label })),
  signalData.map((data): CommandInput => ({
    type: 'IngestSignal',
    signalType: 'ALERT',
    source: 'prop',
    summary: 's',
    data,
  })),
);

describe(`the hash chain under concurrent writers on ${databaseLabel}`, () => {
  const scope = useTestStore();

  it('random command sequences from racing writers leave an unbroken chain', async () => {
    let lostRaces = 0;
    const metrics: CommandMetrics = { commandDone() {}, appendDuration() {}, retry: () => void lostRaces++ };
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(command, { maxLength: 8 }), { minLength: 2, maxLength: 4 }),
        fc.integer({ min: 1, max: 5 }),
        async (writers, snapshotEvery) => {
          const orgId = `prop${randomUUID().slice(0, 8)}`;
          const ctx = { orgId, actor: { type: 'USER' as const, ref: 'prop' }, correlationId: randomUUID() };
          // One handler per writer, as separate API processes would be; snapshots often, to load from them.
          const handlers = writers.map(
            () =>
              new IncidentCommands({
                store: scope.store,
                database: scope.test.database,
                snapshotEvery,
                maxRetries: 50,
                metrics,
              }),
          );
          const { incidentId } = await handlers[0]!.execute(ctx, null, {
            type: 'CreateIncident',
            projectId: 'p',
            title: 't',
            serviceName: 's',
            severity: 'SEV2',
            environment: 'prod',
          });
          await Promise.all(
            writers.map(async (commands, index) => {
              for (const input of commands)
                await handlers[index]!.execute(ctx, incidentId, input).catch((error: unknown) => {
                  // A command the state refuses (RESOLVED → MITIGATED…) is fine; a broken write is not.
                  if (!(error instanceof DomainError)) throw error;
                });
            }),
          );
          const events = await scope.store.readStream(incidentStreamName(orgId, incidentId));
          expect(verifyChain(events)).toMatchObject({
            events: events.length,
            unchained: 0,
            valid: true,
            headVersion: events.length - 1,
            headHash: events.at(-1)!.metadata.hash,
          });
        },
      ),
      { numRuns: 15 },
    );
    // The writers did race: some appends lost, decided again and hashed again.
    expect(lostRaces).toBeGreaterThan(0);
  });
});
