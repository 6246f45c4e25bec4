/**
 * One task at a time, in order; a named task asked for again before it has started runs once. So a
 * burst of live events while a reload runs causes exactly one more reload after it, never two at once.
 */
export function serialQueue() {
  let tail = Promise.resolve();
  const waiting = new Map();
  return function run(name, task) {
    if (waiting.has(name)) return waiting.get(name);
    const started = tail.then(() => {
      waiting.delete(name);
      return task();
    });
    waiting.set(name, started);
    tail = started.catch(() => {});
    return started;
  };
}
