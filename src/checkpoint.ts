// A point between units of other work where time-critical work that has
// fallen due runs first. The pacing clock registers itself here
// (src/call/clock.ts); busy provider handlers call checkpoint() so a burst of
// their messages cannot hold a 20 ms audio step back until the event loop's
// timers phase. Without a registered hook it does nothing.
let hook: () => void = () => {};

export function checkpoint(): void {
  hook();
}

export function setCheckpoint(fn: () => void): void {
  hook = fn;
}
