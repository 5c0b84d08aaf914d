/**
 * The client side of DESIGN.md rule 2 (sequence numbers everywhere): one RowStore per hub topic.
 *
 * A snapshot (the result of `Subscribe`) replaces the store and sets its seq; an `update` older
 * than that seq is ignored, newer ones are merged row by row into a Map keyed by symbol. A row
 * whose own seq is older than the held row's is skipped (the held row is newer market data);
 * equal seqs merge, since computed columns (greeks) are written without a new seq.
 * Changed numeric fields are stamped with the time and direction of the change so that the
 * grid can flash them.
 */

import type { TopicMessage, UnderlyingRow } from "./types";

/** Per field: +t when it went up at time t (ms), -t when it went down. */
export type FieldChanges = Record<string, number>;

export type Listener = () => void;

export interface RowStoreOptions<R> {
  /** The row's key (its symbol). */
  key: (row: R) => string;
  /** Numeric fields whose changes are recorded for flashing. */
  tracked?: readonly string[];
}

export class RowStore<R extends object> {
  readonly rows = new Map<string, R>();
  readonly changes = new Map<string, FieldChanges>();
  /** Seq of the last snapshot or applied update; -1 before the first snapshot. */
  seq = -1;
  /** Bumped whenever a row changes. */
  version = 0;
  /** Bumped whenever the set of keys changes (rows added or a snapshot replaced them). */
  structure = 0;
  /** Chain topics: the underlying sent with the last snapshot or update (spot at that seq). */
  underlying: UnderlyingRow | null = null;
  /** Whether a snapshot arrived since the store was made. */
  loaded = false;
  /** Last error of the subscription (e.g. an unknown topic), shown instead of the data. */
  error: string | null = null;
  /** Updates applied and rows merged since the store was made (for the status bar). */
  updates = 0;
  rowsMerged = 0;

  private readonly keyOf: (row: R) => string;
  private readonly tracked: readonly string[];
  private readonly listeners = new Set<Listener>();

  constructor(options: RowStoreOptions<R>) {
    this.keyOf = options.key;
    this.tracked = options.tracked ?? [];
  }

  /** Replace everything with a snapshot: the truth as of `message.seq`. */
  applySnapshot(message: TopicMessage<R>): void {
    this.rows.clear();
    this.changes.clear();
    for (const row of message.rows) this.rows.set(this.keyOf(row), row);
    this.underlying = message.underlying ?? null;
    this.seq = message.seq;
    this.loaded = true;
    this.error = null;
    this.version++;
    this.structure++;
    this.notify();
  }

  /**
   * Merge an update; returns the number of rows merged (0 for an update older than the store).
   * `now` (ms) stamps the changed fields.
   */
  applyUpdate(message: TopicMessage<R>, now: number): number {
    if (message.seq < this.seq) return 0;
    let merged = 0;
    let added = false;
    for (const row of message.rows) {
      const key = this.keyOf(row);
      const held = this.rows.get(key);
      if (held === undefined) {
        this.rows.set(key, row);
        added = true;
        merged++;
        continue;
      }
      const rowSeq = (row as { seq?: number }).seq;
      const heldSeq = (held as { seq?: number }).seq;
      if (rowSeq !== undefined && heldSeq !== undefined && rowSeq < heldSeq) continue;
      this.recordChanges(key, held, row, now);
      // Spread so that a partial row (only the changed fields) keeps the held values.
      this.rows.set(key, { ...held, ...row });
      merged++;
    }
    let spotMoved = false;
    if (message.underlying !== undefined) {
      spotMoved = message.underlying.spot !== this.underlying?.spot;
      this.underlying = message.underlying;
    }
    this.seq = Math.max(this.seq, message.seq);
    this.updates++;
    this.rowsMerged += merged;
    if (merged > 0 || spotMoved) {
      this.version++;
      if (added) this.structure++;
      this.notify();
    }
    return merged;
  }

  /** Forget change stamps older than `maxAgeMs`. */
  pruneChanges(now: number, maxAgeMs: number): void {
    for (const [key, fields] of this.changes) {
      let live = false;
      for (const field in fields) {
        if (now - Math.abs(fields[field]) < maxAgeMs) live = true;
        else delete fields[field];
      }
      if (!live) this.changes.delete(key);
    }
  }

  setError(message: string): void {
    this.error = message;
    this.version++;
    this.notify();
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private recordChanges(key: string, held: R, row: R, now: number): void {
    let fields: FieldChanges | undefined;
    for (const field of this.tracked) {
      const next = (row as Record<string, unknown>)[field];
      const previous = (held as Record<string, unknown>)[field];
      if (typeof next !== "number" || typeof previous !== "number" || next === previous) continue;
      fields ??= this.changes.get(key) ?? {};
      fields[field] = next > previous ? now : -now;
    }
    if (fields !== undefined) this.changes.set(key, fields);
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }
}

/**
 * Direction of a recent change of `field` in `changes`: 1 up, -1 down, 0 none within
 * `windowMs` of `now`.
 */
export function flashDirection(
  changes: FieldChanges | undefined,
  field: string,
  now: number,
  windowMs: number,
): -1 | 0 | 1 {
  const stamp = changes?.[field];
  if (stamp === undefined || now - Math.abs(stamp) >= windowMs) return 0;
  return stamp > 0 ? 1 : -1;
}
