/**
 * A FIFO queue on a growable ring buffer: O(1) push and shift at any size
 * (`Array.prototype.shift` turns O(n) past ~16k entries). The capacity is a power of two, so
 * that wrapping around is a mask rather than a division.
 */
export class RingQueue<T> {
  private items: (T | undefined)[];
  private head = 0;
  private count = 0;

  constructor(capacity = 16) {
    let size = 2;
    while (size < capacity) size *= 2;
    this.items = new Array<T | undefined>(size);
  }

  /** Number of queued items. */
  get length(): number {
    return this.count;
  }

  /** Appends an item. */
  push(item: T): void {
    if (this.count === this.items.length) this.grow();
    this.items[(this.head + this.count) & (this.items.length - 1)] = item;
    this.count++;
  }

  /** Removes and returns the oldest item. */
  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) & (this.items.length - 1);
    this.count--;
    return item;
  }

  private grow(): void {
    const next = new Array<T | undefined>(this.items.length * 2);
    const mask = this.items.length - 1;
    for (let i = 0; i < this.count; i++) next[i] = this.items[(this.head + i) & mask];
    this.items = next;
    this.head = 0;
  }
}
