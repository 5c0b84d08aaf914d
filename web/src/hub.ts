/**
 * The market hub client: one SignalR connection (`@microsoft/signalr`) shared by every view, and
 * one RowStore per topic.
 *
 * The wire format is SignalR's JSON hub protocol unless the page asks for MessagePack
 * (`?protocol=messagepack`, kept for the tab's session; `?protocol=json` goes back). MessagePack
 * frames are a third smaller, but Chromium's native JSON.parse decodes an SPX snapshot (24k rows)
 * about three times faster than the JavaScript MessagePack decoder, and decoding is what blocks
 * the page (`npm run bench`; docs/ARCHITECTURE.md has the figures). The MessagePack protocol is
 * a separate chunk, fetched only when selected. Both yield the same rows: maps become plain
 * objects, nil becomes null, and 64-bit integers (the ns timestamps `quote_ts`, `greeks_ts`,
 * `spot_ts`) become the nearest double, as JSON.parse makes them: above 2^53 they are exact to
 * 256 ns, which nothing here relies on (the seq logic uses `seq`, far below 2^53).
 *
 * Views retain a topic while they show it; the first retain invokes `Subscribe(topic)` and the
 * snapshot it returns replaces the topic's store. `update` messages are merged into the store of
 * their topic (older ones are ignored by the store). After a reconnect every retained topic is
 * subscribed again and continues from its new snapshot's seq. A topic nobody retains for
 * RELEASE_DELAY_MS is unsubscribed (switching views does not churn subscriptions).
 */

import {
  HttpTransportType,
  type HubConnection,
  HubConnectionBuilder,
  HubConnectionState,
  type IHubProtocol,
  JsonHubProtocol,
  LogLevel,
} from "@microsoft/signalr";
import { RowStore } from "./model/store";
import type { ContractRow, TopicMessage, UnderlyingRow } from "./model/types";

export type ConnectionStatus = "connecting" | "connected" | "reconnecting" | "disconnected";

/** The hub protocol's name, as the SignalR handshake spells it. */
export type WireProtocol = "messagepack" | "json";

const PROTOCOL_STORAGE = "flashalpha.protocol";

/** The protocol pages use unless told otherwise: the one that decodes faster in the browser. */
export const DEFAULT_PROTOCOL: WireProtocol = "json";

/**
 * The hub protocol of this page: DEFAULT_PROTOCOL unless `?protocol=json|messagepack` asks for
 * another; the choice is kept in the tab's sessionStorage (in-app navigation rewrites the
 * address bar, a reload keeps the protocol).
 */
export function wireProtocol(
  search: string,
  session: Pick<Storage, "getItem" | "setItem">,
): WireProtocol {
  const asked = new URLSearchParams(search).get("protocol")?.toLowerCase();
  if (asked === "json" || asked === "messagepack") session.setItem(PROTOCOL_STORAGE, asked);
  const kept = session.getItem(PROTOCOL_STORAGE);
  return kept === "json" || kept === "messagepack" ? kept : DEFAULT_PROTOCOL;
}

/** The SignalR protocol object; MessagePack's decoder is loaded on first use. */
export async function hubProtocol(protocol: WireProtocol): Promise<IHubProtocol> {
  if (protocol === "json") return new JsonHubProtocol();
  const { MessagePackHubProtocol } = await import("@microsoft/signalr-protocol-msgpack");
  return new MessagePackHubProtocol();
}

const RELEASE_DELAY_MS = 10_000;
const MAX_RETRY_DELAY_MS = 5_000;
const CHANGE_STAMP_MAX_AGE_MS = 2_000;

/**
 * Fields whose changes flash in the chain grid: the market's own numbers. Vols and greeks move
 * with every spot tick across the whole chain; flashing them would light up every cell.
 */
export const CHAIN_TRACKED_FIELDS = ["bid", "ask", "last", "volume", "open_interest"] as const;

interface Topic {
  store: RowStore<object>;
  retained: number;
  releaseTimer: ReturnType<typeof setTimeout> | null;
  subscribed: boolean;
}

function makeStore(topic: string): RowStore<object> {
  if (topic.startsWith("chain:") || topic.startsWith("contract:")) {
    return new RowStore<ContractRow>({
      key: (row) => row.symbol,
      tracked: CHAIN_TRACKED_FIELDS,
    }) as unknown as RowStore<object>;
  }
  return new RowStore<UnderlyingRow>({
    key: (row) => row.symbol,
    tracked: ["spot"],
  }) as unknown as RowStore<object>;
}

function retryDelay(previousRetries: number): number {
  return Math.min(MAX_RETRY_DELAY_MS, 250 * 2 ** previousRetries);
}

export class MarketHub {
  status: ConnectionStatus = "connecting";
  /** Why the connection last failed, for the status badge's tooltip. */
  lastError: string | null = null;
  /** Update messages received (all topics). */
  messages = 0;

  private readonly connection: HubConnection;
  private readonly topics = new Map<string, Topic>();
  private readonly statusListeners = new Set<() => void>();
  private startTries = 0;
  private startTimer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;

  /** The hub protocol's name ("json" or "messagepack"). */
  readonly protocol: string;

