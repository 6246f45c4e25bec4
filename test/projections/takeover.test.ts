import { randomInt } from 'node:crypto';
import { expect, it } from 'vitest';
import { appendLog, countEvents, generateLog, waitForCheckpoints } from './fixtures.ts';
import {
  ALL,
  describeWorkerProcesses,
  eventsProcessed,
  expectEachEventAppliedOnce,
  spawnWorker,
} from './processes.ts';

describeWorkerProcesses('two projection worker processes', (setup) => {
  it('of two workers started together, one leads each projection and the other takes over when it is killed', async () => {
    const { test } = setup;
    const store = test.store;
    const seed = randomInt(2 ** 31);
    const log = generateLog({ seed, orgs: [`pair${seed}`], incidents: 50, events: 1200 });
    const processedBefore = await eventsProcessed(test.database, ALL);
    const before = await store.headPosition('incident-');
    const head = await appendLog(store, log);
    const positions = (
      await store.readAll({ fromPosition: before, streamPrefix: 'incident-', limit: 5000 })
    ).map((event) => event.position);

    const first = spawnWorker(test.url!, 10, test.eventStoreUrl);
    const second = spawnWorker(test.url!, 10, test.eventStoreUrl);
    try {
      await Promise.all(
        ALL.map((name) => Promise.any([first, second].map((worker) => worker.waitForLead(name)))),
      );
      // Exactly one leader per projection, however they split between the two.
      expect([...first.led(), ...second.led()].sort()).toEqual([...ALL].sort());
      const victim = first.led().includes('audit') ? first : second;
      const survivor = victim === first ? second : first;
      const taken = victim.led();

      await waitForCheckpoints(
        test.database,
        positions[Math.floor(positions.length / 3) + randomInt(Math.floor(positions.length / 3))]!,
        ['audit'],
      );
      await victim.kill('SIGKILL');
      const atKill = await eventsProcessed(test.database, ALL);
      expect(
        atKill.audit! - processedBefore.audit!,
        'the victim was still projecting when killed',
      ).toBeLessThan(countEvents(log));

      await Promise.all(taken.map((name) => survivor.waitForLead(name)));
      await waitForCheckpoints(test.database, head, ALL, 45_000);
      expect(survivor.led().sort()).toEqual([...ALL].sort());
      await expectEachEventAppliedOnce(test.database, log, ALL, processedBefore);
    } finally {
      await Promise.all([first.kill('SIGTERM'), second.kill('SIGTERM')]);
    }
  }, 90_000);
});
