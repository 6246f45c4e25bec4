/** A wait that ends at a timeout or as soon as `wake` is called (a wake with nobody waiting is kept). */
export class Wakeup {
  private pending = false;
  private resolve: (() => void) | null = null;

  wake(): void {
    const resolve = this.resolve;
    if (resolve) resolve();
    else this.pending = true;
  }

  wait(timeoutMs: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.resolve === done) this.resolve = null;
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      this.resolve = done;
    });
  }
}
