import type { EventStore, RecordedEvent } from '../../src/eventstore/port.ts';

/** A running subscription that collects what it receives; `until(n)` resolves once n events arrived. */
export function collect(store: EventStore, streamPrefix: string) {
  const controller = new AbortController();
  const received: RecordedEvent[] = [];
  let onEvent = () => {};
  const running = (async () => {
    for await (const recorded of store.subscribe({ streamPrefix, signal: controller.signal })) {
      received.push(recorded);
      onEvent();
    }
  })();
  return {
    received,
    until: (count: number) =>
      new Promise<void>((resolve) => {
        onEvent = () => received.length >= count && resolve();
        onEvent();
      }),
    async stop() {
      controller.abort();
      await running;
    },
  };
}
