import type { StartedTestContainer } from 'testcontainers';
import { openEventStoreDb, type EventStoreDbEventStore } from '../../src/eventstore/eventstoredb/index.ts';
import { describeEventStoreContract } from './eventstore-contract.ts';

/** The version docker-compose.yml pins (README, "EventStoreDB"). */
const IMAGE = 'docker.kurrent.io/kurrent-latest/kurrentdb:25.0.0';
const configuredUrl = process.env.EVENTSTORE_URL;

/**
 * Why the container cannot be started here, or null when a Docker engine answers; waits only a
 * short while, so that no engine does not slow the suite down. testcontainers is loaded here, not
 * at the top: where it cannot load (testcontainers 12 brings undici 8, which needs Node 22.19 or
 * later) the suite is skipped instead of failing to import.
 */
async function whyNoDocker(timeoutMs = 5_000): Promise<string | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no Docker engine answered within ${timeoutMs} ms`), timeoutMs);
  });
  const probe = import('testcontainers').then(
    ({ getContainerRuntimeClient }) =>
      getContainerRuntimeClient().then(
        () => null,
        () => 'no Docker engine answered',
      ),
    (error: unknown) =>
      `testcontainers does not load on Node ${process.versions.node}: ${error instanceof Error ? error.message : String(error)}`,
  );
  try {
    return await Promise.race([probe, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const skipWhy = configuredUrl ? null : await whyNoDocker();

/** The node answers health checks a moment before it takes writes; wait until a read goes through. */
async function untilAnswering(store: EventStoreDbEventStore, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await store.ping();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

describeEventStoreContract(
  `EventStoreDB (${configuredUrl ? 'EVENTSTORE_URL' : IMAGE})`,
  async () => {
    let container: StartedTestContainer | undefined;
    let url = configuredUrl;
    if (!url) {
      const { GenericContainer, Wait } = await import('testcontainers');
      container = await new GenericContainer(IMAGE)
        .withEnvironment({
          KURRENTDB_INSECURE: 'true',
          KURRENTDB_RUN_PROJECTIONS: 'None',
          KURRENTDB_MEM_DB: 'true',
        })
        .withExposedPorts(2113)
        .withWaitStrategy(
          Wait.forHttp('/health/live', 2113).forStatusCodeMatching((status) => status >= 200 && status < 300),
        )
        .withStartupTimeout(120_000)
        .start();
      url = `esdb://${container.getHost()}:${container.getMappedPort(2113)}?tls=false`;
    }
    const store = openEventStoreDb(url);
    await untilAnswering(store);
    return {
      store,
      async cleanup() {
        await store.close();
        await container?.stop();
      },
    };
  },
  // The contract suite prints the one line that says it was skipped, and why.
  { skipWhy: skipWhy === null ? undefined : `set EVENTSTORE_URL or start a Docker engine (${skipWhy})` },
);