  constructor(url: string, apiKey: string | null, protocol: IHubProtocol = new JsonHubProtocol()) {
    this.protocol = protocol.name;
    this.connection = new HubConnectionBuilder()
      .withUrl(url, {
        transport: HttpTransportType.WebSockets,
        headers: apiKey ? { "X-Api-Key": apiKey } : {},
        accessTokenFactory: apiKey ? () => apiKey : undefined,
      })
      // Never give up: a trading screen left open must come back when the daemon does.
      .withAutomaticReconnect({
        nextRetryDelayInMilliseconds: (context) => retryDelay(context.previousRetryCount),
      })
      .withHubProtocol(protocol)
      .configureLogging(LogLevel.Warning)
      .build();
    this.connection.on("update", (message: TopicMessage<object>) => this.onUpdate(message));
    this.connection.onreconnecting((error) => {
      this.lastError = error ? String(error.message ?? error) : null;
      for (const topic of this.topics.values()) topic.subscribed = false;
      this.setStatus("reconnecting");
    });
    this.connection.onreconnected(() => {
      this.setStatus("connected");
      this.subscribeAll();
    });
    this.connection.onclose((error) => {
      for (const topic of this.topics.values()) topic.subscribed = false;
      if (error) this.lastError = String(error.message ?? error);
      this.setStatus("disconnected");
      if (!this.stopped) this.scheduleStart();
    });
  }

  start(): void {
    this.stopped = false;
    void this.tryStart();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.startTimer) clearTimeout(this.startTimer);
    await this.connection.stop();
  }

  /** The store of a topic (made on first use, not subscribed until retained). */
  store<R extends object>(topic: string): RowStore<R> {
    return this.entry(topic).store as unknown as RowStore<R>;
  }

  /** Keep a topic subscribed until the matching release. */
  retain(topic: string): void {
    const entry = this.entry(topic);
    entry.retained++;
    if (entry.releaseTimer !== null) {
      clearTimeout(entry.releaseTimer);
      entry.releaseTimer = null;
    }
    if (!entry.subscribed) void this.subscribe(topic, entry);
  }

  release(topic: string): void {
    const entry = this.topics.get(topic);
    if (entry === undefined) return;
    entry.retained = Math.max(0, entry.retained - 1);
    if (entry.retained > 0 || entry.releaseTimer !== null) return;
    entry.releaseTimer = setTimeout(() => {
      entry.releaseTimer = null;
      if (entry.retained > 0) return;
      this.topics.delete(topic);
      if (entry.subscribed && this.connection.state === HubConnectionState.Connected) {
        this.connection.invoke("Unsubscribe", topic).catch(() => undefined);
      }
    }, RELEASE_DELAY_MS);
  }

  onStatus(listener: () => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  private entry(topic: string): Topic {
    let entry = this.topics.get(topic);
    if (entry === undefined) {
      entry = { store: makeStore(topic), retained: 0, releaseTimer: null, subscribed: false };
      this.topics.set(topic, entry);
    }
    return entry;
  }

  private async tryStart(): Promise<void> {
    if (this.connection.state !== HubConnectionState.Disconnected) return;
    this.setStatus(this.startTries === 0 ? "connecting" : "disconnected");
    try {
      await this.connection.start();
      this.startTries = 0;
      this.lastError = null;
      this.setStatus("connected");
      this.subscribeAll();
    } catch (error) {
      this.lastError = String((error as Error).message ?? error);
      this.setStatus("disconnected");
      this.scheduleStart();
    }
  }

  private scheduleStart(): void {
    if (this.startTimer !== null || this.stopped) return;
    const delay = retryDelay(this.startTries++);
    this.startTimer = setTimeout(() => {
      this.startTimer = null;
      void this.tryStart();
    }, delay);
  }

  private subscribeAll(): void {
    for (const [topic, entry] of this.topics) {
      if (entry.retained > 0 || entry.releaseTimer !== null) void this.subscribe(topic, entry);
    }
  }

  private async subscribe(topic: string, entry: Topic): Promise<void> {
    if (this.connection.state !== HubConnectionState.Connected) return;
    entry.subscribed = true;
    try {
      const snapshot = await this.connection.invoke<TopicMessage<object>>("Subscribe", topic);
      entry.store.applySnapshot(snapshot);
    } catch (error) {
      entry.subscribed = false;
      // An error completion names the problem (e.g. an unknown underlying); a dropped
      // connection is retried by subscribeAll after the reconnect.
      if (this.connection.state === HubConnectionState.Connected) {
        entry.store.setError(String((error as Error).message ?? error));
      }
    }
  }

  private onUpdate(message: TopicMessage<object>): void {
    this.messages++;
    const entry = this.topics.get(message.topic);
    if (entry === undefined) return;
    const now = performance.now();
    entry.store.applyUpdate(message, now);
    // Change stamps only matter while a flash lasts; keep the map small.
    if (entry.store.updates % 64 === 0) entry.store.pruneChanges(now, CHANGE_STAMP_MAX_AGE_MS);
  }

  private setStatus(status: ConnectionStatus): void {
    if (status === this.status) return;
    this.status = status;
    for (const listener of this.statusListeners) listener();
  }
}
