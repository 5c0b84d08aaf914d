/**
 * Hub frames as the daemon writes them, for tests and benchmarks: MessagePack as msgspec encodes
 * it (integers in the smallest int, bigints as uint64, other numbers as float64) with SignalR's
 * varint length prefix, and the JSON text of the same message.
 */

export type Value = null | boolean | number | bigint | string | Value[] | { [key: string]: Value };

class Writer {
  bytes = new Uint8Array(1024);
  length = 0;
  private readonly view64 = new DataView(new ArrayBuffer(8));

  push(...values: number[]): void {
    this.reserve(values.length);
    for (const value of values) this.bytes[this.length++] = value;
  }

  /** `count` bytes of `n`, most significant first. */
  int(n: number, count: number): void {
    for (let i = count - 1; i >= 0; i--) this.push(Math.floor(n / 2 ** (8 * i)) & 0xff);
  }

  float64(value: number): void {
    this.view64.setFloat64(0, value);
    this.append(new Uint8Array(this.view64.buffer));
  }

  append(chunk: Uint8Array): void {
    this.reserve(chunk.length);
    this.bytes.set(chunk, this.length);
    this.length += chunk.length;
  }

  private reserve(extra: number): void {
    if (this.length + extra <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + extra) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }
}

const utf8 = new TextEncoder();

function pack(value: Value, out: Writer): void {
  if (value === null) out.push(0xc0);
  else if (typeof value === "boolean") out.push(value ? 0xc3 : 0xc2);
  else if (typeof value === "bigint") {
    out.push(0xcf);
    for (let i = 7; i >= 0; i--) out.push(Number((value >> BigInt(8 * i)) & 0xffn));
  } else if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value < 2 ** 32) {
    if (value < 0x80) out.push(value);
    else if (value < 0x100) out.push(0xcc, value);
    else if (value < 0x10000) {
      out.push(0xcd);
      out.int(value, 2);
    } else {
      out.push(0xce);
      out.int(value, 4);
    }
  } else if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) {
    out.push(0xcf);
    out.int(value, 8);
  } else if (typeof value === "number") {
    out.push(0xcb);
    out.float64(value);
  } else if (typeof value === "string") {
    const encoded = utf8.encode(value);
    if (encoded.length < 32) out.push(0xa0 | encoded.length);
    else out.push(0xd9, encoded.length);
    out.append(encoded);
  } else if (Array.isArray(value)) {
    if (value.length < 16) out.push(0x90 | value.length);
    else {
      out.push(0xdd);
      out.int(value.length, 4);
    }
    for (const item of value) pack(item, out);
  } else {
    const entries = Object.entries(value);
    if (entries.length < 16) out.push(0x80 | entries.length);
    else {
      out.push(0xdf);
      out.int(entries.length, 4);
    }
    for (const [key, item] of entries) {
      pack(key, out);
      pack(item, out);
    }
  }
}

/** One binary hub frame: the message's length as a varint, then the message. */
export function messagePackFrame(message: Value): ArrayBuffer {
  const body = new Writer();
  pack(message, body);
  const framed = new Writer();
  let size = body.length;
  do {
    let byte = size % 0x80;
    size = Math.floor(size / 0x80);
    if (size > 0) byte |= 0x80;
    framed.push(byte);
  } while (size > 0);
  framed.append(body.bytes.subarray(0, body.length));
  return framed.bytes.slice(0, framed.length).buffer;
}

/** The JSON text frame of the same message (bigints as plain integers, as the daemon writes). */
export function jsonFrame(message: Value): string {
  const text = JSON.stringify(message, (_, v) => (typeof v === "bigint" ? `#${v}#` : v));
  return `${text.replace(/"#(\d+)#"/g, "$1")}\u001e`;
}
