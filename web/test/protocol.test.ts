/**
 * The hub's two wire formats carry the same rows: a MessagePack frame as the daemon writes it
 * (msgspec: uint64 for the ns timestamps, float64 for prices, nil for missing values) decodes to
 * exactly what the JSON frame of the same message decodes to.
 */
import {
  type CompletionMessage,
  type HubMessage,
  type InvocationMessage,
  MessageType,
  NullLogger,
} from "@microsoft/signalr";
import { describe, expect, it } from "vitest";
import { DEFAULT_PROTOCOL, hubProtocol, wireProtocol } from "../src/hub";
import { RowStore } from "../src/model/store";
import type { ContractRow, TopicMessage } from "../src/model/types";
import { jsonFrame, messagePackFrame, type Value } from "./msgpack";

const QUOTE_TS = 1_795_556_915_588_436_234n; // > 2^53: not exactly representable as a double
const row = {
  symbol: "O:SPX261218P06315000",
  osi: "SPX   261218P06315000",
  underlying: "SPX",
  expiry: "2026-12-18",
  right: "P",
  strike: 6315,
  bid: 39.9,
  ask: 40.3,
  bid_size: 210,
  ask_size: 206,
  last: null,
  volume: 0,
  open_interest: 71_361,
  iv: 0.1834,
  delta: -0.2875,
  theta: -412.5,
  quote_ts: QUOTE_TS,
  greeks_ts: null,
  seq: 745,
};
const update = {
  topic: "chain:SPX",
  seq: 5_000_000_000, // above 2^32: uint64 on the wire
  underlying: { symbol: "SPX", spot: 6598.5, spot_ts: QUOTE_TS + 1n, seq: 744 },
  rows: [row],
};

const messagePack = await hubProtocol("messagepack");
const json = await hubProtocol("json");

function decodeMessagePack(message: Value): InvocationMessage {
  const [parsed] = messagePack.parseMessages(messagePackFrame(message), NullLogger.instance);
  return parsed as InvocationMessage;
}

function decodeJson(message: Value): InvocationMessage {
  const [parsed] = json.parseMessages(jsonFrame(message), NullLogger.instance);
  return parsed as InvocationMessage;
}

describe("hub protocols", () => {
  const msgpack = decodeMessagePack([1, {}, null, "update", [update], []]);
  const text = decodeJson({ type: 1, target: "update", arguments: [update] });

  it("decode an update to the same message", () => {
    expect(msgpack.type).toBe(MessageType.Invocation);
    expect(msgpack.target).toBe("update");
    expect(msgpack.arguments).toEqual(text.arguments);
    const decoded = msgpack.arguments[0] as TopicMessage<ContractRow>;
    expect(Object.getPrototypeOf(decoded.rows[0])).toBe(Object.prototype);
    expect(decoded.rows[0].last).toBeNull();
    expect(decoded.rows[0].greeks_ts).toBeNull();
    expect(decoded.seq).toBe(5_000_000_000);
  });

  it("round 64-bit timestamps to the double JSON.parse gives", () => {
    const decoded = msgpack.arguments[0] as TopicMessage<ContractRow>;
    expect(typeof decoded.rows[0].quote_ts).toBe("number");
    expect(decoded.rows[0].quote_ts).toBe(JSON.parse(QUOTE_TS.toString()));
    expect(decoded.rows[0].quote_ts).toBe(Number(QUOTE_TS));
    expect(decoded.underlying!.spot_ts).toBe(Number(QUOTE_TS + 1n));
  });

  it("decode a Subscribe completion (the snapshot) the same way", () => {
    const completion = decodeMessagePack([3, {}, "0", 3, update]) as HubMessage;
    const reference = decodeJson({ type: 3, invocationId: "0", result: update }) as HubMessage;
    expect(completion.type).toBe(MessageType.Completion);
    expect((completion as CompletionMessage).invocationId).toBe("0");
    expect((completion as CompletionMessage).result).toEqual((reference as CompletionMessage).result);
  });

  it("feed the store the same rows and seqs", () => {
    const stores = [msgpack, text].map((message) => {
      const store = new RowStore<ContractRow>({ key: (r) => r.symbol });
      store.applySnapshot({ topic: "chain:SPX", seq: 4_999_999_999, rows: [] });
      store.applyUpdate(message.arguments[0] as TopicMessage<ContractRow>, 0);
      return store;
    });
    expect(stores[0].seq).toBe(5_000_000_000);
    expect([...stores[0].rows]).toEqual([...stores[1].rows]);
    expect(stores[0].underlying).toEqual(stores[1].underlying);
  });
});

describe("wireProtocol", () => {
  const session = () => {
    const items = new Map<string, string>();
    return {
      getItem: (key: string) => items.get(key) ?? null,
      setItem: (key: string, value: string) => void items.set(key, value),
    };
  };

  it("is the default unless the page asks for another, for the rest of the session", () => {
    const storage = session();
    expect(wireProtocol("", storage)).toBe(DEFAULT_PROTOCOL);
    expect(wireProtocol("?expiry=2026-12-18", storage)).toBe(DEFAULT_PROTOCOL);
    expect(wireProtocol("?protocol=MessagePack", storage)).toBe("messagepack");
    expect(wireProtocol("", storage)).toBe("messagepack");
    expect(wireProtocol("?protocol=xml", storage)).toBe("messagepack");
    expect(wireProtocol("?protocol=json", storage)).toBe("json");
    expect(wireProtocol("", storage)).toBe("json");
  });

  it("names the protocol as the handshake does", () => {
    expect([messagePack.name, json.name]).toEqual(["messagepack", "json"]);
  });
});
