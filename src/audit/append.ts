import type { AppendResult, EventStore, EventToAppend } from '../eventstore/port.ts';
import { chainEvents, isHash, storedHash, type ChainHead } from './chain.ts';

/**
 * The one way ITS writes events: hashes them onto `head` (the stream's last event as the writer
 * read it) and appends them expecting exactly that head, so a stream that moved meanwhile refuses
 * the append (WrongExpectedVersion) and the writer decides and hashes again. Answers the stream's
 * new head too, for a writer that keeps it; null when the store answered with an earlier landing
 * of the same event ids (a retry), whose hashes only a read can tell.
 */
export async function appendChained(
  store: EventStore,
  streamName: string,
  head: ChainHead,
  events: EventToAppend[],
): Promise<AppendResult & { head: ChainHead | null }> {
  const chained = chainEvents(head, events);
  const result = await store.append(streamName, chained, head.version === -1 ? 'no_stream' : head.version);
  const landedHere = result.version === head.version + chained.length;
  return {
    ...result,
    head: !landedHere
      ? null
      : chained.length === 0
        ? head
        : { version: result.version, hash: storedHash(chained.at(-1)!) },
  };
}

/** An append that bypassed `appendChained`: refused, so no event lands without its hash. */
export class UnchainedAppend extends Error {
  override readonly name = 'UnchainedAppend';
}

/**
 * The runtime's store: every port call passes through, but an append with an event that carries
 * no hash is refused before it reaches the store. A Proxy, so a method the port gains passes too.
 */
export function requireChainedAppends(store: EventStore): EventStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'append') {
        const append: EventStore['append'] = async (streamName, events, expected) => {
          const unhashed = events.find((event) => !isHash(event.metadata.hash));
          if (unhashed)
            throw new UnchainedAppend(
              `event ${unhashed.eventId} for ${streamName} has no hash: use appendChained`,
            );
          return target.append(streamName, events, expected);
        };
        return append;
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
