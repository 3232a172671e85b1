/**
 * A seeded uniform [0, 1) generator (mulberry32): same seed, same sequence, on every platform. The one PRNG of
 * the project: the router's weighted pick, the emulator's engine, the load generator's arrivals and the
 * benchmarks all draw from it, so a seed reproduces a run end to end.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An exponential sample with the given rate (mean 1/rate) from a uniform [0, 1) source. */
export function exponential(random: () => number, rate: number): number {
  return -Math.log(1 - random()) / rate;
}
