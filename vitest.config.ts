import { configDefaults, defineConfig } from 'vitest/config';

/** The suites that run a second time with their events in EventStoreDB (test/support/eventstore.ts). */
const ON_EVENTSTOREDB = [
  'test/commands/**/*.test.ts',
  'test/projections/**/*.test.ts',
  'test/http/**/*.test.ts',
  'test/fuzz/**/*.test.ts',
  'test/faults/**/*.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'postgres', include: ['test/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'eventstoredb',
          include: ON_EVENTSTOREDB,
          // Already on EventStoreDB whatever the switch says: once is enough.
          exclude: [...configDefaults.exclude, 'test/faults/eventstoredb-faults.test.ts'],
          env: { ITS_TEST_EVENT_STORE: 'eventstoredb' },
        },
      },
    ],
  },
});
