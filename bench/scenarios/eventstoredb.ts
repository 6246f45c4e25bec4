/**
 * The EventStoreDB adapter on the in-process test server (test/support/eventstoredb-server): appends/s
 * beside bare gRPC Append calls to the same server, and the cost of one org-feed page in a log of
 * 1,000 orgs beside a log of that org alone. The server is in-process, so the figures measure the
 * adapter and the client on the wire protocol, not a real node's disk.
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { EventStoreDBClient, FORWARDS, START } from '@eventstore/db-client';
import { openEventStoreDb } from '../../src/eventstore/eventstoredb/index.ts';
import { isWanted } from '../../src/eventstore/eventstoredb/mapping.ts';
import {
  startEventStoreDbTestServer,
  type EventStoreDbTestServer,
} from '../../test/support/eventstoredb-server/index.ts';
import { sharedPb, streamsGrpc, streamsPb } from '../../test/support/eventstoredb-server/protocol.ts';
import { appendThroughput, noteEvent, summarize, throughput, type BenchRow } from '../lib.ts';

// The same event appendThroughput (../lib.ts) appends, so the bare calls carry the same bytes.
const { data, metadata } = noteEvent();
const PAGE = 50;
const EVENTS_PER_ORG = 20;

export async function eventStoreDbScenario(durationMs: number): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const server = await startEventStoreDbTestServer();
  const store = openEventStoreDb(server.url);
  const bare = new streamsGrpc.StreamsClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  try {
    for (const writers of [1, 16]) {
      const run = randomUUID().slice(0, 8);
      const raw = await throughput(writers, durationMs, (loop) => bareAppend(bare, `raw-${run}-${loop}`));
      const appends = await appendThroughput(store, writers, durationMs);
      rows.push({
        scenario: 'eventstoredb (test server)',
        metric: `appends/s, ${writers} writer${writers > 1 ? 's' : ''}`,
        value: appends,
        unit: 'events/s',
        baseline: { label: 'bare gRPC Append calls/s', value: raw },
      });
    }
  } finally {
    bare.close();
    await store.close();
    await server.close();
  }

  const alone = await openLog(1);
  const crowded = await openLog(1_000);
  try {
    // Warm both, then alternate, so load on a shared machine falls on both alike.
    for (let i = 0; i < 3; i++) {
      await alone.page();
      await crowded.page();
    }
    const filtered = { alone: [] as number[], crowded: [] as number[] };
    const clientSide: number[] = [];
    for (let i = 0; i < 15; i++) {
      filtered.alone.push(await alone.page());
      filtered.crowded.push(await crowded.page());
      if (i < 3) clientSide.push(await crowded.clientSidePage()); // reads the whole log: three samples
    }
    const crowdedP50 = summarize(filtered.crowded).p50;
    rows.push({
      scenario: 'eventstoredb (test server)',
      metric: `org-feed page (${EVENTS_PER_ORG} events), 1,000 orgs × ${EVENTS_PER_ORG} events in the log, p50`,
      value: crowdedP50,
      unit: 'ms',
      baseline: { label: 'the same page, a log of that org alone', value: summarize(filtered.alone).p50 },
      target: '<= 2',
    });
    rows.push({
      scenario: 'eventstoredb (test server)',
      metric: 'the same page filtered on the client (readAll, the 6.2.1 read route), p50',
      value: summarize(clientSide).p50,
      unit: 'ms',
      baseline: { label: 'filtered by the server (subscription read)', value: crowdedP50 },
    });
  } finally {
    await alone.close();
    await crowded.close();
  }
  return rows;
}

/** A test server whose log holds `orgs` orgs; the measured org is the first. */
async function openLog(orgs: number) {
  const server = await startEventStoreDbTestServer();
  const store = openEventStoreDb(server.url);
  const client = EventStoreDBClient.connectionString(server.url);
  seed(server, orgs);
  const prefix = 'incident-org0.';
  return {
    /** Milliseconds for one page through the adapter. */
    async page(): Promise<number> {
      const started = performance.now();
      const page = await store.readAll({ streamPrefix: prefix, limit: PAGE });
      if (page.length !== EVENTS_PER_ORG)
        throw new Error(`expected ${EVENTS_PER_ORG} events, read ${page.length}`);
      return performance.now() - started;
    },
    /** Milliseconds for the same page read from `$all` and filtered here. */
    async clientSidePage(): Promise<number> {
      const started = performance.now();
      let found = 0;
      for await (const resolved of client.readAll({ fromPosition: START, direction: FORWARDS })) {
        if (resolved.event && isWanted(resolved.event.streamId, resolved.event.type, prefix)) found++;
        if (found === PAGE) break;
      }
      return performance.now() - started;
    },
    async close() {
      await client.dispose();
      await store.close();
      await server.close();
    },
  };
}

/** Writes straight into the test server's log: org `o`'s incidents interleaved with every other org's. */
function seed(server: EventStoreDbTestServer, orgs: number): void {
  const body = new TextEncoder().encode(JSON.stringify(data));
  const meta = new TextEncoder().encode(JSON.stringify(metadata));
  for (let round = 0; round < EVENTS_PER_ORG; round++) {
    for (let org = 0; org < orgs; org++) {
      server.log.append(
        `incident-org${org}.inc_${round % 4}`,
        [
          {
            eventId: randomUUID(),
            type: 'INCIDENT_NOTE_ADDED',
            contentType: 'application/json',
            data: body,
            metadata: meta,
          },
        ],
        'any',
      );
    }
  }
}

/** One Append call, as the wire protocol has it: options, one proposed message, end. */
function bareAppend(client: InstanceType<typeof streamsGrpc.StreamsClient>, stream: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const call = client.append((error) => (error ? reject(error) : resolve()));
    const options = new streamsPb.AppendReq.Options();
    const identifier = new sharedPb.StreamIdentifier();
    identifier.setStreamName(Buffer.from(stream));
    options.setStreamIdentifier(identifier);
    options.setAny(new sharedPb.Empty());
    const head = new streamsPb.AppendReq();
    head.setOptions(options);
    call.write(head);
    const message = new streamsPb.AppendReq.ProposedMessage();
    const id = new sharedPb.UUID();
    id.setString(randomUUID());
    message.setId(id);
    message.getMetadataMap().set('type', 'INCIDENT_NOTE_ADDED');
    message.getMetadataMap().set('content-type', 'application/json');
    message.setData(Buffer.from(JSON.stringify(data)));
    message.setCustomMetadata(Buffer.from(JSON.stringify(metadata)));
    const event = new streamsPb.AppendReq();
    event.setProposedMessage(message);
    call.write(event);
    call.end();
  });
}
