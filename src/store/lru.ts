// A bounded least-recently-used map: the oldest entry goes when a new one
// would exceed `max`, so a table that outside input can grow never needs a
// wholesale clear (which would send every caller back to the database at once).
export class Lru<K, V> {
  private readonly map = new Map<K, V>();

  constructor(readonly max: number) {
    if (!(max >= 1)) throw new RangeError('Lru: max must be at least 1');
  }

  get size(): number {
    return this.map.size;
  }

  /** The value, now the most recently used. */
  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as K);
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }

  /** Deletes every entry `drop` selects (a scan: for rare events such as a revocation). */
  deleteWhere(drop: (value: V, key: K) => boolean): number {
    let n = 0;
    for (const [k, v] of this.map) {
      if (drop(v, k)) {
        this.map.delete(k);
        n++;
      }
    }
    return n;
  }

  clear(): void {
    this.map.clear();
  }
}
